"""Mutated headers of every format (safetensors, GGUF, torch zip): the readers either return
a Catalog or raise the project's own error; never another exception, a hang or a crash."""

import io
import os
import tempfile
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import checkpoints
from llm_anatomy.core.catalog import Catalog
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.locate import open_catalog

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def _small_state_dict():
    import torch

    torch.manual_seed(0)
    return {
        "embed.weight": torch.randn(8, 4),
        "norm.weight": torch.ones(4, dtype=torch.bfloat16),
        "ids": torch.arange(3),
    }


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """One small valid file per format, and the length of its header region."""
    import gguf
    import numpy as np
    import torch

    folder = tmp_path_factory.mktemp("fuzz_seeds")
    state = _small_state_dict()
    safetensors_path = checkpoints.safetensors_file(str(folder / "seed.safetensors"), state)
    gguf_path = str(folder / "seed.gguf")
    writer = gguf.GGUFWriter(gguf_path, "llama")
    writer.add_block_count(1)
    writer.add_token_list(["a", "b", "c", "d"])
    writer.add_tensor("token_embd.weight", state["embed.weight"].numpy())
    writer.add_tensor(
        "blk.0.attn_q.weight",
        gguf.quants.quantize(np.ones((2, 32), np.float32), gguf.GGMLQuantizationType.Q8_0),
        raw_dtype=gguf.GGMLQuantizationType.Q8_0,
    )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    torch_path = str(folder / "seed.pt")
    torch.save(state, torch_path)
    with open(safetensors_path, "rb") as handle:
        safetensors_header = 8 + int.from_bytes(handle.read(8), "little")
    return {
        "safetensors": (open(safetensors_path, "rb").read(), safetensors_header),
        "gguf": (open(gguf_path, "rb").read(), open_catalog(gguf_path).tensors[0].offset),
        "torch": (open(torch_path, "rb").read(), None),
    }


def _read(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model" + suffix)
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            assert isinstance(open_catalog(path), Catalog)
        except AnatomyError:
            pass


@pytest.mark.parametrize("fmt", ["safetensors", "gguf", "torch"])
def test_unmutated_seeds_read(seeds, fmt, tmp_path):
    """The fuzzing starts from files the readers accept, so a reader that refused everything would fail here."""
    path = tmp_path / f"seed.{fmt}"
    path.write_bytes(seeds[fmt][0])
    state = {
        "embed.weight": ("F32", (8, 4)),
        "norm.weight": ("BF16", (4,)),
        "ids": ("I64", (3,)),
    }  # _small_state_dict()
    expected = (
        {"token_embd.weight": ("F32", (8, 4)), "blk.0.attn_q.weight": ("Q8_0", (2, 32))} if fmt == "gguf" else state
    )
    assert {t.name: (t.dtype, t.shape) for t in open_catalog(str(path)).tensors} == expected


def _mutate(data: bytes, limit: int, edits: list, cut: int | None) -> bytes:
    mutated = bytearray(data)
    for position, value in edits:
        mutated[position % limit] = value
    return bytes(mutated[:cut] if cut is not None else mutated)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)
CUT = st.one_of(st.none(), st.integers(0, 4096))


@pytest.mark.parametrize("fmt", ["safetensors", "gguf"])
@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_headers(seeds, fmt, edits, cut):
    data, header_bytes = seeds[fmt]
    _read(_mutate(data, header_bytes, edits, cut), "." + fmt)


def _pickle_of(data: bytes) -> tuple[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return name, archive.read(name)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_torch_pickles(seeds, edits, cut):
    """The pickle itself mutated and zipped again as torch does, so the unpickler sees it."""
    data, _ = seeds["torch"]
    name, pickle_bytes = _pickle_of(data)
    mutated = _mutate(pickle_bytes, len(pickle_bytes), edits, cut)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            target.writestr(info, mutated if info.filename == name else source.read(info))
    _read(buffer.getvalue(), ".pt")


@FUZZ
@given(edits=EDITS, cut=st.one_of(st.none(), st.integers(0, 1 << 16)))
def test_mutated_torch_zip_bytes(seeds, edits, cut):
    data, _ = seeds["torch"]
    _read(_mutate(data, len(data), edits, cut), ".pt")


# JSON values as they come in configs and indexes, hostile ones included: deep nesting,
# huge integers, strings full of brackets, quotes and escapes.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet='[]{}",:\\ab.0')
    | st.sampled_from(["seed.safetensors", "../seed.safetensors", "", ".", "a/b"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet='ab.0[{"\\'), children, max_size=4)
    ),
    max_leaves=20,
)
RAW_EDITS = st.lists(
    st.tuples(st.integers(0, 1 << 16), st.sampled_from(list(b'[]{}",:\\0123456789-e.\xff '))), max_size=6
)


def _json_bytes(value, edits, cut) -> bytes:
    import json

    text = json.dumps(value).encode()
    return _mutate(text, max(len(text), 1), edits, cut) if text else text


def _read_folder(seeds, files: dict) -> None:
    """A folder with the seed safetensors file and the given extra files; the catalog, and
    the config when asked, come back or raise the project's own error."""
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "seed.safetensors"), "wb") as handle:
            handle.write(seeds["safetensors"][0])
        for name, content in files.items():
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(content)
        try:
            catalog = open_catalog(folder)
            assert isinstance(catalog, Catalog)
            catalog.require_config()
        except AnatomyError:
            pass


@FUZZ
@given(
    weight_map=st.dictionaries(
        st.sampled_from(["embed.weight", "norm.weight", "ids", "missing"]), JSON_VALUES, max_size=4
    )
    | JSON_VALUES,
    edits=RAW_EDITS,
    cut=st.one_of(st.none(), st.integers(0, 400)),
)
def test_fuzzed_index_files(seeds, weight_map, edits, cut):
    _read_folder(seeds, {"model.safetensors.index.json": _json_bytes({"weight_map": weight_map}, edits, cut)})


@FUZZ
@given(
    config=st.dictionaries(
        st.sampled_from(["model_type", "num_hidden_layers", "hidden_size", "architectures", "rope_scaling"]),
        JSON_VALUES,
        max_size=5,
    )
    | JSON_VALUES,
    edits=RAW_EDITS,
    cut=st.one_of(st.none(), st.integers(0, 400)),
)
def test_fuzzed_config_files(seeds, config, edits, cut):
    _read_folder(seeds, {"config.json": _json_bytes(config, edits, cut)})


@FUZZ
@given(
    depth=st.integers(0, 5000),
    opener=st.sampled_from(["[", '{"a":']),
    closed=st.booleans(),
    inside_string=st.booleans(),
)
def test_fuzzed_nesting_in_configs(seeds, depth, opener, closed, inside_string):
    """Nesting of any depth, closed or not, in or out of strings: never a RecursionError."""
    closer = "]" if opener == "[" else "}"
    body = opener * depth + "1" + (closer * depth if closed else "")
    text = '{"x": ' + (json_string(body) if inside_string else body) + "}"
    _read_folder(seeds, {"config.json": text.encode()})


def json_string(text: str) -> str:
    import json

    return json.dumps(text)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


NESTED = st.recursive(
    st.text(alphabet='[]{}",\\a'),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\a'), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=NESTED, wrap=st.integers(0, 70), ensure_ascii=st.booleans())
def test_nesting_scan_agrees_with_the_parsed_depth(value, wrap, ensure_ascii):
    """bounded_json measures nesting on the bytes outside strings (brackets, quotes and
    backslashes inside strings included): it refuses exactly the documents deeper than 64."""
    import json

    from llm_anatomy.io import bounded_json

    document = [value]
    for _ in range(wrap):
        document = [document]
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode()
    try:
        assert bounded_json.loads(raw, "p", "a document", "todo") == document
        assert _depth(document) <= bounded_json.MAX_DEPTH
    except AnatomyError as refused:
        assert "nested at most 64 levels deep" in refused.line()
        assert _depth(document) > bounded_json.MAX_DEPTH


# ---------------------------------------------------------------- config.json contents

from llm_anatomy.core.config_schema import FIELDS, ROPE_FIELDS  # noqa: E402

# Any JSON value, NaN and the infinities included (Python's json reads and writes them).
CONFIG_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)
# Values in the ranges a real config has, so that edits also reach the analyses and the
# skeleton builder instead of being refused at the schema.
SANE_VALUES = (
    st.integers(0, 48)
    | st.sampled_from(["linear", "yarn", "dynamic", "llama3", "sliding_attention", "float16"])
    | st.lists(st.integers(0, 3), max_size=3)
)
ROPE_EDITS = st.dictionaries(
    st.sampled_from(sorted(ROPE_FIELDS)), CONFIG_VALUES | SANE_VALUES | st.floats(0.5, 64), max_size=4
)
CONFIG_EDITS = st.dictionaries(
    st.sampled_from(sorted(FIELDS)),
    CONFIG_VALUES
    | SANE_VALUES
    | ROPE_EDITS
    | st.fixed_dictionaries({"num_hidden_layers": CONFIG_VALUES | SANE_VALUES}),
    max_size=6,
)
CONFIG_COMMANDS = (
    ("summary",),
    ("config", "--explain"),
    ("config",),
    ("tree",),
    ("params", "--style", "torch"),
    ("values", "--style", "torch"),
    ("report", "-o", "REPORT"),
)


@pytest.fixture(scope="module")
def config_model(tmp_path_factory):
    return checkpoints.tiny_llama(str(tmp_path_factory.mktemp("fuzz_config")), shard=None)


def _one_line_or_output(code, out: str, err: str) -> None:
    from hostile import TERMINAL_UNSAFE

    if code == 0:
        assert out
        return
    lines = err.split("\n")
    assert code in (1, 2) and len(lines) == 2 and lines[1] == "" and lines[0].startswith("llm-anatomy"), err[-2000:]
    assert not TERMINAL_UNSAFE.search(lines[0])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(edits=CONFIG_EDITS)
def test_config_contents(config_model, tmp_path, capsys, edits):
    """Random JSON values for the fields config_schema checks, through every command that reads
    the config: each ends with its output, or with exactly one line of the project's own error."""
    import json
    import shutil

    from llm_anatomy.cli.main import main

    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
        model = os.path.join(folder, "model")
        shutil.copytree(config_model, model)
        with open(os.path.join(model, "config.json")) as handle:
            config = json.load(handle)
        config.update(edits)
        with open(os.path.join(model, "config.json"), "w") as handle:
            json.dump(config, handle)
        for command in CONFIG_COMMANDS:
            args = [os.path.join(folder, "report.html") if a == "REPORT" else a for a in command]
            try:
                code = main([args[0], model, *args[1:]])
            except SystemExit as exc:
                code = exc.code
            captured = capsys.readouterr()
            _one_line_or_output(code, captured.out, captured.err)
