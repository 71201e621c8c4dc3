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
from llm_anatomy.catalog import Catalog
from llm_anatomy.errors import AnatomyError
from llm_anatomy.formats import open_catalog

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], database=None)


def _small_state_dict():
    import torch

    torch.manual_seed(0)
    return {"embed.weight": torch.randn(8, 4), "norm.weight": torch.ones(4, dtype=torch.bfloat16), "ids": torch.arange(3)}


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
    writer.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(np.ones((2, 32), np.float32), gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
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
    state = {"embed.weight": ("F32", (8, 4)), "norm.weight": ("BF16", (4,)), "ids": ("I64", (3,))}  # _small_state_dict()
    expected = {"token_embd.weight": ("F32", (8, 4)), "blk.0.attn_q.weight": ("Q8_0", (2, 32))} if fmt == "gguf" else state
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
