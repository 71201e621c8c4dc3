"""A file read through ranges as a byte source (see byte_io): the chunks fetched so far
(or loaded from the header cache), and more fetched on demand through fetch(start, end),
which returns bytes start..end-1. It knows nothing of HTTP: remote.Request.fetcher gives it
the Hub's ranges, the tests a function over bytes. The shape is fsspec's caches' (a cache
object over a fetcher), the strategy this project's: sequential header reads fetch doubling
ranges, reads near the end fetch backwards, tensors come in parallel merged requests."""

from __future__ import annotations

import bisect
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Iterable

from ..io.sources import check_range
from ..core.errors import AnatomyError

MIN_FETCH_BYTES = 64 * 1024  # a header read past what is cached fetches at least this much...
MAX_FETCH_BYTES = 16 << 20  # ...doubling while reads run on sequentially (GGUF metadata), up to this
TAIL_BYTES = 256 * 1024  # a read near the end fetches this much before it (a zip's central directory)
PREFETCH_GAP_BYTES = 64 * 1024  # wanted ranges closer than this go in one request
WORKERS = 8  # parallel requests
# Bytes kept at most: a safetensors header may be 100 MB; past this the chunks at the lowest
# offsets are let go (fetched again if read again), so a header of any size (GGUF metadata of
# 2^40 entries) is read in bounded memory.
MAX_KEPT_BYTES = 128 << 20


def parallel(jobs: Iterable, function) -> list:
    """function(job) for each job, at most WORKERS at a time, in order; the first error raised."""
    jobs = list(jobs)
    if len(jobs) <= 1:
        return [function(job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(WORKERS, len(jobs))) as pool:
        return list(pool.map(function, jobs))


class RemoteFile:
    """A file of `size` bytes: the chunks given (start, bytes), and more from fetch(start,
    end) when read; fetch None means offline (only the chunks given can be read)."""

    def __init__(
        self, name: str, size: int, fetch: Callable[[int, int], bytes] | None, chunks: Iterable[tuple[int, bytes]] = ()
    ) -> None:
        self.name, self.size, self._fetcher = name, size, fetch
        self._starts: list[int] = []
        self._chunks: list[bytes] = []
        self._held = 0  # bytes in _chunks
        self._lock = threading.Lock()
        self._next_fetch = (-1, MIN_FETCH_BYTES)  # (where a sequential read would continue, its fetch size)
        self._kept: set[int] | None = None  # after keep(): the header's chunks; the rest a prefetch drops
        self._before_data: Callable[[], None] | None = None
        for start, data in chunks:
            self._add(start, data)

    def check_before_data(self, check: Callable[[], None]) -> None:
        """Run check() before the next read: what a format's reader leaves unverified while
        only headers are read, once it is done (torch_zip's local headers)."""
        self._before_data = check

    def settle(self) -> None:
        """Run now what waits for the first read (before forking: each worker would run it)."""
        self._data_read()

    def _data_read(self) -> None:
        if self._before_data is not None:
            check, self._before_data = self._before_data, None
            check()

    def __enter__(self) -> "RemoteFile":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass  # the chunks are the header cache until the command ends

    def chunks(self) -> list[tuple[int, bytes]]:
        return list(zip(self._starts, self._chunks))

    def keep(self) -> None:
        """What is fetched so far is the header, kept; tensor bytes fetched later are let go
        at the next prefetch, so memory stays bounded however many tensors are read."""
        self._kept = set(self._starts)

    def _release(self) -> None:
        if self._kept is not None:
            with self._lock:
                kept = [(start, data) for start, data in zip(self._starts, self._chunks) if start in self._kept]
                self._starts, self._chunks = [s for s, _ in kept], [d for _, d in kept]
                self._held = sum(map(len, self._chunks))

    def _add(self, start: int, data: bytes) -> None:
        with self._lock:
            index = bisect.bisect_left(self._starts, start)
            self._starts.insert(index, start)
            self._chunks.insert(index, data)
            self._held += len(data)
            position = 0
            while self._held > MAX_KEPT_BYTES and position < len(self._chunks):
                if self._chunks[position] is data:
                    position += 1
                    continue
                self._held -= len(self._chunks.pop(position))
                self._starts.pop(position)

    def _cached(self, offset: int, length: int) -> bytes | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        while index >= 0:  # an earlier, longer chunk may cover it too
            start, data = self._starts[index], self._chunks[index]
            if start + len(data) >= offset + length:
                return data[offset - start : offset - start + length]
            if index == 0 or offset - self._starts[index - 1] > MAX_FETCH_BYTES:
                break
            index -= 1
        return None

    def _get(self, start: int, length: int) -> bytes:
        if self._fetcher is None:
            raise AnatomyError(
                self.name,
                f"bytes {start}..{start + length} in the header cache",
                "they were never fetched",
                "run without HF_HUB_OFFLINE=1 to read them from the Hub",
            )
        data = self._fetcher(start, start + length)
        if len(data) != length:
            raise AnatomyError(
                self.name, f"{length} bytes at {start}", f"{len(data)} bytes", "the file changed; try again"
            )
        return data

    def _fetch(self, start: int, length: int) -> None:
        self._add(start, self._get(start, length))

    def stream(self, offset: int, length: int, what: str) -> bytes:
        """Bytes read once (stats, diff): fetched and handed over, never kept."""
        self._data_read()
        check_range(self.name, offset, length, self.size, what)
        cached = self._cached(offset, length)
        return cached if cached is not None else self._get(offset, length)

    def _cached_head(self, offset: int) -> bytes:
        """The cached bytes from offset on, up to the end of the chunk holding offset."""
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0 and self._starts[index] + len(self._chunks[index]) > offset:
            return self._chunks[index][offset - self._starts[index] :]
        return b""

    def read(self, offset: int, length: int, what: str) -> bytes:
        self._data_read()
        check_range(self.name, offset, length, self.size, what)
        data = self._cached(offset, length)
        if data is None:
            head = self._cached_head(offset)[:length]  # fetch only what lies past it
            rest, length_left = offset + len(head), length - len(head)
            continue_at, fetch = self._next_fetch
            fetch = min(MAX_FETCH_BYTES, 2 * fetch) if rest == continue_at else MIN_FETCH_BYTES
            fetch = max(length_left, fetch)
            start = rest
            if start + fetch > self.size:  # near the end: fetch backwards (zip directories end files)
                start = max(rest if head else 0, self.size - max(fetch, TAIL_BYTES))
                fetch = self.size - start
            fetched = self._get(start, fetch)
            self._add(start, fetched)
            self._next_fetch = (start + fetch, fetch)
            data = (
                head + fetched[rest - start : rest - start + length_left]
            )  # the chunks kept may have let go of head's
        return data

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch these (offset, length) ranges in parallel requests, nearby ones together,
        in place of the tensor bytes fetched before (see keep())."""
        self._data_read()
        self._release()
        merged: list[list[int]] = []
        for offset, length in sorted(ranges):
            if self._cached(offset, length) is not None or length <= 0:
                continue
            end = min(self.size, offset + length)
            if merged and offset - merged[-1][1] <= PREFETCH_GAP_BYTES and end - merged[-1][0] <= MAX_FETCH_BYTES:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([offset, end])
        parallel(merged, lambda span: self._fetch(span[0], span[1] - span[0]))

    def fileobj(self) -> BinaryIO:
        return _FileView(self)


class _FileView:
    """A seekable read-only file object over a byte source, for zipfile."""

    def __init__(self, source: RemoteFile) -> None:
        self.source, self.pos = source, 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = max(0, offset + (0, self.pos, self.source.size)[whence])
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.source.size - self.pos if n is None or n < 0 else min(n, max(0, self.source.size - self.pos))
        data = self.source.read(self.pos, n, "zip data")
        self.pos += n
        return data

    def close(self) -> None:
        pass
