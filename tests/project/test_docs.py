"""The documentation is real: the docstrings' examples run as doctests on the checkpoint they
name, the API reference builds offline with every public name on its page, the tutorial
notebook runs and prints what transformers prints, and mypy accepts the public API."""

import doctest
import os
import re
import subprocess
import sys

import pytest

import checkpoints

from repo import ROOT


@pytest.fixture(scope="module")
def tiny_llama_folder(tmp_path_factory):
    """The docstrings' model: a tiny bfloat16 Llama in one file, seed 0, opened as "tiny-llama"."""
    parent = tmp_path_factory.mktemp("docs")
    checkpoints.tiny_llama(str(parent / "tiny-llama"), dtype="bfloat16", shard=None)
    return parent


def _docstring_tests():
    from llm_anatomy import api

    return [test for test in doctest.DocTestFinder().find(api, "llm_anatomy.api") if test.examples]


def test_the_public_api_has_examples():
    named = {test.name.removeprefix("llm_anatomy.api.") for test in _docstring_tests()}
    assert {
        "open",
        "diff",
        "Size",
        "Parameter",
        "Parameter.__getitem__",
        "Parameter.__str__",
        "Module",
        "Module.get_submodule",
        "Model.summary",
    } <= named


@pytest.mark.parametrize("test", _docstring_tests(), ids=lambda test: test.name.removeprefix("llm_anatomy.api."))
def test_docstring_examples(test, tiny_llama_folder, monkeypatch):
    import llm_anatomy as la

    monkeypatch.chdir(tiny_llama_folder)
    test.globs = {"la": la, "m": la.open("tiny-llama")}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_mypy_accepts_the_public_api_and_a_users_code():
    """[tool.mypy] in pyproject.toml: api.py fully annotated, tests/api/typed_usage.py type-checks against it."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found in 3 source files")


def _page_of(name):
    """The reference page a public name is documented on (docs/reference/*.md)."""
    import llm_anatomy

    return (
        "errors"
        if isinstance(getattr(llm_anatomy, name), type) and issubclass(getattr(llm_anatomy, name), Exception)
        else name
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`mkdocs build --strict` (what `make docs` runs) with every proxy pointing at a closed
    port, so that any fetch would fail the build."""
    site = tmp_path_factory.mktemp("site")
    dead = "http://127.0.0.1:9"
    env = dict(
        os.environ, HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead, NO_PROXY="", no_proxy=""
    )
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return site


def test_each_public_name_has_its_reference_page(site):
    import llm_anatomy

    for name in llm_anatomy.__all__:
        documented = getattr(llm_anatomy, name)
        page = site / "reference" / _page_of(name) / "index.html"
        assert f'id="{documented.__module__}.{documented.__qualname__}"' in page.read_text(encoding="utf-8"), name


def test_model_page_lists_every_public_method_with_its_docstring(site):
    import llm_anatomy as la

    page = (site / "reference" / "Model" / "index.html").read_text(encoding="utf-8")
    public = [name for name in dir(la.Model) if not name.startswith("_")]
    assert {"named_parameters", "get_submodule", "summary", "report", "config_text"} <= set(public)
    for name in public:
        assert f'id="llm_anatomy.api.Model.{name}"' in page, name
    open_page = (site / "reference" / "open" / "index.html").read_text(encoding="utf-8")
    assert "LlamaForCausalLM, 78,144 parameters, safetensors&gt;" in open_page  # the example, as doctest runs it


def test_pages_fetch_nothing(site):
    """No script, stylesheet or image from the network: the pages work offline too."""
    import re

    for page in site.rglob("*.html"):
        assert not re.findall(
            r'<(?:script|link|img)[^>]*(?:src|href)="(?:https?:)?//', page.read_text(encoding="utf-8")
        ), page


TUTORIAL = os.path.join(ROOT, "docs", "tutorial.ipynb")
REPLICA = "Llama-2-7b-chat-hf"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """docs/tutorial.ipynb as stored, and as run now in a fresh kernel (own skeleton cache, offline)."""
    import copy

    import nbformat
    from nbclient import NotebookClient

    stored = nbformat.read(TUTORIAL, as_version=4)
    run = copy.deepcopy(stored)
    import llm_anatomy

    with pytest.MonkeyPatch.context() as env:
        # The kernel imports the llm_anatomy under test (a relative PYTHONPATH=src would not reach it from the notebook's folder).
        env.setenv(
            "PYTHONPATH",
            os.pathsep.join([os.path.dirname(os.path.dirname(llm_anatomy.__file__)), os.environ.get("PYTHONPATH", "")]),
        )
        env.setenv("LLM_ANATOMY_CACHE", str(tmp_path_factory.mktemp("tutorial-cache")))
        env.setenv("HF_HUB_OFFLINE", "1")
        NotebookClient(
            run,
            timeout=600,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(tmp_path_factory.mktemp("tutorial"))}},
        ).execute()
    return stored, run


def _shown(notebook):
    """cell id -> (its stdout, the data of each result it displays); stderr (library warnings) left out."""
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


def test_tutorial_shows_what_is_stored(tutorial):
    """The notebook as stored shows what it does now. Its outputs come from transformers
    (class names, print(model.config)): with another version installed than the one it was
    stored with, only the comparison with transformers below holds."""
    import re

    import transformers

    stored, run = tutorial
    made_with = re.search(r'"transformers_version": "([^"]+)"', _shown(stored)["config-text"][0]).group(1)
    if made_with != transformers.__version__:
        pytest.skip(
            f"docs/tutorial.ipynb was stored with transformers {made_with}, {transformers.__version__} is installed"
        )
    assert _shown(run) == _shown(stored), (
        "docs/tutorial.ipynb's outputs differ from a fresh run; if meant, run `jupyter execute --inplace docs/tutorial.ipynb`"
    )


@pytest.fixture(scope="module")
def transformers_llama(tmp_path_factory):
    """What the tutorial's readers get from transformers: Llama-2-7b-chat-hf built from the
    replica's config on the meta device, in the dtype from_pretrained loads it in."""
    import torch
    import transformers

    from llm_anatomy.replicas import published_config, write_layout

    folder = tmp_path_factory.mktemp("replica") / REPLICA
    write_layout(str(folder), published_config(REPLICA))
    config = transformers.AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config, dtype=config.dtype)


def test_tutorial_prints_what_transformers_prints(tutorial, transformers_llama):
    import numpy
    import torch
    from IPython.lib.pretty import pretty

    shown = _shown(tutorial[1])
    model = transformers_llama
    parameters = list(model.named_parameters())
    total = sum(p.numel() for _, p in parameters)
    assert total == 6_738_415_616
    assert (
        shown["open"][1][0]["text/plain"]
        == f"<llm_anatomy.Model '{REPLICA}': {type(model).__name__}, {total:,} parameters, safetensors>"
    )
    assert shown["parameters"][0] == "".join(f"{name} {p.shape} {p.dtype}\n" for name, p in parameters[:10])
    assert shown["count"][0] == f"{total:,} parameters in {len(parameters)} tensors\n"
    children = [f"{name} {type(child).__name__}\n" for name, child in model.named_children()]
    children += [
        f"model.{name} {type(child).__name__} {sum(p.numel() for p in child.parameters()):,}\n"
        for name, child in model.model.named_children()
    ]
    assert shown["children"][0] == "".join(children)
    assert shown["layer"][0] == "".join(
        f"{name} {type(child).__name__}\n" for name, child in model.model.layers[0].named_children()
    )
    assert shown["attention"][1][0]["text/plain"] == pretty(
        [(name, p.shape) for name, p in model.model.layers[0].self_attn.named_parameters()]
    )
    assert shown["config-text"][0] == f"{model.config}\n"
    # The replica's weights are zero: what torch shows for zeros of the same shape and dtype.
    assert shown["slice"][1][0]["text/plain"] == repr(numpy.zeros((2, 4), numpy.float16))
    assert shown["print"][0] == f"{torch.nn.Parameter(torch.zeros(4096, dtype=model.model.norm.weight.dtype))}\n"
    assert '<td>total</td><td class="num">6,738,415,616</td>' in shown["summary"][1][0]["text/html"]


# The notebooks the site shows, each on the page of the same name (mkdocs_hooks.py renders them alike).
NOTEBOOKS = ("tutorial", "api-tour")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_shows_the_notebook_with_its_outputs(site, name):
    """docs/NAME.md's marker becomes docs/NAME.ipynb (mkdocs_hooks.py): every code cell, its
    printed text and its HTML results (tables, figures) as stored, not a link to the raw
    .ipynb alone; the page is in the nav."""
    import html

    import nbformat

    page = (site / name / "index.html").read_text(encoding="utf-8")
    assert "NOTEBOOK-OUTPUT" not in page and "<!-- notebook:" not in page
    text = html.unescape(page)
    stored = nbformat.read(os.path.join(ROOT, "docs", f"{name}.ipynb"), as_version=4)
    for cell in stored.cells:
        if cell.cell_type == "code":
            assert cell.source in text, cell.id
    fragments = []
    for cell_id, (stdout, results) in _shown(stored).items():
        assert stdout.strip() in text, cell_id
        fragments += [result["text/html"] for result in results if "text/html" in result]
    assert fragments and page.count('<div class="notebook-output">') == len(fragments)
    for fragment in fragments:
        assert fragment in page
    assert (site / f"{name}.ipynb").is_file()  # the page's download link
    assert f'href="{name}/"' in (site / "index.html").read_text(encoding="utf-8")  # the nav


def test_benchmarks_page_holds_bench_results(site):
    """bench/RESULTS.md is shown on the benchmarks page as it stands (one copy, in bench/)."""
    import re

    page = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), encoding="utf-8") as handle:
        headings = re.findall(r"^## (.+)$", handle.read(), re.M)
    assert len(headings) > 20
    for heading in headings:
        assert re.sub(r"`([^`]*)`", r"<code>\1</code>", heading.replace("&", "&amp;")) in page, heading


def test_readme_is_one_page_that_starts_with_the_two_commands():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert len(readme.encode()) <= 12 * 1024
    quick = readme.split("## Quick start\n\n```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in quick.splitlines()] == ["make demo", "make test"]
    assert readme.index("## Quick start") < readme.index("## ", readme.index("## Quick start") + 1)
    for page in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert os.path.isfile(os.path.join(ROOT, page)), page
