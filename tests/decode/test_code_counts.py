"""The counts of raw 8- and 16-bit codes behind `stats` (code_counts.py): the C extension
(`_codes.c`) gives exactly numpy's bincount, on any length and alignment, refuses what it
cannot count, and `stats` gives the same figures with either.

The extension is the one an install builds; when these sources run from a checkout that was
not built (PYTHONPATH=src), the test builds it from `_codes.c` with setuptools, as pip does."""

import importlib.util
import os
import shutil
import sysconfig

import numpy as np
import pytest

from llm_anatomy.decode import histogram
from llm_anatomy.analysis.stats import weight_stats
from llm_anatomy.locate import open_catalog

from repo import ROOT

SOURCE = os.path.join(ROOT, "src", "llm_anatomy", "decode", "_codes.c")


def has_c_compiler() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    if histogram.count_compiled is not None:
        return histogram.count_compiled
    if not has_c_compiler():
        pytest.skip("no C compiler: the install falls back to numpy's bincount")
    from setuptools import Distribution, Extension

    build = tmp_path_factory.mktemp("codes-build")
    dist = Distribution({"ext_modules": [Extension("_codes", [SOURCE])]})
    command = dist.get_command_obj("build_ext")
    command.build_lib = command.build_temp = str(build)
    command.ensure_finalized()
    command.run()
    (built,) = [p for p in build.iterdir() if p.name.startswith("_codes") and p.suffix in (".so", ".pyd")]
    spec = importlib.util.spec_from_file_location("_codes", built)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.count


def bincount(data: np.ndarray, codes: int) -> np.ndarray:
    view = data.view(np.uint8 if codes == 256 else np.dtype("<u2"))
    return np.bincount(view, minlength=codes).astype(np.int64)


@pytest.mark.parametrize("codes", [256, 65536])
@pytest.mark.parametrize("values", [0, 1, 3, 4097, (1 << 20) + 7])
@pytest.mark.parametrize("offset", [0, 1])  # the second start is not 2-byte aligned
def test_compiled_counts_equal_bincount(compiled, codes, values, offset):
    width = 1 if codes == 256 else 2
    raw = np.random.default_rng(values).integers(0, 256, offset + values * width, dtype=np.uint8)
    data = raw[offset:]
    start = np.arange(codes, dtype=np.int64)  # counts are added to, not overwritten
    counts = start.copy()
    compiled(data, counts)
    assert np.array_equal(counts - start, bincount(data, codes))
    numpy_counts = start.copy()
    histogram.count_with_numpy(data, numpy_counts)
    assert np.array_equal(numpy_counts, counts)


def test_compiled_counts_every_code_of_both_widths(compiled):
    every = np.arange(65536, dtype="<u2").repeat(3).view(np.uint8)
    counts = np.zeros(65536, np.int64)
    compiled(every, counts)
    assert counts.tolist() == [3] * 65536
    counts = np.zeros(256, np.int64)
    compiled(every, counts)
    assert counts.tolist() == [3 * 256 * 2] * 256
    counts = np.zeros(256, np.int64)
    compiled(b"\x00\xff\xff", counts)  # any bytes-like object
    assert (counts[0], counts[255], counts.sum()) == (1, 2, 3)


def test_compiled_refuses_what_it_cannot_count(compiled):
    with pytest.raises(ValueError, match=r"^counts must hold 256 or 65536 int64, not 800 bytes$"):
        compiled(b"\x00\x01", np.zeros(100, np.int64))
    with pytest.raises(ValueError, match=r"^data of 3 bytes is not a whole number of 2-byte codes$"):
        compiled(b"\x00\x01\x02", np.zeros(65536, np.int64))
    with pytest.raises(ValueError, match=r"^counts must be 8-byte aligned$"):
        compiled(b"\x00", np.zeros(257 * 8 + 4, np.uint8)[4:].view(np.uint8)[: 256 * 8])
    with pytest.raises(TypeError):
        compiled(b"\x00", bytes(256 * 8))  # not writable


def test_stats_are_the_same_with_either_counter(compiled, tmp_path, monkeypatch):
    """Every figure `stats` gives for 1- and 2-byte dtypes, with the C counter and with numpy's
    (tensors above streaming.SMALL_ELEMS values: smaller ones are batched without counts)."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(7)
    normal = torch.randn(301, 247, generator=generator)
    tensors = {
        "f16": (normal * 0.02).half(),
        "bf16": (normal * 3).bfloat16(),
        "i8": torch.randint(-128, 128, (70001,), generator=generator, dtype=torch.int8),
        "u8": torch.randint(0, 256, (70003,), generator=generator, dtype=torch.uint8),
        "f8": normal.to(torch.float8_e4m3fn),
        "i16": torch.randint(-32768, 32768, (70007,), generator=generator, dtype=torch.int16),
    }
    tensors["f16"][0, :5] = torch.tensor([float("nan"), float("inf"), 0.0, -0.0, 60000.0])
    path = str(tmp_path / "model.safetensors")
    save_file(tensors, path)
    catalog = open_catalog(path)
    monkeypatch.setattr(histogram, "count", compiled)
    with_c = weight_stats(catalog)
    monkeypatch.setattr(histogram, "count", histogram.count_with_numpy)
    with_numpy = weight_stats(catalog)
    assert with_c == with_numpy

    def miscounting(data, counts):
        compiled(data, counts)
        counts[0] += 1

    monkeypatch.setattr(histogram, "count", miscounting)
    assert weight_stats(catalog) != with_c  # the figures above did come from the counter
    assert sorted(row.name for row in with_c.rows) == sorted(tensors) and not with_c.errors
