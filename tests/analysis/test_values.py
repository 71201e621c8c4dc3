"""`values`: the printout equals torch's own, character for character, read from the file."""

import json
import math
import os

import pytest

import checkpoints
from conftest import imported_by
from llm_anatomy.decode import elements
from llm_anatomy.io.sources import LocalFile
from llm_anatomy.analysis.values import PrintOptions, View, show
from llm_anatomy.locate import open_catalog
from llm_anatomy.render.torch_values import tensor_text
from llm_anatomy.decode.elements import ElementReader

SHAPES = [
    (),
    (0,),
    (5,),
    (1000,),
    (1001,),
    (3, 4),
    (7, 2000),
    (2, 3, 1100),
    (4, 5, 6, 7),
    (1,),
    (1, 1),
    (0, 3),
    (3, 0, 2),
]
FLOAT_DTYPES = ["float32", "float16", "bfloat16", "float64", "float8_e4m3fn", "float8_e5m2"]
INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8"]


def _floats(kind, shape, seed):
    """float64 values of one kind; specials sit at the first and last flat positions, which every summary shows."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    normal = torch.randn(shape, generator=generator, dtype=torch.float64)
    values = {
        "normal": normal,
        "tiny": normal * 1e-6,
        "huge": normal * 1e10,
        "wide": normal * 10.0 ** torch.randint(-3, 4, shape, generator=generator),
        "integers": torch.randint(-60, 60, shape, generator=generator).double(),
        "zeros": torch.zeros(shape, dtype=torch.float64),
        "negzero": -torch.zeros(shape, dtype=torch.float64),
        "specials": normal.clone(),
        "int_specials": torch.randint(-9, 9, shape, generator=generator).double(),
    }[kind]
    if kind in ("specials", "int_specials") and values.numel():
        flat = values.view(-1)
        for position, special in zip((0, -1, 1, -2, 2)[: values.numel()], (math.nan, math.inf, -math.inf, -0.0, 0.0)):
            flat[position] = special
    return values


def _ints(dtype, shape, seed):
    import torch

    info = torch.iinfo(getattr(torch, dtype))
    low, high = max(info.min, -(2**40)), min(info.max, 2**40)
    return torch.randint(low, high, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int64).to(
        getattr(torch, dtype)
    )


def _ours(tmp_path, tensor, options=PrintOptions()):
    """Save with safetensors, then read and print with llm-anatomy."""
    path = checkpoints.safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor.contiguous()})
    with ElementReader() as reader:
        return "".join(tensor_text(show(reader, View.whole(open_catalog(path).get("t")), options), options))


def _torch_str(tensor, options=PrintOptions()):
    import torch

    with torch._tensor_str.printoptions(
        precision=options.precision,
        threshold=options.threshold,
        edgeitems=options.edgeitems,
        linewidth=options.linewidth,
    ):
        return str(tensor)


FLOAT_KINDS = ["normal", "tiny", "huge", "wide", "integers", "zeros", "negzero", "specials", "int_specials"]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", FLOAT_KINDS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_floats_print_as_torch_prints_them(tmp_path, dtype, kind, shape):
    import torch

    tensor = _floats(kind, shape, seed=len(shape) * 31 + FLOAT_KINDS.index(kind)).to(getattr(torch, dtype))
    assert _ours(tmp_path, tensor) == _torch_str(tensor)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", INT_DTYPES + ["bool"])
def test_ints_and_bools_print_as_torch_prints_them(tmp_path, dtype, shape):
    import torch

    tensor = torch.randn(shape) > 0 if dtype == "bool" else _ints(dtype, shape, seed=len(shape))
    assert _ours(tmp_path, tensor) == _torch_str(tensor)


OPTIONS = [
    PrintOptions(edgeitems=1),
    PrintOptions(edgeitems=0),
    PrintOptions(edgeitems=5, threshold=50),
    PrintOptions(precision=0),
    PrintOptions(precision=2),
    PrintOptions(precision=9),
    PrintOptions(threshold=5),
    PrintOptions(threshold=0),
    PrintOptions(threshold=math.inf),
    PrintOptions(linewidth=20),
    PrintOptions(linewidth=40, edgeitems=4),
    PrintOptions(linewidth=200),
]


@pytest.mark.parametrize("shape", [(), (5,), (1001,), (3, 4), (7, 2000), (2, 3, 1100), (4, 5, 6, 7), (0, 3)], ids=str)
@pytest.mark.parametrize(
    "dtype, kind",
    [
        ("float32", "normal"),
        ("float16", "wide"),
        ("bfloat16", "specials"),
        ("float64", "integers"),
        ("int64", None),
        ("bool", None),
    ],
)
@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_print_options_as_torch_set_printoptions(tmp_path, options, dtype, kind, shape):
    import torch

    if dtype == "int64":
        tensor = _ints(dtype, shape, seed=3)
    elif dtype == "bool":
        tensor = torch.randn(shape) > 0
    else:
        tensor = _floats(kind, shape, seed=7).to(getattr(torch, dtype))
    assert _ours(tmp_path, tensor, options) == _torch_str(tensor, options)


@pytest.mark.parametrize(
    "dtype", ["float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "complex64", "uint16", "uint32", "uint64"]
)
@pytest.mark.parametrize("shape", [(), (6,), (3, 4), (7, 2000)], ids=str)
def test_rarer_dtypes_print_as_torch_prints_them(tmp_path, dtype, shape):
    import torch

    normal = _floats("wide", shape, seed=11)
    if dtype == "complex64":
        tensor = torch.complex(normal, _floats("specials", shape, seed=12)).to(torch.complex64)
    elif dtype.startswith("uint"):
        tensor = _ints("int32", shape, seed=13).abs().to(getattr(torch, dtype))
    else:
        tensor = normal.abs().to(getattr(torch, dtype))
    assert _ours(tmp_path, tensor) == _torch_str(tensor)


# ---------------------------------------------------------------- models: print(p) for p in model.parameters()


def _parameters_printout(folder, names=lambda name: True):
    return checkpoints.printed_parameters(checkpoints.reference_model(folder), names)


@pytest.mark.parametrize("fixture", ["llama_dir", "llama_tied_dir", "llama_bf16_dir", "bert_dir", "gpt2_dir"])
def test_torch_style_equals_print_of_every_parameter(fixture, request, cli):
    folder = request.getfixturevalue(fixture)
    result = cli("values", folder, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == _parameters_printout(str(folder))


@pytest.mark.parametrize(
    "stored, config_dtype",
    [("float32", "bfloat16"), ("bfloat16", "float32"), ("float32", "float16"), ("bfloat16", None)],
)
def test_torch_style_shows_values_in_the_dtype_from_pretrained_gives(tmp_path, cli, stored, config_dtype):
    """transformers casts every float weight to config.json's dtype (the weights' own when it names none)."""
    folder = checkpoints.tiny_llama(str(tmp_path / "m"), dtype=stored, shard=None)
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("torch_dtype", None)
    config.pop("dtype", None)
    if config_dtype:
        config["dtype"] = config_dtype
    config_path.write_text(json.dumps(config))
    result = cli("values", folder, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == _parameters_printout(folder)
    norm = json.loads(cli("values", folder, "--style", "torch", "--json", "--filter", "model.norm.weight").out)[
        "tensors"
    ][0]
    assert (norm["dtype"], norm["torch_dtype"]) == (
        {"float32": "F32", "bfloat16": "BF16"}[stored],
        f"torch.{config_dtype or stored}",
    )


def _rename_tensors(folder, rename):
    """Rewrite model.safetensors with names changed (None drops a tensor), as older checkpoints name them."""
    from safetensors.torch import load_file, save_file

    path = os.path.join(folder, "model.safetensors")
    tensors_ = {rename(name): tensor for name, tensor in load_file(path).items() if rename(name) is not None}
    save_file(tensors_, path, metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize(
    "builder, rename",
    [
        (
            checkpoints.tiny_gpt2,
            lambda name: None if name.startswith("lm_head.") else name.removeprefix("transformer."),
        ),  # as openai-community/gpt2
        (checkpoints.tiny_bert, lambda name: "bert." + name),  # a head model's checkpoint loaded into BertModel
    ],
)
def test_torch_style_finds_weights_across_the_base_model_prefix(tmp_path, cli, builder, rename):
    folder = _rename_tensors(builder(str(tmp_path / "m")), rename)
    result = cli("values", folder, "--style", "torch")
    assert result.code == 0, result.err
    assert result.out == _parameters_printout(folder)


def test_torch_style_says_when_transformers_converts_weights_on_load(tmp_path, cli, capsys):
    folder = _rename_tensors(
        checkpoints.tiny_llama(str(tmp_path / "m"), shard=None), lambda name: name.replace("mlp.up_proj", "mlp.w3")
    )
    capsys.readouterr()  # save_pretrained's progress bar
    result = cli("values", folder, "--style", "torch")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "llm-anatomy: m: expected parameter model.layers.0.mlp.up_proj.weight of LlamaForCausalLM in the checkpoint, found no tensor of that name; "
        "transformers renames, fuses or initialises this weight on load, so print(p) cannot be rebuilt from the file; the default style shows the stored tensors\n"
    )


def test_torch_style_one_parameter_by_name(llama_tied_dir, cli):
    result = cli("values", llama_tied_dir, "lm_head.weight", "--style", "torch")  # tied: not a parameter of its own
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {llama_tied_dir.name}: expected a parameter named 'lm_head.weight', found none; list the names with `llm-anatomy params --style torch`\n",
    )
    result = cli("values", llama_tied_dir, "model.norm.weight", "--style", "torch")
    assert result.out == _parameters_printout(str(llama_tied_dir), lambda name: name == "model.norm.weight")


def test_torch_style_filter_keeps_transformers_order(llama_dir, cli):
    result = cli("values", llama_dir, "--style", "torch", "--filter", "model.layers.1.*")
    assert result.out.count("Parameter containing:") == 9
    assert result.out == _parameters_printout(str(llama_dir), lambda name: name.startswith("model.layers.1."))


# ---------------------------------------------------------------- the default style, indexing, JSON


@pytest.fixture
def small_file(tmp_path):
    import torch

    torch.manual_seed(0)
    tensors_ = {
        "w": torch.randn(40, 50),
        "layers.10.b": torch.arange(6, dtype=torch.int16),
        "layers.2.b": torch.ones(3).half(),
    }
    return checkpoints.safetensors_file(str(tmp_path / "m.safetensors"), tensors_), tensors_


def test_default_style_names_each_tensor_in_natural_order(small_file, cli):
    path, tensors_ = small_file
    result = cli("values", path)
    assert result.code == 0
    assert result.out == (
        "layers.2.b  [3]  F16\n" + str(tensors_["layers.2.b"]) + "\n\n"
        "layers.10.b  [6]  I16\n" + str(tensors_["layers.10.b"]) + "\n\n"
        "w  [40, 50]  F32\n" + str(tensors_["w"]) + "\n"
    )


@pytest.mark.parametrize(
    "index", ["0, :8", "-1", "5:9, ::7", "...", "..., -2", "1:30:4, 3", "7:2", "-40, -50:", "3, 4", ":, 49"]
)
def test_index_prints_what_torch_prints_for_that_slice(small_file, cli, index):
    path, tensors_ = small_file
    result = cli("values", path, f"w[{index}]")
    assert result.code == 0, result.err
    expected = eval(f"tensors_['w'][{index}]")
    assert result.out == f"w[{index}]  {list(expected.shape)}  F32\n" + str(expected) + "\n"


def test_a_name_ending_in_brackets_is_not_an_index(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(str(tmp_path / "b.safetensors"), {"w[0]": torch.ones(2), "w": torch.zeros(3)})
    assert cli("values", path, "w[0]").out == "w[0]  [2]  F32\ntensor([1., 1.])\n"
    assert cli("values", path, "w[1]").out == "w[1]  []  F32\ntensor(0.)\n"


def test_index_in_filter_applies_to_every_match(small_file, cli):
    path, tensors_ = small_file
    result = cli("values", path, "--filter", "layers.*.b[1:3]")
    assert result.out == (
        "layers.2.b[1:3]  [2]  F16\n" + str(tensors_["layers.2.b"][1:3]) + "\n\n"
        "layers.10.b[1:3]  [2]  I16\n" + str(tensors_["layers.10.b"][1:3]) + "\n"
    )


@pytest.mark.parametrize(
    "argument, line",
    [
        (
            "w[0, :x]",
            "llm-anatomy: w[0, :x]: expected an index of integers, start:stop:step slices and '...' separated by commas, found ':x'; for example 'lm_head.weight[0, :8]'",
        ),
        (
            "w[]",
            "llm-anatomy: w[]: expected an index of integers, start:stop:step slices and '...' separated by commas, found ''; for example 'lm_head.weight[0, :8]'",
        ),
        ("w[40]", "llm-anatomy: w[40]: expected an index in -40..39 for dimension 0 of size 40, found 40"),
        ("w[0, -51]", "llm-anatomy: w[0, -51]: expected an index in -50..49 for dimension 1 of size 50, found -51"),
        ("w[1, 2, 3]", "llm-anatomy: w[1, 2, 3]: expected at most 2 indices for shape [40, 50], found 3"),
        (
            "w[::0]",
            "llm-anatomy: w[::0]: expected a slice step of at least 1, found 0; torch slices only step forwards",
        ),
        ("w[..., ...]", "llm-anatomy: w[..., ...]: expected at most one '...', found 2"),
        (
            "lm_head.weight",
            "llm-anatomy: m.safetensors: expected a tensor named 'lm_head.weight', found no such tensor; list the names with `llm-anatomy params`",
        ),
        (
            "lm_head.weight[0]",
            "llm-anatomy: m.safetensors: expected a tensor named 'lm_head.weight', found no such tensor; list the names with `llm-anatomy params`",
        ),
    ],
)
def test_bad_index_or_name_is_one_exact_line(small_file, cli, argument, line):
    result = cli("values", small_file[0], argument)
    assert (result.code, result.out, result.err) == (2, "", line + "\n")


def test_index_into_an_empty_dimension_says_it_is_empty(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(str(tmp_path / "e.safetensors"), {"e": torch.zeros(0, 3)})
    result = cli("values", path, "e[0]")
    assert (result.code, result.out, result.err) == (
        2,
        "",
        "llm-anatomy: e[0]: expected no index (it is empty) for dimension 0 of size 0, found 0\n",
    )
    assert cli("values", path, "e[:, 1]").out == "e[:, 1]  [0]  F32\n" + str(torch.zeros(0, 3)[:, 1]) + "\n"


def test_filter_matching_nothing_is_a_usage_error_and_torch_style_takes_an_index(small_file, llama_dir, cli):
    result = cli("values", small_file[0], "--filter", "nope.*")
    assert (result.code, result.err) == (
        2,
        "llm-anatomy: m.safetensors: expected a tensor matching 'nope.*', found none; list the names with `llm-anatomy params`\n",
    )
    model = checkpoints.reference_model(llama_dir)
    for index, items in (
        ("[0]", 0),
        ("[:4, -2:]", (slice(None, 4), slice(-2, None))),
        ("[..., 0]", (Ellipsis, 0)),
        ("[:, :]", (slice(None), slice(None))),
    ):
        result = cli("values", llama_dir, "lm_head.weight" + index, "--style", "torch")
        assert (result.code, result.out) == (0, str(model.lm_head.weight[items]) + "\n"), result.err
    result = cli("values", llama_dir, "lm_head.weight[0, 0, 0]", "--style", "torch")
    assert (result.code, result.err) == (
        2,
        "llm-anatomy: lm_head.weight[0, 0, 0]: expected at most 2 indices for shape [128, 64], found 3\n",
    )


def test_options_change_the_printout_like_set_printoptions(small_file, cli):
    path, tensors_ = small_file
    result = cli("values", path, "w", "--edgeitems", "1", "--precision", "2", "--linewidth", "60")
    assert (
        result.out
        == "w  [40, 50]  F32\n" + _torch_str(tensors_["w"], PrintOptions(precision=2, edgeitems=1, linewidth=60)) + "\n"
    )
    result = cli("values", path, "w", "--threshold", "10000")
    assert result.out == "w  [40, 50]  F32\n" + _torch_str(tensors_["w"], PrintOptions(threshold=10000)) + "\n"


def test_options_may_come_before_or_after_tensor(small_file, cli):
    path, tensors_ = small_file
    expected = "w[0]  [50]  F32\n" + _torch_str(tensors_["w"][0], PrintOptions(precision=2)) + "\n"
    assert cli("values", path, "--precision", "2", "w[0]").out == expected
    assert cli("values", "--precision", "2", path, "w[0]").out == expected
    assert cli("values", path, "w[0]", "--precision", "2").out == expected
    extra = cli("values", path, "w", "extra")
    assert (extra.code, extra.err) == (2, "llm-anatomy: error: unrecognized arguments: extra\n")


def test_full_prints_every_element(small_file, cli):
    path, tensors_ = small_file
    result = cli("values", path, "w[:, 1:]", "--full")
    assert (
        result.out
        == "w[:, 1:]  [40, 49]  F32\n" + _torch_str(tensors_["w"][:, 1:], PrintOptions(threshold=math.inf)) + "\n"
    )


def test_full_streams_long_rows_in_pieces(tmp_path, cli, monkeypatch):
    import torch

    from llm_anatomy.render import torch_values, values_json

    monkeypatch.setattr(torch_values, "LINES_PER_PIECE", 3)
    monkeypatch.setattr(values_json, "JSON_ROW_CHUNK", 7)
    monkeypatch.setattr(elements, "STREAM_CHUNK_ELEMS", 11)
    vector = torch.randn(250, generator=torch.Generator().manual_seed(4)).half()
    path = checkpoints.safetensors_file(str(tmp_path / "v.safetensors"), {"v": vector})
    result = cli("values", path, "v", "--full")
    assert result.out == "v  [250]  F16\n" + _torch_str(vector, PrintOptions(threshold=math.inf)) + "\n"
    data = json.loads(cli("values", path, "v[::2]", "--full", "--json").out)
    assert data["tensors"][0]["values"] == vector[::2].tolist()


def test_many_shown_elements_are_read_row_by_row(tmp_path, monkeypatch):
    import torch

    from llm_anatomy.analysis import values

    monkeypatch.setattr(values, "MAX_SHOWN_IN_MEMORY", 10)
    tensor = torch.randn(5, 4, 3000, generator=torch.Generator().manual_seed(2))
    assert _ours(tmp_path, tensor) == _torch_str(tensor)


def test_json_lists_the_shown_positions_and_their_values(small_file, cli):
    path, tensors_ = small_file
    data = json.loads(cli("values", path, "--json", "--edgeitems", "1").out)
    assert data["model"] == "m.safetensors"
    assert data["options"] == {"precision": 4, "threshold": 1000, "edgeitems": 1, "linewidth": 80}
    w = data["tensors"][2]
    assert {k: v for k, v in w.items() if k != "values"} == {
        "name": "w",
        "tensor": "w",
        "dtype": "F32",
        "torch_dtype": "torch.float32",
        "stored_shape": [40, 50],
        "shape": [40, 50],
        "summarized": True,
        "indices": [[0, 39], [0, 49]],
    }
    assert w["values"] == [[tensors_["w"][i, j].item() for j in (0, 49)] for i in (0, 39)]
    assert data["tensors"][1]["values"] == [0, 1, 2, 3, 4, 5] and data["tensors"][1]["summarized"] is False


def test_json_spells_out_non_finite_values_and_scalars(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(
        str(tmp_path / "n.safetensors"),
        {"n": torch.tensor([math.nan, math.inf, -math.inf, -0.0]), "s": torch.tensor(2.5)},
    )
    data = json.loads(cli("values", path, "--json").out)
    assert data["tensors"][0]["values"] == ["nan", "inf", "-inf", -0.0]
    assert data["tensors"][1]["values"] == 2.5 and data["tensors"][1]["shape"] == []


# ---------------------------------------------------------------- reading only what is shown


def test_only_the_shown_elements_are_read(tmp_path, cli, monkeypatch):
    import torch

    big = torch.arange(2000 * 3000, dtype=torch.float32).reshape(2000, 3000)
    path = checkpoints.safetensors_file(str(tmp_path / "big.safetensors"), {"big": big})
    reads = []
    real_read = LocalFile.read

    def counting(self, offset, length, what):
        if what.startswith("data of "):  # element reads, not the header's
            reads.append(length)
        return real_read(self, offset, length, what)

    monkeypatch.setattr(LocalFile, "read", counting)
    result = cli("values", path)
    assert result.out == "big  [2000, 3000]  F32\n" + str(big) + "\n"
    # 36 elements shown (rows 0-2 and 1997-1999, three at each end); a row's two ends are
    # 12 KB apart, so they are read separately, but a row's end touches the next row's start.
    assert len(reads) == 8 and sum(reads) == 36 * 4


# ---------------------------------------------------------------- import cost


@pytest.mark.parametrize("style", ["named", "torch"])
def test_values_imports_neither_numpy_torch_transformers_nor_typing(llama_dir, cli, style):
    in_process = cli("values", llama_dir, "--style", style)  # warms the skeleton cache for --style torch
    assert in_process.code == 0
    code, loaded, out = imported_by("values", llama_dir, "--style", style)
    assert (code, loaded) == (0, [])
    assert out == in_process.out  # the light path prints the same text
    assert out.startswith(
        "Parameter containing:\n" if style == "torch" else "lm_head.weight  [128, 64]  F32\ntensor([["
    )


@pytest.mark.slow  # a subprocess streams 2,000,000 elements under a memory watch (~6 s)
def test_full_json_streams_in_bounded_memory(tmp_path):
    """`values --full --json` of 2,000,000 elements (8 MB in the file): the positions list of the
    one dimension was built whole (4M elements took 246 MB, hostile-2026-12 A11); streamed,
    the process stays near its baseline, and the document is the one json.loads reads."""
    import subprocess
    import sys

    import torch

    items = torch.arange(2_000_000, dtype=torch.float32)
    path = checkpoints.safetensors_file(str(tmp_path / "big.safetensors"), {"w": items})
    # The peak resident set of this process alone (VmHWM starts afresh at exec).
    script = "import sys\nfrom llm_anatomy.cli.main import main\ncode = main(sys.argv[1:])\nprint(code, [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1], file=sys.stderr)"
    with open(tmp_path / "out.json", "w") as out:
        result = subprocess.run(
            [sys.executable, "-c", script, "values", path, "w", "--full", "--json"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
    code, peak_kib = result.stderr.split()
    tensor = json.loads((tmp_path / "out.json").read_text())["tensors"][0]
    assert tensor["indices"] == [list(range(2_000_000))] and tensor["values"] == items.tolist()
    assert (code, int(peak_kib) < 60 * 1024) == ("0", True), peak_kib
