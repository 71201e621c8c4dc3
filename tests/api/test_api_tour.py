"""docs/api-tour.ipynb runs in a fresh kernel (it builds its own tiny Llama with transformers,
offline), and shows what transformers and torch show for the same idioms, and what the
commands print for print(m.summary()) and the others (issue 22, items 6 and 7)."""

import copy
import os
import re

import pytest

import checkpoints

from repo import ROOT

TOUR = os.path.join(ROOT, "docs", "api-tour.ipynb")


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """(the notebook as stored, as run now, the folder it ran in)."""
    import nbformat
    from nbclient import NotebookClient

    import llm_anatomy

    stored = nbformat.read(TOUR, as_version=4)
    run = copy.deepcopy(stored)
    folder = tmp_path_factory.mktemp("tour")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(
            "PYTHONPATH",
            os.pathsep.join([os.path.dirname(os.path.dirname(llm_anatomy.__file__)), os.environ.get("PYTHONPATH", "")]),
        )
        env.setenv("LLM_ANATOMY_CACHE", str(tmp_path_factory.mktemp("tour-cache")))
        env.setenv("HF_HUB_OFFLINE", "1")
        NotebookClient(
            run, timeout=600, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(folder)}}
        ).execute()
    return stored, run, folder


def _shown(notebook):
    """cell id -> (its stdout, the data of each result it displays); stderr left out."""
    shown = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
            assert not errors, (cell.id, errors)
            stdout = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
            shown[cell.id] = (
                stdout,
                [dict(o.data) for o in cell.outputs if o.output_type in ("execute_result", "display_data")],
            )
    return shown


class Shown:
    """A value whose repr is given: for the parts of a result that are ours alone."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def test_tour_shows_what_transformers_and_torch_show(tour):
    import numpy as np
    from IPython.lib.pretty import pretty

    shown = _shown(tour[1])
    model = checkpoints.reference_model(tour[2] / "tiny-llama")
    plain = {cell: data[0]["text/plain"] for cell, (_, data) in shown.items() if data}
    assert shown["config-print"][0] == f"{model.config}\n"
    assert plain["config-attributes"] == pretty(
        (model.config.hidden_size, model.config.num_attention_heads, model.config.num_key_value_heads)
    )
    children = [f"{name} {child.__class__.__name__}\n" for name, child in model.named_children()]
    children += [
        f"model.layers.0.{name} {child.__class__.__name__}\n" for name, child in model.model.layers[0].named_children()
    ]
    assert shown["children"][0] == "".join(children)
    assert plain["modules"] == pretty(
        ([name for name, _ in model.named_modules()][:6], len(list(model.modules())), True)
    )
    p = model.get_parameter("model.layers.0.self_attn.q_proj.weight")
    assert plain["parameter"] == pretty(
        (p.shape, p.dtype, p.device, p.requires_grad, p.numel(), sum(q.numel() for q in model.parameters()))
    )
    assert plain["asarray"] == repr(p.detach().float().numpy()[:2, :4])
    view = Shown(f"<view of model.layers.0.self_attn.q_proj.weight: {p.view(-1).shape}, {p.dtype}>")
    assert plain["view"] == pretty(
        (
            view,
            p.view(-1).shape,
            p.view(-1)[5].float().detach().numpy(),
            p.reshape(8, -1)[1, :4].float().detach().numpy(),
        )
    )
    state = model.state_dict()
    assert plain["state-dict"] == pretty((len(state), list(state)[:3], state["lm_head.weight"].shape))
    non_persistent = {f"model.rotary_emb.{name}" for name in model.model.rotary_emb._non_persistent_buffers_set}
    assert plain["buffers"] == pretty(
        [(name, b.shape, b.dtype, name not in non_persistent) for name, b in model.named_buffers()]
    )
    assert np.asarray(p.detach().float()).shape == (64, 64)


def test_tour_prints_what_the_commands_print(tour, cli):
    shown = _shown(tour[1])
    folder = tour[2] / "tiny-llama"
    assert shown["summary-print"][0] == cli("summary", folder).out
    assert shown["explain-print"][0] == cli("config", folder, "--explain", "--lang", "en").out
    assert shown["trace-print"][0] == cli("trace", folder, "--seq", "8").out
    assert shown["stats-print"][0] == cli("stats", folder).out
    assert shown["trace"][0] == "<Trace LlamaForCausalLM [1, 8]: 1.15 MFLOPs>\n"
    html = {cell: data[0]["text/html"] for cell, (_, data) in shown.items() if data and "text/html" in data[0]}
    assert set(html) == {"open", "summary", "trace", "layer"}
    assert (
        html["summary"].count("<table") == 4 and html["trace"].count("<svg") == 2 and html["layer"].count("<svg") == 1
    )


def test_tour_shows_what_is_stored(tour):
    """The notebook as stored (rendered by the docs site) shows what it does now, when stored
    with the transformers installed (its outputs name the version)."""
    import transformers

    stored, run, _ = tour
    made_with = re.search(r'"transformers_version": "([^"]+)"', _shown(stored)["config-print"][0]).group(1)
    if made_with != transformers.__version__:
        pytest.skip(
            f"docs/api-tour.ipynb was stored with transformers {made_with}, {transformers.__version__} is installed"
        )
    assert _shown(run) == _shown(stored), (
        "docs/api-tour.ipynb's outputs differ from a fresh run; if meant, run it again and store it (jupyter execute --inplace)"
    )
