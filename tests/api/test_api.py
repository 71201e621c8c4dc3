"""The Python API: llm_anatomy.open() answers as torch/transformers do on the same tiny
checkpoints (names, shapes, dtypes, order, children, get_submodule errors, print(p), slices
bit for bit), stays light to import, and walks a 70B layout in megabytes."""

import functools
import json
import os
import subprocess
import sys

import pytest

import checkpoints
import llm_anatomy as la
from conftest import NOT_ON_THE_LIGHT_PATH

FIXTURES = ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"]


@functools.lru_cache(maxsize=None)
def _loaded(folder):
    return checkpoints.reference_model(folder)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_named_parameters_equal_transformers(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    expected = [(name, repr(p.shape), str(p.dtype), p.numel()) for name, p in _loaded(folder).named_parameters()]
    got = [(name, repr(p.shape), p.dtype, p.numel()) for name, p in la.open(folder).named_parameters()]
    assert got == expected


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_module_children_and_class_equal_transformers(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    model, m = _loaded(folder), la.open(folder)
    for path, module in model.named_modules():
        mine = m.get_submodule(path)
        assert mine.class_name == type(module).__name__, path
        assert [(n, c.class_name) for n, c in mine.named_children()] == [
            (n, type(c).__name__) for n, c in module.named_children()
        ], path
        assert [n for n, _ in mine.named_parameters()] == [n for n, _ in module.named_parameters()], path
        assert mine.num_parameters() == sum(p.numel() for p in module.parameters()), path


# Attributes that are not modules: parameters, buffers, and plain attributes (config, numbers,
# methods, nn.Module's own) that torch finds with hasattr().
NOT_MODULES = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.rotary_emb.inv_freq",
    "config",
    "model.layers.0.self_attn.head_dim",
    "model.layers.0.mlp.forward",
    "training",
    "model.embed_tokens.padding_idx",
]
BAD_SUBMODULES = ["model.layers.9", "model.foo", "lm_head.weight.x", "x", *NOT_MODULES]
BAD_PARAMETERS = [
    "model.layers.0.self_attn.q_proj",
    "model.norm.bias",
    "model.layers.0.mlp.foo.weight",
    "model.rotary_emb.inv_freq",
    "nothing",
    "model.layers.0.self_attn.layer_idx",
    "lm_head.in_features",
    "model.forward",
]


def _torch_error(call, target):
    with pytest.raises(AttributeError) as raised:
        call(target)
    return str(raised.value)


@pytest.mark.parametrize("target", BAD_SUBMODULES)
def test_get_submodule_errors_equal_torch(target, llama_dir):
    model, m = _loaded(str(llama_dir)), la.open(llama_dir)
    expected = _torch_error(model.get_submodule, target)
    with pytest.raises(AttributeError) as raised:
        m.get_submodule(target)
    assert str(raised.value) == expected
    assert isinstance(raised.value, la.UsageError)
    assert raised.value.line() == f"{m.name}: expected a path of the module tree, found {target!r}; {expected}"


def test_not_a_module_is_torch_wording(llama_dir):
    """The cases above are real: torch calls each attribute found but not a module so."""
    model, m = _loaded(str(llama_dir)), la.open(llama_dir)
    for target in NOT_MODULES:
        with pytest.raises(AttributeError) as raised:
            m.get_submodule(target)
        assert (
            str(raised.value)
            == f"`{target.rpartition('.')[2]}` is not an nn.Module"
            == _torch_error(model.get_submodule, target)
        )


@pytest.mark.parametrize("target", BAD_PARAMETERS)
def test_get_parameter_errors_equal_torch(target, llama_dir):
    model, m = _loaded(str(llama_dir)), la.open(llama_dir)
    expected = _torch_error(model.get_parameter, target)
    with pytest.raises(AttributeError) as raised:
        m.get_parameter(target)
    assert str(raised.value) == expected


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "gpt2_dir"])
def test_print_parameter_equals_torch(fixture, request):
    folder = str(request.getfixturevalue(fixture))
    expected = [str(p) for _, p in _loaded(folder).named_parameters()]
    assert [str(p) for _, p in la.open(folder).named_parameters()] == expected


def test_attribute_navigation_and_get_parameter(llama_dir):
    m = la.open(llama_dir)
    w = m.get_parameter("model.layers.1.mlp.down_proj.weight")
    assert m.model.layers[1].mlp.down_proj.weight is w
    assert repr(m.model.layers[1]) == "<LlamaDecoderLayer model.layers.1: 30,848 parameters>"
    assert len(m.model.layers) == 2
    assert repr(w.shape) == "torch.Size([64, 96])" and w.shape == (64, 96) and w.size(1) == 96


INDICES = [
    (slice(None, 2), slice(-3, None)),
    (0,),
    (Ellipsis, 1),
    (slice(1, None, 2),),
    (-1, slice(None, None, 3)),
    (slice(5, 2),),
    (2, -4),
]


def _bits(array):
    import numpy

    return array.view({2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}[array.dtype.itemsize])


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_slices_equal_safe_open_bit_for_bit(dtype, tmp_path):
    import torch
    from safetensors import safe_open

    values = torch.randn(6, 7, generator=torch.Generator().manual_seed(1)).to(getattr(torch, dtype))
    values[0, 0], values[5, 6] = float("inf"), float("nan")
    path = checkpoints.safetensors_file(str(tmp_path / "w.safetensors"), {"w": values, "v": values[0].clone()})
    w = la.open(path).get_parameter("w")
    with safe_open(path, "pt") as handle:
        stored = handle.get_tensor("w")
        for index in INDICES:
            expected = stored[index].float() if dtype == "bfloat16" else stored[index]
            got = w[index]
            assert got.shape == tuple(expected.shape), index
            assert got.dtype.name == ("float32" if dtype == "bfloat16" else dtype)
            assert (_bits(got) == _bits(expected.numpy())).all(), index
        assert (_bits(w.numpy()) == _bits((stored.float() if dtype == "bfloat16" else stored).numpy())).all()
        assert w.to_torch().dtype == stored.dtype
        assert torch.equal(
            w.to_torch().view(torch.int16 if stored.element_size() == 2 else torch.int32),
            stored.view(torch.int16 if stored.element_size() == 2 else torch.int32),
        )


def test_parameter_slices_equal_loaded_bf16_model(llama_bf16_dir):
    """Values in the dtype the model is loaded in, read from the file."""
    model, m = _loaded(str(llama_bf16_dir)), la.open(llama_bf16_dir)
    for name, p in model.named_parameters():
        mine = m.get_parameter(name)
        assert mine.dtype == "torch.bfloat16"
        assert (_bits(mine[..., :4]) == _bits(p.detach()[..., :4].float().numpy())).all(), name


def test_bad_index_is_a_usage_error(llama_dir):
    w = la.open(llama_dir).get_parameter("lm_head.weight")
    with pytest.raises(la.UsageError) as raised:
        w[0, 0, 0]
    assert str(raised.value) == "lm_head.weight[0, 0, 0]: expected at most 2 indices for shape [128, 64], found 3"
    with pytest.raises(la.UsageError) as raised:
        w[::-1]
    assert (
        str(raised.value)
        == "lm_head.weight: expected a slice step of at least 1, found -1; torch slices only step forwards"
    )


@pytest.mark.parametrize(
    "index, message",
    [
        (
            10**5000,
            "lm_head.weight[an integer of 5,001 digits]: expected an index in -128..127 for dimension 0 of size 128, found an integer of 5,001 digits",
        ),
        (
            (0, -(10**30)),
            "lm_head.weight[0, an integer of 31 digits]: expected an index in -64..63 for dimension 1 of size 64, found an integer of 31 digits",
        ),
        (
            slice(None, None, -(10**5000)),
            "lm_head.weight: expected a slice step of at least 1, found an integer of 5,001 digits; torch slices only step forwards",
        ),
        (
            slice(10**5000, 1.5),
            "lm_head.weight: expected an index of integers, slices and ..., found slice(an integer of 5,001 digits, 1.5, None)",
        ),
        ((Ellipsis, 0, Ellipsis), "lm_head.weight[..., 0, ...]: expected at most one '...', found 2"),
        (None, "lm_head.weight: expected an index of integers, slices and ..., found None"),
        (
            [0] * 1000,
            "lm_head.weight: expected an index of integers, slices and ..., found [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0...",
        ),
    ],
    ids=["5000-digits", "30-digits", "step-5000-digits", "float-slice", "two-ellipses", "none", "long-list"],
)
def test_hostile_index_is_one_usage_error_line(llama_dir, index, message):
    """w[10**5000] (hostile-2026-12 R7): the project's usage error, no str() of a huge integer."""
    w = la.open(llama_dir).get_parameter("lm_head.weight")
    with pytest.raises(la.UsageError) as raised:
        w[index]
    assert str(raised.value) == message


def test_open_errors_are_the_cli_lines(tmp_path, cli):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(la.AnatomyError) as raised:
        la.open(tmp_path / "empty.safetensors")
    assert cli("params", tmp_path / "empty.safetensors").err == f"llm-anatomy: {raised.value.line()}\n"


def test_config_and_config_text(llama_dir):
    model, m = _loaded(str(llama_dir)), la.open(llama_dir)
    assert m.config == json.loads((llama_dir / "config.json").read_text())
    assert m.config_text == str(model.config)


def test_summary_is_the_cli_record(llama_dir, cli):
    from llm_anatomy.render import summary as render

    assert render.json_text(la.open(llama_dir).summary()) == cli("summary", llama_dir, "--json").out


def _run_python(code, *args):
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_and_header_walk_stay_light(llama_dir):
    """`import llm_anatomy`, and open + named_parameters + get_submodule once the skeleton is
    cached, import none of numpy, torch, transformers, typing, ..."""
    la.open(llama_dir).get_parameter("lm_head.weight")  # the skeleton cached, in this process
    code = (
        "import json, sys\n"
        "import llm_anatomy as la\n"
        "heavy = json.loads(sys.argv[1])\n"
        "after_import = sorted(m for m in heavy if m in sys.modules)\n"
        "m = la.open(sys.argv[2])\n"
        "shapes = [tuple(p.shape) for _, p in m.named_parameters()]\n"
        "m.get_submodule('model.layers.0.self_attn'); m.summary()\n"
        "print(json.dumps([after_import, sorted(m for m in heavy if m in sys.modules), len(shapes)]))\n"
    )
    after_import, after_walk, count = _run_python(code, json.dumps(NOT_ON_THE_LIGHT_PATH), llama_dir)
    assert (after_import, after_walk, count) == ([], [], 21)


MEMORY_LIMIT_MB = 50


def test_walking_every_parameter_of_70b_stays_small(published):
    folder = published("Llama-2-70b-hf")
    m = la.open(folder)  # builds and caches the skeleton here: the child only reads headers and the cache
    assert m.num_parameters() == 68_976_648_192
    code = (
        "import json, sys\n"
        "import llm_anatomy as la\n"
        "m = la.open(sys.argv[1])\n"
        "total = sum(p.numel() for _, p in m.named_parameters())\n"
        "dtypes = sorted({p.dtype for p in m.parameters()})\n"
        "status = open('/proc/self/status').read()\n"  # VmHWM: this process's peak, reset by exec
        "peak = int(status.split('VmHWM:')[1].split()[0]) * 1024\n"
        "print(json.dumps([total, dtypes, peak]))\n"
    )
    total, dtypes, peak = _run_python(code, folder)
    assert (total, dtypes) == (68_976_648_192, ["torch.float16"])
    assert peak < MEMORY_LIMIT_MB * 2**20, f"peak RSS {peak / 2**20:.1f} MB"


def test_html_repr_is_the_folded_tree(llama_dir, cli):
    """In Jupyter a model and a module show `llm-anatomy tree` (--node), in HTML a strict parser accepts."""
    import html5lib

    m = la.open(llama_dir)
    for path, shown in (("", m), ("model.layers.0", m.model.layers[0])):
        document = html5lib.HTMLParser(strict=True).parseFragment(shown._repr_html_())
        pre = document[0][1]  # after the view's <style>
        assert pre.tag.endswith("pre")
        assert pre.text == cli("tree", llama_dir, *(["--node", path] if path else [])).out


def test_a_layer_and_the_model_show_the_reports_layer_diagram(llama_dir):
    import html5lib

    from llm_anatomy.analysis.report import build_report
    from llm_anatomy.locate import open_catalog
    from llm_anatomy.render.report import render_report

    page = render_report(build_report(open_catalog(str(llama_dir)), lang="en"))
    at = page.index("<svg", page.index('id="diagram"'))
    figure = page[at : page.index("</svg>", at) + len("</svg>")]
    m = la.open(llama_dir)
    for shown in (m, m.model.layers[0], m.get_submodule("model.layers.1")):
        fragment = shown._repr_html_()
        html5lib.HTMLParser(strict=True).parseFragment(fragment)
        assert fragment.endswith(f'<div class="figure">{figure}</div></div>')
    for shown in (m.model, m.model.layers, m.model.layers[0].self_attn):
        assert "<svg" not in shown._repr_html_()


@pytest.mark.parametrize("args", [(), ("model.layers.0.*", "role")])
def test_stats_is_the_cli_record(llama_dir, cli, args):
    from llm_anatomy.render import stats as render

    options = [opt for flag, value in zip(("--filter", "--by"), args) for opt in (flag, value)]
    assert render.json_text(la.open(llama_dir).stats(*args)) == cli("stats", llama_dir, "--json", *options).out


def test_gguf_parameters_as_transformers_loads_them(llama_tied_dir, tmp_path, cli):
    """A GGUF's parameters under transformers' names, with its loader's transforms (q/k rows
    unpermuted): print(p) equals `values --style torch`, which test_gguf holds to from_pretrained(gguf_file=)."""
    path = checkpoints.llama_gguf(str(llama_tied_dir), str(tmp_path / "m.gguf"))
    m = la.open(path)
    names = [name for name, _ in m.named_parameters()]
    assert names == [name for name, _ in _loaded(str(llama_tied_dir)).named_parameters()]
    assert "".join(f"{p}\n" for _, p in m.named_parameters()) == cli("values", path, "--style", "torch").out


def test_summary_html_has_the_text_tables(llama_dir, cli):
    """In Jupyter the summary shows as tables (strict HTML) holding the rows `summary` prints."""
    import html5lib

    summary = la.open(llama_dir).summary()
    document = html5lib.HTMLParser(strict=True).parseFragment(summary._repr_html_())
    namespace = "{http://www.w3.org/1999/xhtml}"
    tables = {}
    for heading, table in zip(document.iter(f"{namespace}h4"), document.iter(f"{namespace}table")):
        rows = [["".join(cell.itertext()) for cell in row] for row in table.iter(f"{namespace}tr")]
        tables[heading.text] = rows
    assert list(tables) == ["By component", "By layer", "By dtype", "Weight matrices, config.json vs tensors"]
    text = cli("summary", llama_dir).out
    for title, rows in tables.items():
        block = text.split(f"\n{title}:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert [row.split() for row in block] == [" ".join(cells).split() for cells in rows], title
    assert rows[0] == ["component", "config.json", "tensors", ""]
    assert "".join(document[0][1][0].itertext()) == text.splitlines()[0]
    memory = [element.text for element in document.iter(f"{namespace}pre")]
    assert memory == [text.split("\n\nWeights memory:\n", 1)[1].join(["Weights memory:\n", ""]).rstrip("\n")]


@pytest.mark.parametrize("style", ["text", "json"])
def test_diff_is_the_cli_record(llama_dir, llama_bf16_dir, cli, style):
    from llm_anatomy.render import diff as render

    found = la.diff(llama_dir, llama_bf16_dir)
    assert found.header.dtype_changes and found.values.rows
    if style == "json":
        assert render.json_text(found.header, found.values) == cli("diff", llama_dir, llama_bf16_dir, "--json").out
    else:
        assert str(found) == cli("diff", llama_dir, llama_bf16_dir).out


def test_diff_headers_first_then_values(llama_dir, llama_bf16_dir):
    a, b = la.open(llama_dir), la.open(llama_bf16_dir)
    headers = la.diff(a, b, "model.layers.0.*", values=False)
    assert headers.values is None and all(x.name.startswith("model.layers.0.") for x, _ in headers.header.pairs)
    seen = []
    compared = headers.with_values(progress=seen.append)
    assert compared.header == headers.header and sum(seen) == sum(x.nbytes + y.nbytes for x, y in headers.header.pairs)
    assert compared.values == la.diff(llama_dir, llama_bf16_dir, "model.layers.0.*").values


def test_report_writes_the_cli_page(llama_dir, tmp_path, cli):
    written = la.open(llama_dir).report(str(tmp_path / "api.html"), lang="en")
    assert (
        cli("report", llama_dir, "-o", tmp_path / "cli.html", "--lang", "en").out
        == f"wrote {tmp_path / 'cli.html'} ({written.nbytes / 1024:.2f} KiB)\n"
    )
    assert written == la.ReportFile(str(tmp_path / "api.html"), (tmp_path / "api.html").stat().st_size, ())
    assert (tmp_path / "api.html").read_bytes() == (tmp_path / "cli.html").read_bytes()


def test_report_never_writes_into_the_model(llama_dir, tmp_path, cli):
    """The API goes through the same safe writer: the model's folder and files are refused with the CLI's line."""
    before = sorted(os.listdir(llama_dir))
    for target in (llama_dir / "report.html", llama_dir / "config.json"):
        with pytest.raises(la.UsageError) as raised:
            la.open(llama_dir).report(str(target))
        assert cli("report", llama_dir, "-o", target).err == f"llm-anatomy: {raised.value.line()}\n"
    assert sorted(os.listdir(llama_dir)) == before


def test_trace_is_the_record_the_cli_renders(llama_dir, cli):
    from llm_anatomy.analysis.trace import default_seq, trace
    from llm_anatomy.locate import open_catalog
    from llm_anatomy.render import trace as render

    m = la.open(str(llama_dir))
    prefill = m.trace(seq=8)
    assert prefill == trace(open_catalog(str(llama_dir)), 1, 8)
    assert cli("trace", llama_dir, "--seq", "8").out == render.text(prefill, None, None)
    decoding = m.trace(batch=2, decode=True, node="model.layers.0.self_attn")
    assert (decoding.batch, decoding.context, decoding.node) == (2, default_seq(m.config), "model.layers.0.self_attn")


# ---------------------------------------------------------------- p[index] holds what p.numpy() and transformers hold

# Quantized rows check that an indexed view of reordered rows reads the right blocks.
GGUF_QUANTIZED = {"blk.0.attn_q": "Q8_0", "blk.0.attn_k": "Q8_0", "blk.1.ffn_up": "Q4_0"}


def _reference_and_path(kind, tmp_path, llama_dir, llama_bf16_dir):
    """(the model transformers loads, what la.open takes) for each kind of checkpoint: GGUF's
    Llama stores q and k rows permuted, Gemma-3's norms as 1 + w; both with block types."""
    import transformers

    import gguf_writers

    if kind.startswith("gguf-"):
        path, _ = gguf_writers.whole_model(str(tmp_path), kind.removeprefix("gguf-"), types=GGUF_QUANTIZED)
        return transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=os.path.basename(path)), path
    folder = {"safetensors": llama_dir, "safetensors-bf16": llama_bf16_dir}.get(kind)
    if folder is None:  # pytorch_model.bin
        folder = checkpoints.torch_bin(str(llama_dir), str(tmp_path / "bin"))
    return _loaded(str(folder)), str(folder)


@pytest.mark.parametrize("kind", ["safetensors", "safetensors-bf16", "bin", "gguf-llama", "gguf-gemma3"])
def test_every_index_holds_what_numpy_and_transformers_hold(kind, tmp_path, llama_dir, llama_bf16_dir):
    """p[idx] == p.numpy()[idx] == transformers' p[idx], bit for bit, for random index
    expressions on every parameter: GGUF's loader conventions (un-permuted q/k rows, norms
    minus one) hold for every accessor, not only for whole tensors."""
    import random

    import numpy

    model, path = _reference_and_path(kind, tmp_path, llama_dir, llama_bf16_dir)
    m = la.open(path)
    for name, reference in model.named_parameters():
        p = m.get_parameter(name)
        whole = p.numpy()
        theirs = reference.detach().float().numpy()
        assert (_bits(whole) == _bits(theirs)).all(), name
        rng = random.Random(name)
        for _ in range(12):
            index = checkpoints.random_index(rng, p.shape)
            got = p[index]
            assert isinstance(got, numpy.ndarray) and got.shape == theirs[index].shape, (name, index)
            assert (_bits(got) == _bits(whole[index])).all(), (name, index)
            assert (_bits(got) == _bits(theirs[index])).all(), (name, index)


def test_indexed_gguf_parameters_are_transformers_values(tmp_path):
    """The issue's two cases by hand: Gemma's norm is the stored 1 + w minus one, Llama's q row 1
    is llama.cpp's stored row 2 (rows within a head interleaved by the converter)."""
    import gguf_writers

    gemma, _ = gguf_writers.whole_model(str(tmp_path / "gemma"), "gemma3")
    norm = la.open(gemma).get_parameter("model.norm.weight")
    assert (
        norm[:4].tolist()
        == norm.numpy()[:4].tolist()
        == norm.to_torch()[:4].tolist()
        == [v - 1 for v in _stored(gemma, "output_norm.weight")[:4]]
    )
    llama, _ = gguf_writers.whole_model(str(tmp_path / "llama"), "llama")
    q = la.open(llama).get_parameter("model.layers.0.self_attn.q_proj.weight")
    assert q[:3, :4].tolist() == q.numpy()[:3, :4].tolist() == q.to_torch()[:3, :4].tolist()
    stored = _stored(llama, "blk.0.attn_q.weight")
    assert q[:3, :4].tolist() == [stored[0][:4], stored[2][:4], stored[4][:4]]


def _stored(path, name):
    import gguf

    tensor = next(t for t in gguf.GGUFReader(path).tensors if t.name == name)
    return tensor.data.reshape(tuple(reversed([int(n) for n in tensor.shape]))).tolist()
