"""The streaming reader: every dtype decodes to exactly torch's float64 values, through
many chunks and blocks; ranges past the end of a file become one exact error line."""

import os
import signal
import sys

import numpy as np
import pytest
import torch

from checkpoints import llama_gguf, safetensors_file
from llm_anatomy.decode import stream
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.locate import open_catalog
from llm_anatomy.decode.stream import Reader, _Residency, run_parallel

SPECIALS = torch.tensor([0.0, -0.0, 1.0, -2.5, 1e-3, 65504.0, float("nan"), float("inf"), float("-inf")])

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _values(dtype):
    torch.manual_seed(0)
    if dtype.is_floating_point:
        x = torch.cat([torch.randn(1000) * 3, SPECIALS])
        if dtype == torch.float8_e4m3fn:
            x = x[torch.isfinite(x)].clamp(-448, 448)  # e4m3fn has no infinities; torch saturates nothing
        return x.to(dtype)
    if dtype == torch.bool:
        return torch.rand(1000) > 0.5
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -(2**40)), min(info.max, 2**40), (1000,), dtype=dtype)


def _stream(info, reader):
    return np.concatenate([block.copy() for block in reader.blocks(info)])


def _evict(path):
    """Drop the file's pages from the page cache (clean pages go at once)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
@pytest.mark.parametrize("name", sorted(DTYPES))
def test_every_dtype_decodes_to_torch_float64_through_small_chunks(tmp_path, name, direct, monkeypatch):
    tensor = _values(DTYPES[name])
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor})
    info = open_catalog(path).get("t")
    assert info.dtype == name
    _evict(path)
    monkeypatch.setattr(stream, "DIRECT_MIN_BYTES", 0)  # reads this small go direct too
    reader = Reader(chunk_bytes=40, block_elems=8, direct=direct)  # 5 values of F64 per read, blocks of 8
    got = _stream(info, reader)
    assert (reader.direct_reads > 0, reader.cached_reads > 0) == (direct, not direct)  # /tmp here allows direct reads
    expected = tensor.to(torch.float64).numpy()
    np.testing.assert_array_equal(got, expected)  # NaN where torch has NaN, bit-exact elsewhere


def test_each_chunk_is_read_from_the_page_cache_when_it_is_there_and_directly_when_not(tmp_path):
    tensor = torch.randn(3 << 20)  # 12 MiB: two chunks of 8 MiB
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor})
    info = open_catalog(path).get("t")
    expected = tensor.to(torch.float64).numpy()
    _evict(path)
    cold = Reader()
    np.testing.assert_array_equal(_stream(info, cold), expected)
    assert (cold.direct_reads, cold.cached_reads) == (2, 0)
    descriptor = os.open(path, os.O_RDONLY)
    assert _Residency().fraction(descriptor, info.offset, info.nbytes) < 0.01  # direct reads left the cache alone
    os.close(descriptor)
    with open(path, "rb") as handle:  # as `cat` would: now every page is in the cache
        handle.read()
    warm = Reader()
    np.testing.assert_array_equal(_stream(info, warm), expected)
    assert (warm.direct_reads, warm.cached_reads) == (0, 2)
    small = Reader(chunk_bytes=1 << 19)
    _evict(path)
    _stream(info, small)
    assert (small.direct_reads, small.cached_reads) == (0, 24)  # reads under DIRECT_MIN_BYTES: never direct


def test_default_buffers_cross_block_boundaries(tmp_path):
    tensor = torch.randn(300_000).to(torch.bfloat16)  # more than one 2**18-value block
    info = open_catalog(safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor})).get("t")
    np.testing.assert_array_equal(_stream(info, Reader()), tensor.to(torch.float64).numpy())


def test_gguf_quants_stream_as_gguf_dequantizes_them(llama_dir, tmp_path):
    import gguf

    path = llama_gguf(str(llama_dir), str(tmp_path / "m.gguf"))
    reader = gguf.GGUFReader(path)
    catalog = open_catalog(path)
    checked = set()
    for tensor in reader.tensors:
        info = catalog.get(tensor.name)
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float64).reshape(-1)
        np.testing.assert_array_equal(_stream(info, Reader(chunk_bytes=64, block_elems=64)), expected)
        checked.add(info.dtype)
    assert {"Q8_0", "Q4_0", "BF16", "F16", "F32"} <= checked


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
def test_gather_decodes_many_tensors_as_torch_does_across_reads_and_pieces(tmp_path, direct, monkeypatch):
    tensors = {f"{i:02d}_{name}": _values(DTYPES[name])[: 10 + i] for i, name in enumerate(sorted(DTYPES))}
    path = safetensors_file(str(tmp_path / "t.safetensors"), tensors)
    catalog = open_catalog(path)
    infos = [catalog.get(name) for name in reversed(list(tensors))]  # any order: read in file order
    _evict(path)
    monkeypatch.setattr(stream, "DIRECT_MIN_BYTES", 0)
    reader = Reader(chunk_bytes=256, block_elems=8, direct=direct)  # several reads, runs decoded 8 values at a time
    got = reader.gather(infos, keep_raw=True)
    assert got.errors == {} and (reader.direct_reads > 0, reader.cached_reads > 0) == (direct, not direct)
    for i, info in enumerate(infos):
        expected = tensors[info.name].to(torch.float64).numpy()
        np.testing.assert_array_equal(got.values[got.bounds[i] : got.bounds[i + 1]], expected)
        with open(path, "rb") as handle:
            handle.seek(info.offset)
            assert got.raw[got.raw_bounds[i] : got.raw_bounds[i + 1]].tobytes() == handle.read(info.nbytes)


def test_gather_reports_each_unreadable_tensor_and_reads_the_rest(tmp_path):
    path = safetensors_file(
        str(tmp_path / "t.safetensors"),
        {"a": torch.ones(4), "b": torch.full((4,), 2.0), "c": torch.ones(2, dtype=torch.complex64)},
    )
    catalog = open_catalog(path)
    os.truncate(path, catalog.get("b").offset + 10)
    got = Reader().gather([catalog.get("c"), catalog.get("b"), catalog.get("a")])
    assert sorted(got.errors) == [0, 1]
    assert got.errors[1].line().endswith("the file is truncated; download it again")
    assert list(got.bounds) == [0, 0, 0, 4] and list(got.values) == [1.0] * 4


def test_data_past_the_end_of_a_truncated_file_is_one_exact_error(tmp_path):
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"a": torch.ones(4), "b": torch.ones(4)})
    info = open_catalog(path).get("b")
    os.truncate(path, info.offset + 10)
    with pytest.raises(AnatomyError) as caught:
        list(Reader().blocks(info))
    assert (
        caught.value.line()
        == f"{path}: tensor b: expected data at bytes {info.offset}..{info.offset + 16}, found a file of {info.offset + 10} bytes; the file is truncated; download it again"
    )


def test_unsupported_dtype_is_one_exact_error(tmp_path):
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"c": torch.ones(2, dtype=torch.complex64)})
    info = open_catalog(path).get("c")
    with pytest.raises(AnatomyError) as caught:
        list(Reader().blocks(info))
    assert caught.value.line() == (
        f"{path}: tensor c: expected a dtype whose values can be streamed (float, integer, bool, 8-bit float, "
        "or a GGML quant the gguf package dequantizes), found C64; its values are left out; `llm-anatomy params` still lists it"
    )


def test_run_parallel_keeps_task_order_and_gives_each_worker_its_own_reader():
    finished = []
    results = run_parallel(
        [3, 1, 2, 5],
        lambda task, reader: (task * 2, isinstance(reader, Reader), os.getpid()),
        weight=lambda t: t,
        done=finished.append,
    )
    assert [r[:2] for r in results] == [(6, True), (2, True), (4, True), (10, True)]
    assert sorted(finished) == [1, 2, 3, 5]
    assert os.getpid() not in {r[2] for r in results} or (os.cpu_count() or 1) == 1  # forked workers


def _kill_self(task, *readers):
    os.kill(os.getpid(), signal.SIGKILL)


def test_warm_chunks_are_mapped_in_workers_and_read_the_same(tmp_path):
    """A worker's reader maps each resident chunk instead of copying it; the values, and every
    statistic of a 16-bit tensor (its histogram), are those a copying reader gets."""
    from llm_anatomy.analysis.stats import tensor_stats

    tensor = torch.randn(3 << 20)  # 12 MiB of F32, 6 MiB of F16: chunks of 8 MiB
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"t": tensor, "h": tensor.half()})
    catalog = open_catalog(path)
    with open(path, "rb") as handle:  # as `cat` would: every page in the cache
        handle.read()
    mapped = Reader(mapped=True)
    np.testing.assert_array_equal(_stream(catalog.get("t"), mapped), tensor.to(torch.float64).numpy())
    assert (mapped.mapped_reads, mapped.cached_reads, mapped.direct_reads) == (2, 0, 0)
    assert tensor_stats(catalog.get("h"), Reader(mapped=True)) == tensor_stats(catalog.get("h"), Reader(direct=False))
    assert Reader().mapped is False  # outside a worker: copies (a SIGBUS there would end the command)


def test_a_killed_worker_is_an_error_not_a_hang(monkeypatch):
    from llm_anatomy.io import parallel

    monkeypatch.setattr(parallel, "workers", lambda: 2)
    with pytest.raises(AnatomyError) as caught:
        run_parallel([1, 2, 3], _kill_self, weight=lambda task: task)
    assert (
        caught.value.line()
        == "a worker process: expected to finish its tensors, found it was killed (perhaps for lack of memory, or a weights file was truncated while it was read); run again, or read fewer tensors at once with --filter"
    )


def test_bool_bytes_other_than_0_and_1_read_as_torch_reads_them(tmp_path):
    path = safetensors_file(str(tmp_path / "t.safetensors"), {"t": torch.zeros(4, dtype=torch.bool)})
    info = open_catalog(path).get("t")
    with open(path, "r+b") as handle:  # a writer other than torch may store any nonzero byte as true
        handle.seek(info.offset)
        handle.write(bytes([0, 1, 2, 255]))
    stored = torch.frombuffer(bytearray([0, 1, 2, 255]), dtype=torch.bool)
    np.testing.assert_array_equal(_stream(info, Reader()), stored.double().numpy())
    assert stored.double().tolist() == [0.0, 1.0, 1.0, 1.0]


def test_a_ggml_type_gguf_cannot_dequantize_is_one_exact_error(tmp_path):
    import gguf

    path = str(tmp_path / "q.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("w", np.zeros((1, 40), np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_1)  # one block of 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = open_catalog(path).get("w")
    assert (info.dtype, info.shape) == ("Q8_1", (1, 32))
    with pytest.raises(AnatomyError) as caught:
        list(Reader().blocks(info))
    assert caught.value.line() == (
        f"{path}: tensor w: expected a dtype whose values can be streamed (float, integer, bool, 8-bit float, "
        "or a GGML quant the gguf package dequantizes), found Q8_1; its values are left out; `llm-anatomy params` still lists it"
    )


def test_a_ggml_block_quant_without_the_gguf_package_names_the_extra(tmp_path, monkeypatch):
    """Streamed (stats, diff, verify) as read one element at a time (values): the line says
    which extra dequantizes the blocks, not that the type cannot be streamed."""
    import gguf

    path = str(tmp_path / "q.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    blocks = gguf.quants.quantize(
        np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), gguf.GGMLQuantizationType.Q4_0
    )
    writer.add_tensor("w", blocks, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = open_catalog(path).get("w")
    for module in [name for name in sys.modules if name == "gguf" or name.startswith("gguf.")]:
        monkeypatch.setitem(sys.modules, module, None)  # find_spec: not installed; importing it: ImportError
    monkeypatch.setattr(stream, "_DECODERS", {})  # no decoder built while it was
    with pytest.raises(AnatomyError) as caught:
        list(Reader().blocks(info))
    assert caught.value.line() == (
        f"{path}: tensor w: expected gguf to dequantize Q4_0 blocks, found gguf is not installed; "
        "pip install 'llm-anatomy[gguf]'"
    )
