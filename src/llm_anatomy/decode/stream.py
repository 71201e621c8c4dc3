"""Stream whole tensors in bounded memory, decoded to float64, on all the cores.

Each worker owns one raw buffer (CHUNK_BYTES, filled with preadv: never a memory map of
the file, whose resident set grows with every page touched) and one float64 block (BLOCK_ELEMS).
A tensor is read chunk by chunk through the raw buffer and decoded block by block into
the float64 block, so memory stays the same whatever the model's size. Every range is
checked against the file's size before it is read (a truncated file becomes an
AnatomyError for that tensor, not a short read).

Tensors are read on all cores by io.parallel's forked workers, each with its own bounded
Readers, so the bound holds per worker (measured against threads in bench/bench_stream.py)."""

from __future__ import annotations

import errno
import mmap
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from ..io import parallel
from ..io.sources import file_size, is_local, open_bytes, open_regular_descriptor, settle
from ..core.catalog import TensorInfo, is_strided
from ..core.extras import require
from ..core.dtypes import DTYPES, DType
from ..core.errors import AnatomyError
from .elements import DECODING, eight_bit_float_values

# Raw bytes per read: direct reads need big requests to keep the disk busy (1 MiB ones ran
# at 0.8 GB/s here, 8 MiB ones at the disk's speed).
CHUNK_BYTES = 8 << 20
ALIGN = 4096  # direct reads start, end and land on page boundaries
DIRECT_FLAG = getattr(os, "O_DIRECT", 0)
# Reads shorter than this go through the page cache whatever is resident: going direct pays
# off for long sequential reads, and asking mincore first (~60 us) would cost more than a
# small read itself (a million tiny tensors apart in a file: a minute).
DIRECT_MIN_BYTES = 1 << 20
BLOCK_ELEMS = 1 << 17  # float64 values per decoded block (1 MiB: stays in the CPU's L2)
# Small tensors are read and computed in batches: one at a time, each costs a task, a read
# and a few dozen numpy calls (1.2 million tensors of 2 values took minutes), so many of
# them go in one task, neighbours in the file in one read, and every statistic is computed
# for the whole batch at once. Tensors of at most SMALL_ELEMS values qualify (under that,
# the per-tensor calls cost more than the values); a batch holds at most BATCH_ELEMS values
# (8 MiB as float64) and BATCH_TENSORS tensors (so that there are batches for every core).
SMALL_ELEMS = 1 << 16
BATCH_ELEMS = 1 << 20
BATCH_TENSORS = 4096


def batch_numel(info: TensorInfo) -> int:
    """The values a tensor counts for batching (run_batched's numel): a quantized weight
    (quant.dequant.Dequantized) or a strided view (catalog.StridedTensor) is never batched,
    its values come from its dequantizer or its storage and not from one read of its bytes."""
    return SMALL_ELEMS + 1 if hasattr(info, "dequantizer") or is_strided(info) else info.numel


@dataclass(frozen=True)
class Decoder:
    """How raw bytes become float64: `unit_bytes` bytes hold `unit_elems` values."""

    unit_bytes: int
    unit_elems: int
    decode: Callable[[np.ndarray, np.ndarray, "Scratch"], None]  # (raw uint8, float64 out, scratch)


class Scratch:
    """Per-worker reusable arrays for decoders that need an intermediate (bf16's uint32)."""

    def __init__(self, block_elems: int) -> None:
        self.words = np.empty(block_elems, np.uint32)


def _numpy_cast(code: str) -> Callable[[np.ndarray, np.ndarray, Scratch], None]:
    dtype = np.dtype(code)

    def decode(raw: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
        np.copyto(out, raw.view(dtype), casting="unsafe")

    return decode


def _bf16(raw: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
    """bfloat16 is the top half of a float32: widen to uint32, shift left 16, view as float32."""
    words = scratch.words[: out.size]
    np.copyto(words, raw.view("<u2"), casting="unsafe")
    np.left_shift(words, 16, out=words)
    np.copyto(out, words.view(np.float32), casting="unsafe")


def _lookup(name: str) -> Callable[[np.ndarray, np.ndarray, Scratch], None]:
    """8-bit floats: one 256-entry table (the same one `values` prints from)."""
    table = np.array(eight_bit_float_values(name), dtype=np.float64)

    def decode(raw: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
        np.take(table, raw, out=out)

    return decode


def _gguf_quant(name: str) -> Callable[[np.ndarray, np.ndarray, Scratch], None]:
    """GGML block quants: the gguf package's own dequantizer, one block-aligned chunk at a time
    (the same one `values` prints from)."""
    from gguf.constants import GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType[name]

    def decode(raw: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
        np.copyto(out, dequantize(raw, qtype).reshape(-1), casting="unsafe")

    return decode


# Each kind of elements.DECODING as numpy decodes it; complex has no order to take statistics of.
_BUILDERS: dict[str, Callable[[DType], Decoder]] = {
    "bf16": lambda dtype: Decoder(2, 1, _bf16),
    "byte table": lambda dtype: Decoder(1, 1, _lookup(dtype.name)),
    "struct": lambda dtype: Decoder(
        dtype.bits // 8, 1, _numpy_cast("<" + dtype.struct_code)
    ),  # numpy reads struct codes alike
    "ggml blocks": lambda dtype: Decoder(dtype.block_bytes, dtype.block_size, _gguf_quant(dtype.name)),
}


def _decoder(name: str) -> Decoder | None:
    """The numpy decoder of a dtype, by the kind elements.DECODING gives it; None when it has none."""
    build = _BUILDERS.get(DECODING.get(name, ""))
    try:
        return build(DTYPES[name]) if build is not None else None
    except ImportError:
        return None  # the gguf package is not installed


_DECODERS: dict[str, Decoder | None] = {}


def decoder_for(info: TensorInfo) -> Decoder:
    if info.dtype not in _DECODERS:
        _DECODERS[info.dtype] = _decoder(info.dtype)
    decoder = _DECODERS[info.dtype]
    if decoder is None:
        if DECODING.get(info.dtype) == "ggml blocks":  # as elements.decoder_for says it: the extra to install
            require("gguf", f"{info.file}: tensor {info.name}", f"to dequantize {info.dtype} blocks")
        raise AnatomyError(
            f"{info.file}: tensor {info.name}",
            "a dtype whose values can be streamed (float, integer, bool, 8-bit float, or a GGML quant the gguf package dequantizes)",
            info.dtype,
            "its values are left out; `llm-anatomy params` still lists it",
        )
    return decoder


class _Residency:
    """How much of a file range is in the page cache: mincore() on a transient read-only
    mapping of the range (no page is read or faulted in). mincore costs about half a
    microsecond per page here, 1 ms for an 8 MiB chunk, so it asks about PROBES pages spread
    evenly over the range (about 40 us), not every page. None where libc's mmap/mincore
    cannot be called (then reads stay direct)."""

    PROBES = 16

    def __init__(self) -> None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self._mmap, self._munmap, self._mincore = libc.mmap, libc.munmap, libc.mincore
        self._mmap.restype = ctypes.c_void_p
        self._mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        self._munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self._page = ctypes.create_string_buffer(1)
        self._failed = ctypes.c_void_p(-1).value

    def fraction(self, descriptor: int, start: int, length: int) -> float | None:
        """The share of the probed pages of [start, start + length) that are resident."""
        first = start - start % mmap.PAGESIZE
        span = start + length - first
        pages = -(-span // mmap.PAGESIZE)
        address = self._mmap(None, span, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, first)
        if address in (None, self._failed):
            return None
        try:
            probes = sorted(
                {page * (pages - 1) // max(1, self.PROBES - 1) for page in range(self.PROBES)} if pages > 1 else {0}
            )
            resident = 0
            for page in probes:
                if self._mincore(address + page * mmap.PAGESIZE, mmap.PAGESIZE, self._page) != 0:
                    return None
                resident += self._page.raw[0] & 1
        finally:
            self._munmap(address, span)
        return resident / len(probes)


def _residency() -> _Residency | None:
    try:
        return _Residency()
    except (OSError, AttributeError):  # no libc with mmap and mincore here
        return None


@dataclass
class _File:
    plain: int  # descriptor for reads through the page cache
    direct: int  # descriptor opened with O_DIRECT, or -1
    size: int


class Reader:
    """One worker's bounded buffers and open files.

    Each chunk is read from wherever it is: through the page cache when at least half its
    pages are there already (mincore, see _Residency: a second run, or one right after a
    download or a `cat`, reads at memory speed), and otherwise past the page cache
    (O_DIRECT) where the file system allows it: a one-pass scan of a whole model gains
    nothing from caching it, and a cold read of Llama-2-7B cost the kernel 1-1.3 s of CPU
    this way against 10-17 s through the cache (bench/RESULTS.md), CPU that the statistics
    need. Direct reads must start and end on ALIGN boundaries, so each read covers the
    wanted range rounded out to whole pages, and the chunk handed out is the wanted part of
    it. `cached_reads` and `direct_reads` count which way the chunks went."""

    def __init__(
        self, chunk_bytes: int = CHUNK_BYTES, block_elems: int = BLOCK_ELEMS, direct: bool = True, mapped: bool = False
    ) -> None:
        self.direct = direct and DIRECT_FLAG != 0
        self.mapped = mapped
        self._allocate(chunk_bytes)
        self.block = np.empty(block_elems, np.float64)
        self.scratch = Scratch(block_elems)
        self._files: dict[str, _File] = {}
        self._residency = _residency() if self.direct else None
        self.cached_reads = self.direct_reads = self.mapped_reads = 0

    def _allocate(self, chunk_bytes: int) -> None:
        """A page-aligned buffer (anonymous mmap) with room for a page either side of a chunk."""
        self.chunk_bytes = chunk_bytes
        self._map = mmap.mmap(-1, chunk_bytes + 2 * ALIGN)
        self.raw = np.frombuffer(self._map, np.uint8)

    def _open(self, path: str) -> _File:
        if path not in self._files and not is_local(path):  # a model on the Hub: no descriptor, HTTP ranges
            self._files[path] = _File(-1, -1, file_size(path))
        if path not in self._files:
            plain = open_regular_descriptor(path)
            direct = -1
            if self.direct:
                try:
                    direct = os.open(path, os.O_RDONLY | DIRECT_FLAG)
                except OSError:  # EINVAL: this file system has no direct reads
                    pass
            self._files[path] = _File(plain, direct, os.fstat(plain).st_size)
        return self._files[path]

    def close(self) -> None:
        for handle in self._files.values():
            if handle.plain >= 0:
                os.close(handle.plain)
            if handle.direct >= 0:
                os.close(handle.direct)
        self._files.clear()

    def _go_direct(self, handle: _File, position: int, want: int) -> bool:
        if handle.direct < 0 or want < DIRECT_MIN_BYTES:
            return False
        if self._residency is None:
            return True
        resident = self._residency.fraction(handle.plain, position, want)
        return resident is None or resident < 0.5

    def _read(self, info: TensorInfo, position: int, want: int) -> np.ndarray:
        handle = self._files[info.file]
        if handle.plain < 0:
            self.raw[:want] = np.frombuffer(
                open_bytes(info.file).stream(position, want, f"data of {info.name}"), np.uint8
            )
            return self.raw[:want]
        direct = self._go_direct(handle, position, want)
        if not direct and self.mapped and want >= DIRECT_MIN_BYTES:
            chunk = self._mapped_chunk(handle, position, want)
            if chunk is not None:
                return chunk
        start = position - position % ALIGN if direct else position
        length = -(-(position + want - start) // ALIGN) * ALIGN if direct else want
        try:
            got = os.preadv(handle.direct if direct else handle.plain, [memoryview(self.raw)[:length]], start)
        except OSError as exc:
            if direct and exc.errno == errno.EINVAL:  # direct open allowed, direct read refused: read normally
                os.close(handle.direct)
                handle.direct = -1
                return self._read(info, position, want)
            raise AnatomyError(
                f"{info.file}: tensor {info.name}",
                f"{want} readable bytes at byte {position}",
                exc.strerror or type(exc).__name__,
            ) from None
        if direct:
            self.direct_reads += 1
        else:
            self.cached_reads += 1
        skip = position - start
        if got < skip + want:
            raise AnatomyError(
                f"{info.file}: tensor {info.name}",
                f"{want} bytes at byte {position}",
                f"{max(0, got - skip)} bytes",
                "the file changed while it was read",
            )
        return self.raw[skip : skip + want]

    def _mapped_chunk(self, handle: _File, position: int, want: int) -> np.ndarray | None:
        """The range as a transient read-only mapping of the page cache (populated at once),
        not copied: a warm chunk costs its page-table entries, 0.01 s of CPU per GB here,
        where preadv's copy costs 0.15 s and leaves the histogram 20% slower behind it
        (bench/RESULTS.md). Only the chunk is mapped, and it is unmapped when its last view
        goes, so the resident set stays bounded. Only in forked workers: a file truncated
        under a mapping raises SIGBUS, which ends that worker (run_parallel says so in one
        line), never the command itself. None where the mapping fails: read it instead."""
        start = position - position % mmap.ALLOCATIONGRANULARITY
        try:
            mapping = mmap.mmap(
                handle.plain,
                position + want - start,
                flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                prot=mmap.PROT_READ,
                offset=start,
            )
        except (OSError, ValueError, OverflowError):
            return None
        self.mapped_reads += 1
        return np.frombuffer(mapping, np.uint8)[position - start : position - start + want]

    def _check(self, info: TensorInfo) -> None:
        """Open the tensor's file and check that its bytes lie inside it."""
        size = self._open(info.file).size
        end = info.offset + info.nbytes
        if info.offset < 0 or end > size:
            raise AnatomyError(
                f"{info.file}: tensor {info.name}",
                f"data at bytes {info.offset}..{end}",
                f"a file of {size} bytes",
                "the file is truncated; download it again",
            )

    def chunks(self, info: TensorInfo, unit_bytes: int) -> Iterator[np.ndarray]:
        """The tensor's bytes as consecutive views of the one raw buffer (whole units each)."""
        self._check(info)
        end = info.offset + info.nbytes
        step = self.chunk_bytes - self.chunk_bytes % unit_bytes
        position = info.offset
        while position < end:
            want = min(step, end - position)
            yield self._read(info, position, want)
            position += want

    def read_bytes(self, info: TensorInfo, start: int, length: int) -> np.ndarray:
        """`length` bytes of the tensor's data from its byte `start`, copied out of the reused
        raw buffer (a dequantizer's packed stripe or scales)."""
        self._check(info)
        if start < 0 or length < 0 or start + length > info.nbytes:
            raise AnatomyError(
                f"{info.file}: tensor {info.name}",
                f"bytes {start}..{start + length} inside its {info.nbytes}",
                "a range past its end",
            )
        out = np.empty(length, np.uint8)
        for done in range(0, length, self.chunk_bytes):
            want = min(self.chunk_bytes, length - done)
            out[done : done + want] = self._read(info, info.offset + start + done, want)
        return out

    def blocks(self, info: TensorInfo) -> Iterator[np.ndarray]:
        """The tensor's values as float64 in storage order, one reused block at a time: every
        block holds the same number of values (but the last), whatever the dtype, so two
        tensors' blocks line up. A quantized weight (quant.dequant.Dequantized) gives its
        dequantized values in logical order, a strided view (catalog.StridedTensor) its values
        in its own row-major order."""
        if hasattr(info, "dequantizer") or is_strided(info):
            yield from info.blocks(self)  # type: ignore[attr-defined]
            return
        decoder = decoder_for(info)
        units_per_block = max(1, len(self.block) // decoder.unit_elems)
        block_bytes = units_per_block * decoder.unit_bytes
        if units_per_block * decoder.unit_elems > len(self.block):  # tiny test blocks: one quant block must fit
            self.block = np.empty(units_per_block * decoder.unit_elems, np.float64)
        if block_bytes > self.chunk_bytes:  # tiny test chunks: one block must fit
            self._allocate(block_bytes)
        for chunk in self.chunks(info, block_bytes):
            for start in range(0, len(chunk), block_bytes):
                raw = chunk[start : start + block_bytes]
                out = self.block[: len(raw) // decoder.unit_bytes * decoder.unit_elems]
                decoder.decode(raw, out, self.scratch)
                yield out

    def reblock(self, pieces: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Values that come in pieces of any length (a dequantizer's rows, a reordering's
        windows) as float64 blocks of this reader's block size, the last one shorter: the
        blocks() contract, so that they line up with another tensor's blocks."""
        out = np.empty(len(self.block), np.float64)
        filled = 0
        for piece in pieces:
            piece = piece.reshape(-1)
            while piece.size:
                take = min(out.size - filled, piece.size)
                out[filled : filled + take] = piece[:take]
                filled += take
                piece = piece[take:]
                if filled == out.size:
                    yield out
                    filled = 0
        if filled:
            yield out[:filled]

    def gather(self, infos: Sequence[TensorInfo], keep_raw: bool = False) -> "Gathered":
        """The values of many small tensors as one float64 array, tensor i's at
        values[bounds[i]:bounds[i + 1]], read with one read per run of neighbours in a file
        (gaps of up to a page read through). A tensor that cannot be read is in `errors` and
        has no values. With keep_raw, also each tensor's raw bytes (raw[raw_bounds[i]:...])."""
        errors: dict[int, AnatomyError] = {}
        decoders: list[Decoder | None] = []
        for i, info in enumerate(infos):
            decoder = None
            try:
                decoder = decoder_for(info)
                self._check(info)
            except AnatomyError as exc:
                errors[i] = exc
            decoders.append(decoder)
            if info.nbytes > self.chunk_bytes:  # tiny test chunks: one tensor must fit
                self._allocate(info.nbytes)
        bounds = np.zeros(len(infos) + 1, np.int64)
        np.cumsum([0 if i in errors else info.numel for i, info in enumerate(infos)], out=bounds[1:])
        raw_bounds = np.zeros(len(infos) + 1, np.int64)
        if keep_raw:
            np.cumsum([0 if i in errors else info.nbytes for i, info in enumerate(infos)], out=raw_bounds[1:])
        gathered = Gathered(
            np.empty(int(bounds[-1]), np.float64), bounds, errors, np.empty(int(raw_bounds[-1]), np.uint8), raw_bounds
        )
        order = sorted(
            (i for i in range(len(infos)) if i not in errors), key=lambda i: (infos[i].file, infos[i].offset)
        )
        span: list[int] = []
        for i in order:
            if span:
                first, last = infos[span[0]], infos[span[-1]]
                end = last.offset + last.nbytes
                info = infos[i]
                if (
                    info.file != first.file
                    or not end <= info.offset <= end + ALIGN
                    or info.offset + info.nbytes - first.offset > self.chunk_bytes
                ):
                    self._decode_span(infos, span, decoders, gathered)
                    span = []
            span.append(i)
        if span:
            self._decode_span(infos, span, decoders, gathered)
        return gathered

    def _decode_span(self, infos: Sequence[TensorInfo], span: list[int], decoders: list, into: "Gathered") -> None:
        """One read for the span's tensors, then one decode per run of same-dtype neighbours."""
        first, last = infos[span[0]], infos[span[-1]]
        try:
            raw = self._read(first, first.offset, last.offset + last.nbytes - first.offset)
        except AnatomyError as exc:
            if len(span) == 1:  # the error names this tensor; its values are left unset
                into.errors[span[0]] = exc
                return
            for i in span:  # the read failed: read each alone, so the error names its tensor
                self._decode_span(infos, [i], decoders, into)
            return
        if into.raw.size:
            for i in span:
                start = infos[i].offset - first.offset
                into.raw[into.raw_bounds[i] : into.raw_bounds[i + 1]] = raw[start : start + infos[i].nbytes]
        run: list[int] = []
        for i in span:
            if run and not (
                decoders[i] is decoders[run[-1]]
                and i == run[-1] + 1
                and infos[i].offset == infos[run[-1]].offset + infos[run[-1]].nbytes
            ):
                self._decode_run(infos, run, decoders[run[0]], raw, first.offset, into)
                run = []
            run.append(i)
        self._decode_run(infos, run, decoders[run[0]], raw, first.offset, into)

    def _decode_run(
        self,
        infos: Sequence[TensorInfo],
        run: list[int],
        decoder: Decoder,
        raw: np.ndarray,
        base: int,
        into: "Gathered",
    ) -> None:
        """Decode a run of neighbours, a scratch's length of values at a time."""
        start = infos[run[0]].offset - base
        end = infos[run[-1]].offset + infos[run[-1]].nbytes - base
        out = into.values[into.bounds[run[0]] : into.bounds[run[-1] + 1]]
        step = max(1, len(self.scratch.words) // decoder.unit_elems) * decoder.unit_bytes
        for piece in range(start, end, step):
            first = (piece - start) // decoder.unit_bytes * decoder.unit_elems
            raw_piece = raw[piece : min(piece + step, end)]
            decoder.decode(
                raw_piece, out[first : first + len(raw_piece) // decoder.unit_bytes * decoder.unit_elems], self.scratch
            )


@dataclass
class Gathered:
    """What Reader.gather returns (see there)."""

    values: np.ndarray
    bounds: np.ndarray
    errors: dict
    raw: np.ndarray
    raw_bounds: np.ndarray


Task = TypeVar("Task")
Result = TypeVar("Result")


def run_parallel(
    tasks: Sequence[Task],
    work: Callable[..., Result],
    weight: Callable[[Task], int],
    readers_per_worker: int = 1,
    done: Callable[[Task], None] | None = None,
) -> list[Result]:
    """work(task, *readers) for every task on all cores (io.parallel.run_parallel), each
    worker with its own bounded Readers, whose reads map warm chunks in a forked worker
    (Reader._mapped_chunk) and copy them here. Results must pickle."""

    def guarded(task: Task, *readers: Reader) -> Result:
        with np.errstate(invalid="ignore", over="ignore"):  # signalling-NaN codes, sums of huge F64 values
            return work(task, *readers)

    return parallel.run_parallel(
        tasks, guarded, weight, lambda in_worker: [Reader(mapped=in_worker) for _ in range(readers_per_worker)], done
    )


def run_batched(
    tasks: Sequence[Task],
    one: Callable[..., Result],
    many: Callable[..., list],
    numel: Callable[[Task], int],
    place: Callable[[Task], tuple],
    weight: Callable[[Task], int],
    readers_per_worker: int = 1,
    done: Callable[[Task], None] | None = None,
) -> list[Result]:
    """Like run_parallel, but tasks of at most SMALL_ELEMS values go in batches: many(batch,
    *readers) returns one result per task of the batch. Batches are cut in the order of
    place(task) (file and offset), so that neighbours in a file share a batch and a read.
    Tasks are tensors or tuples of them: their remote sources are settled before the fork."""
    settle(tasks)
    small = sorted((i for i in range(len(tasks)) if numel(tasks[i]) <= SMALL_ELEMS), key=lambda i: place(tasks[i]))
    groups: list[tuple[bool, list[int]]] = [(False, [i]) for i in range(len(tasks)) if numel(tasks[i]) > SMALL_ELEMS]
    batch: list[int] = []
    values = 0
    for i in small:
        if batch and (values + numel(tasks[i]) > BATCH_ELEMS or len(batch) == BATCH_TENSORS):
            groups.append((True, batch))
            batch, values = [], 0
        batch.append(i)
        values += numel(tasks[i])
    if batch:
        groups.append((True, batch))

    def work(group: tuple[bool, list[int]], *readers: Reader) -> list:
        batched, members = group
        return many([tasks[i] for i in members], *readers) if batched else [one(tasks[members[0]], *readers)]

    def finished(group: tuple[bool, list[int]]) -> None:
        for i in group[1]:
            done(tasks[i])  # type: ignore[misc]

    # A batch weighs its bytes plus a page per tensor (what a tiny tensor costs is its calls).
    heft = lambda group: sum(weight(tasks[i]) + ALIGN for i in group[1])  # noqa: E731
    results: list = [None] * len(tasks)
    for group, outcome in zip(
        groups, run_parallel(groups, work, heft, readers_per_worker, finished if done is not None else None)
    ):
        for i, result in zip(group[1], outcome):
            results[i] = result
    return results
