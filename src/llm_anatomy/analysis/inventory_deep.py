"""`scan --deep`: what an inventory row needs all the bytes for, in one pass over each file.
Each file of a checkpoint (its weights, shard index and config) is read once from start to
end (a local file in CHUNK_BYTES reads, an s3:// object in one streamed GET held to its
listed ETag) and hashed with sha256 as it passes: the digest the Hub shows as a weights
file's LFS oid, so a row can be matched to Hub metadata. While the pass goes by, every
tensor's statistics are computed (analysis/stats.tensor_stats, in the file's offset order,
so its reads only move forward) and what they show becomes findings: NaN or Inf values, a
tensor of zeros only, values a float16 copy could not hold. Memory stays bounded: the pass
holds what the stats reader asked for last plus one incoming chunk; a read behind the pass
(a second look at a tensor with many outliers) is fetched apart, as a ranged read."""

from __future__ import annotations

import hashlib
import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from ..core.errors import AnatomyError
from ..core.text import escape
from ..io.sources import check_range
from .scan.rules import Finding

CHUNK_BYTES = 8 << 20  # a local read or a streamed GET's chunk
FLOAT16_MAX = 65504.0
WIDER_FLOATS = ("F32", "F64", "BF16")  # whose values can lie past float16's range
# The files of a folder that --deep hashes: those inventory.content_key covers (its WEIGHTS
# and JSON files; not imported from there, which imports this module).
HASHED = (".safetensors", ".gguf", ".bin", ".pth", ".pt", ".json")


class Pass:
    """A byte source over one forward pass through a whole file of `size` bytes (chunks: the
    file's bytes in order), hashed as it goes; reread(start, end) fetches bytes behind it."""

    def __init__(self, name: str, size: int, chunks: Iterator[bytes], reread: Callable[[int, int], bytes]) -> None:
        self.name, self.size = name, size
        self._chunks, self._reread = chunks, reread
        self._buffer = bytearray()
        self._at = 0  # the file offset of _buffer[0]
        self._digest = hashlib.sha256()
        self.rereads = 0

    def _take(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._digest.update(chunk)
        self._buffer += chunk
        return True

    def stream(self, offset: int, length: int, what: str) -> bytes:
        check_range(self.name, offset, length, self.size, what)
        if offset < self._at:
            self.rereads += 1
            return self._reread(offset, offset + length)
        while self._at + len(self._buffer) < offset + length:
            if not self._take():
                raise self._short()
        start = offset - self._at
        data = bytes(self._buffer[start : start + length])
        del self._buffer[: start + length]
        self._at = offset + length
        return data

    read = stream

    def hexdigest(self) -> str:
        """The file's sha256, once the rest of it has passed (checked against its size)."""
        seen = self._at + len(self._buffer)
        self._buffer.clear()
        for chunk in self._chunks:
            self._digest.update(chunk)
            seen += len(chunk)
        if seen != self.size:
            raise self._short(seen)
        return self._digest.hexdigest()

    def _short(self, seen: int | None = None) -> AnatomyError:
        seen = self._at + len(self._buffer) if seen is None else seen
        return AnatomyError(
            self.name, f"{self.size} bytes", f"{seen} bytes", "the file changed while it was read; run again"
        )

    def settle(self) -> None:
        """Nothing waits for the first read."""

    def close(self) -> None:
        """The pass ends with hexdigest."""

    def __enter__(self) -> "Pass":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def local_pass(path: str) -> Pass:
    """A pass over a local file (opened without following a link)."""
    from ..io.sources import open_regular

    handle = open_regular(path)
    size = os.fstat(handle.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    def reread(start: int, end: int) -> bytes:
        return os.pread(handle.fileno(), end - start, start)

    return Pass(path, size, chunks(), reread)


def s3_pass(store: Any, bucket: str, key: str, etag: str) -> Pass:
    """A pass over an s3:// object: one GET streamed (If-Match its listed ETag)."""
    import obstore

    from ..hub import s3

    where = s3.url_of(bucket, key)
    options: dict[str, Any] = {"if_match": etag} if etag else {}
    answer = s3._calling(where, lambda: obstore.get(store, key, options=options))
    etag = etag or str(answer.meta.get("e_tag") or "")
    stream = answer.stream(min_chunk_size=CHUNK_BYTES)

    def chunks() -> Iterator[bytes]:
        while True:
            chunk = s3._calling(where, lambda: next(stream, None))
            if chunk is None:
                return
            yield bytes(chunk)

    return Pass(
        where, int(answer.meta["size"]), chunks(), lambda start, end: s3.get(store, bucket, key, start, end, etag)[0]
    )


def deep(catalog: Any, passes: dict[str, Pass]) -> tuple[dict[str, Any], list[Finding]]:
    """The deep columns of a checkpoint whose files are passes (relative name -> Pass; the
    catalog's tensors name their files by the passes' names) and the findings they show."""
    from ..core.catalog import matching
    from ..core.extras import require
    from ..io.sources import SourcedPath

    require("stats", catalog.name, "to compute weight statistics (--deep)")
    from ..decode.stream import Reader
    from .stats import tensor_stats

    relative = {p.name: name for name, p in passes.items()}
    sourced = {p.name: SourcedPath(p) for p in passes.values()}
    tensors = sorted(
        (t for t in matching(catalog, None) if str(t.file) in sourced),
        key=lambda t: (str(t.file), t.offset),
    )
    findings: list[Finding] = []
    nan = inf = 0
    absmax = 0.0
    reader = Reader(direct=False)
    try:
        import numpy as np

        with np.errstate(invalid="ignore", over="ignore"):  # signalling-NaN codes, sums of huge F64 values
            for info in tensors:
                stats = tensor_stats(info._replace(file=sourced[str(info.file)]), reader)
                findings += _findings(relative[str(info.file)], stats)
                nan, inf = nan + stats.nan, inf + stats.inf
                if stats.moments.count:
                    absmax = max(absmax, stats.absmax)
    finally:
        reader.close()
    hashes = {name: passes[name].hexdigest() for name in sorted(passes)}
    columns = {
        "sha256": json.dumps({escape(k): v for k, v in hashes.items()}, separators=(",", ":")),
        "nan_values": nan,
        "inf_values": inf,
        "absmax": absmax if tensors else None,
    }
    return columns, findings


def _findings(file: str, stats: Any) -> list[Finding]:
    """What one tensor's statistics show (rules LA-DATA-*)."""
    where = f"tensor {escape(stats.name)}"
    found = []
    if stats.nan or stats.inf:
        found.append(
            Finding("LA-DATA-001", file, where, f"{stats.nan} NaN and {stats.inf} Inf of {stats.numel} values")
        )
    if stats.numel and stats.zeros == stats.numel:
        found.append(Finding("LA-DATA-002", file, where, f"all {stats.numel} values are zero"))
    if stats.dtype in WIDER_FLOATS and stats.moments.count and stats.absmax > FLOAT16_MAX:
        found.append(Finding("LA-DATA-003", file, where, f"absmax {stats.absmax:.6g} in {stats.dtype}"))
    return found


def hashed(name: str) -> bool:
    """Whether --deep hashes a file of a checkpoint's folder: what its content key covers,
    the weights files (one of which the row describes) and the JSON files beside them."""
    return name.endswith(HASHED)


def local_passes(location: str) -> dict[str, Pass]:
    """A pass over each file of a local checkpoint: a GGUF file alone, or the weights and
    JSON files directly in its folder (links followed, as the readers follow them)."""
    if os.path.isfile(location):
        return {os.path.basename(location): local_pass(location)}
    names = sorted(n for n in os.listdir(location) if hashed(n) and os.path.isfile(os.path.join(location, n)))
    return {name: local_pass(os.path.join(location, name)) for name in names}


def s3_passes(location: str, store: Any, entries: dict[str, tuple[int, str]] | None) -> dict[str, Pass]:
    """A pass over each file of an s3:// checkpoint (a GGUF object alone, or the folder's
    weights and JSON files as listed), each held to the ETag it was listed with."""
    from ..hub import s3

    bucket, key = s3.split(location)
    if entries is None:
        return {key.rpartition("/")[2]: s3_pass(store, bucket, key, "")}
    return {name: s3_pass(store, bucket, f"{key}/{name}", entries[name][1]) for name in sorted(entries) if hashed(name)}


def merge_counts(first: str | None, second: str | None) -> str | None:
    """Two findings columns ("high:1 low:2", "0", with " (pickles not read)" kept) as one."""
    from .scan.rules import SEVERITIES

    if second is None:
        return first
    if first is None:
        return second
    counts: dict[str, int] = {}
    for text in (first, second):
        for part in text.split(" (")[0].split():
            severity, _, count = part.partition(":")
            if count.isdigit():
                counts[severity] = counts.get(severity, 0) + int(count)
    merged = " ".join(f"{s}:{counts[s]}" for s in SEVERITIES if counts.get(s)) or "0"
    return merged + (" (" + first.split(" (", 1)[1] if " (" in first else "")


def counted(findings: list[Finding]) -> str:
    from .scan.rules import SEVERITIES

    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    return " ".join(f"{s}:{n}" for s, n in counts.items() if n) or "0"
