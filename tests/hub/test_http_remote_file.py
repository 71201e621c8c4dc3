"""remote_file.RemoteFile over a fake fetch(start, end), no sockets (as fsspec tests its
caches): which ranges it asks for, what it keeps, and a GGUF read through it whose header
is generated on the fly, too large to exist, in bounded memory."""

import struct

import pytest

from llm_anatomy.io import sources
from llm_anatomy.hub import remote_file
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.hub.remote_file import RemoteFile


class Fetcher:
    """fetch(start, end) over content(start, end), logging each call as (start, end) and the
    bytes the file held then; refuses to serve more than `budget` bytes in all (a reader
    that does not stop fails the test instead of running for hours)."""

    def __init__(self, content, budget=256 << 20):
        self.content, self.budget = content, budget
        self.calls, self.held, self.served = [], [], 0
        self.file = None

    def __call__(self, start, end):
        self.calls.append((start, end))
        if self.file is not None:
            self.held.append(sum(len(data) for _, data in self.file.chunks()))
        self.served += end - start
        assert self.served <= self.budget, f"read on past {self.budget} bytes"
        return self.content(start, end)


def over_bytes(data):
    return lambda start, end: data[start:end]


def remote(name, size, fetcher, chunks=()):
    fetcher.file = RemoteFile(name, size, fetcher, chunks)
    return fetcher.file


def test_sequential_reads_fetch_doubling_ranges():
    data = bytes(range(256)) * 40_000  # 10,240,000 bytes
    fetch = Fetcher(over_bytes(data))
    source = remote("f", len(data), fetch, [(0, data[:100_000])])
    position = 0
    while position < 3_000_000:
        assert source.read(position, 4096, "x") == data[position : position + 4096]
        position += 4096
    assert fetch.calls == [
        (100_000, 165_536),
        (165_536, 296_608),
        (296_608, 558_752),
        (558_752, 1_083_040),
        (1_083_040, 2_131_616),
        (2_131_616, 4_228_768),
    ]


def test_a_read_near_the_end_fetches_backwards_and_stream_keeps_nothing():
    data = bytes(range(256)) * 4096  # 1 MiB
    fetch = Fetcher(over_bytes(data))
    source = remote("f", len(data), fetch)
    assert source.read(len(data) - 22, 22, "the zip's end record") == data[-22:]
    assert fetch.calls == [(len(data) - remote_file.TAIL_BYTES, len(data))]
    assert source.stream(10, 100, "x") == data[10:110]
    assert len(source.chunks()) == 1 and fetch.calls[-1] == (10, 110)


def test_prefetch_merges_near_ranges_and_lets_go_of_tensor_bytes():
    data = bytes(range(256)) * 8192  # 2 MiB
    fetch = Fetcher(over_bytes(data))
    source = remote("f", len(data), fetch, [(0, data[:1000])])
    source.keep()  # the header: kept
    source.prefetch([(2000, 100), (2000 + 100 + remote_file.PREFETCH_GAP_BYTES, 10), (1_000_000, 50), (500, 10)])
    assert sorted(fetch.calls) == [
        (2000, 2000 + 100 + remote_file.PREFETCH_GAP_BYTES + 10),
        (1_000_000, 1_000_050),
    ]  # (500, 10) was cached
    assert source.read(1_000_000, 50, "x") == data[1_000_000:1_000_050]
    source.prefetch([(1_500_000, 10)])
    assert [start for start, _ in source.chunks()] == [0, 1_500_000]


def test_offline_and_a_fetch_of_the_wrong_length_are_one_line():
    offline = RemoteFile("cache/f", 1000, None, [(0, b"x" * 100)])
    assert offline.read(0, 100, "x") == b"x" * 100
    with pytest.raises(AnatomyError) as refused:
        offline.read(100, 10, "x")  # near the end: the tail from 0 would have been fetched
    assert (
        refused.value.line()
        == "cache/f: expected bytes 0..1000 in the header cache, found they were never fetched; run without HF_HUB_OFFLINE=1 to read them from the Hub"
    )
    short = RemoteFile("f", 1000, lambda start, end: b"y" * (end - start - 1))
    with pytest.raises(AnatomyError) as refused:
        short.stream(0, 10, "x")
    assert refused.value.line() == "f: expected 10 bytes at 0, found 9 bytes; the file changed; try again"


def test_what_a_long_sequential_read_keeps_is_bounded(monkeypatch):
    monkeypatch.setattr(remote_file, "MAX_KEPT_BYTES", 1 << 20)
    monkeypatch.setattr(remote_file, "MAX_FETCH_BYTES", 256 << 10)
    data = bytes(range(256)) * (64 << 12)  # 64 MiB
    fetch = Fetcher(over_bytes(data))
    source = remote("f", len(data), fetch)
    for position in range(0, len(data), 1 << 20):
        assert source.read(position, 1 << 20, "x") == data[position : position + (1 << 20)]
    assert max(fetch.held) <= (1 << 20) + (256 << 10) and fetch.served == len(data)  # nothing fetched twice either


# ---------------------------------------------------------------- a GGUF header generated as it is read

U64 = struct.Struct("<Q")
GGUF_UINT8, GGUF_STRING, GGUF_ARRAY = 0, 8, 9


def gguf_head(kv_count, tensor_count=0):
    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count)


def key(name):
    return U64.pack(len(name)) + name.encode()


def periodic(prefix, unit, count, suffix=b""):
    """content(start, end) of prefix + unit * count + suffix, never built whole."""
    body_end = len(prefix) + len(unit) * count

    def content(start, end):
        out = bytearray()
        if start < len(prefix):
            out += prefix[start:end]
        first, last = max(start, len(prefix)), min(end, body_end)
        if first < last:
            phase = (first - len(prefix)) % len(unit)
            repeats = (last - first + phase) // len(unit) + 1
            out += (unit * repeats)[phase : phase + last - first]
        if end > body_end:
            out += suffix[max(0, start - body_end) : end - body_end]
        return bytes(out)

    return content, body_end + len(suffix)


def distinct_keys(count):
    """kv_count entries key00000000000001 = uint8 1, ... generated by index."""
    prefix = gguf_head(count)
    entry = 8 + 14 + 4 + 1

    def content(start, end):
        out = bytearray(prefix[start:end])
        first = max(start, len(prefix))
        index = (first - len(prefix)) // entry
        built = bytearray()
        while len(prefix) + index * entry < end:
            built += key(f"key{index:011d}") + struct.pack("<IB", GGUF_UINT8, 1)
            index += 1
        offset = first - len(prefix) - (first - len(prefix)) // entry * entry
        out += built[offset : offset + end - first]
        return bytes(out)

    return content, len(prefix) + count * entry


def read_gguf(monkeypatch, name, content, size, budget=64 << 20):
    from llm_anatomy.formats import gguf

    fetch = Fetcher(content, budget)
    source = remote(name, size, fetch, [(0, content(0, min(size, 100_000)))])
    return fetch, lambda: gguf.read_tensors(sources.SourcedPath(source))


def test_2_40_metadata_entries_are_refused_before_they_are_read(monkeypatch):
    content, size = distinct_keys(1 << 40)
    fetch, read = read_gguf(monkeypatch, "hub/evil.gguf", content, size)
    with pytest.raises(AnatomyError) as refused:
        read()
    assert (
        refused.value.line()
        == "hub/evil.gguf: expected at most 65536 metadata keys, found 1099511627776; the file is corrupt or hostile"
    )
    assert fetch.calls == [(100_000, 1 << 20)]  # the reader's first window, nothing more


def test_an_array_of_2_40_strings_is_refused_before_it_is_read(monkeypatch):
    prefix = gguf_head(1) + key("tokenizer.ggml.tokens") + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, 1 << 40)
    content, size = periodic(prefix, U64.pack(1) + b"a", 1 << 40)
    fetch, read = read_gguf(monkeypatch, "hub/evil.gguf", content, size)
    with pytest.raises(AnatomyError) as refused:
        read()
    assert (
        refused.value.line()
        == "hub/evil.gguf: expected at most 16777216 items in tokenizer.ggml.tokens, found 1099511627776; the file is corrupt or hostile"
    )
    assert fetch.calls == [(100_000, 1 << 20)]


def test_a_large_header_is_read_in_bounded_memory(monkeypatch):
    """60 MB of strings before the tensor infos: read through, keeping at most the budget
    (made 4 MiB here) and one fetch, not every chunk fetched on the way."""
    monkeypatch.setattr(remote_file, "MAX_KEPT_BYTES", 4 << 20)
    count = 600_000
    prefix = (
        gguf_head(1, tensor_count=1)
        + key("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, count)
    )
    infos = key("token_embd.weight") + struct.pack("<IQQIQ", 2, 16, 8, 0, 0)  # 2 dims, F32, offset 0
    metadata_end = len(prefix) + 100 * count
    padding = b"\0" * (-(metadata_end + len(infos)) % 32)
    content, size = periodic(prefix, U64.pack(92) + b"t" * 92, count, infos + padding + b"\0" * (16 * 8 * 4))
    fetch, read = read_gguf(monkeypatch, "hub/big.gguf", content, size, budget=2 * size)
    tensors, metadata = read()
    assert [(t.name, t.shape, t.nbytes) for t in tensors] == [("token_embd.weight", (8, 16), 512)]
    assert metadata["tokenizer.ggml.tokens"].item_count == count
    assert max(fetch.held) <= (4 << 20) + remote_file.MAX_FETCH_BYTES
    assert fetch.served < size + (1 << 20)  # each byte once
