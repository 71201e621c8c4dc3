"""Weight statistics of every tensor, read once, in bounded memory, exact in float64.

Per tensor: mean, population std, min, max, absmax, L2 norm, the fraction of exact zeros,
NaN and Inf counts, and how many values lie more than 6 standard deviations from the
tensor's own mean. NaN and Inf are counted apart and left out of everything else.

How it stays exact in one pass:
- 1- and 2-byte types (F16, BF16, the F8s, I8/U8/I16/U16, BOOL), most of today's
  checkpoints: a histogram of the raw bit patterns (at most 65536), then everything from
  the (value, count) pairs, sums correctly rounded by math.fsum. No value is decoded,
  which is also the fastest way through fp16 on a small CPU (bench/RESULTS.md).
Wider types (F32, F64, 32/64-bit ints, GGML quants), decoded to float64 block by block:
- Moments: each decoded block's float64 sum gives its mean, then the block's sum of
  squared deviations from that mean (a two-pass variance on data in cache); blocks are
  merged with Chan et al.'s formula. No E[x^2] - E[x]^2 cancellation.
- The 6-sigma count needs the final mean and std, which are known only at the end. Every
  value beyond mean + 6 std is among the largest values of the tensor, so the pass keeps
  the TAIL_KEEP largest and the TAIL_KEEP smallest values seen (a floor rises as it goes,
  and values that provably cannot end up beyond 6 std are never held, see
  _Accumulator.bound; blocks whose max is under the floor cost one comparison). At the end the count is read from
  those; only when a tail holds more outliers than it keeps (more than TAIL_KEEP values
  beyond 6 std on one side) is the tensor read a second time to count them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

from ..core.catalog import Catalog, TensorInfo, is_strided, matching, natural_key
from ..core.dtypes import DTYPES
from ..core.errors import AnatomyError
from .roles import group_names

if TYPE_CHECKING:
    import numpy as np

    from ..decode.stream import Reader

SIGMAS = 6
TAIL_KEEP = 1 << 14
HISTOGRAM_KINDS = ("float", "int", "uint", "bool")  # of 8 or 16 bits: counted by bit pattern


class Moments(NamedTuple):
    """Count, mean and sum of squared deviations of the finite values (Chan et al. merge).

    Moments and Stats are named tuples, not dataclasses: a million tiny tensors make a
    million of each, and a frozen dataclass costs three times the time and memory."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, other: "Moments") -> "Moments":
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count
        return Moments(count, mean, self.m2 + other.m2 + delta * delta * self.count * other.count / count)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else math.nan

    @property
    def sum_squares(self) -> float:
        return self.m2 + self.count * self.mean * self.mean


class Stats(NamedTuple):
    """Statistics of one tensor, or of a group of tensors (then `beyond` sums the members' counts)."""

    name: str
    dtype: str
    numel: int
    moments: Moments
    min: float
    max: float
    zeros: int
    nan: int
    inf: int
    beyond: int  # finite values with |x - mean| > 6 std (each tensor against its own mean and std)
    tensors: int = 1

    @property
    def mean(self) -> float:
        return self.moments.mean if self.moments.count else math.nan

    @property
    def std(self) -> float:
        return self.moments.std

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.moments.count else math.nan

    @property
    def l2(self) -> float:
        return math.sqrt(self.moments.sum_squares)

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.numel if self.numel else math.nan


@dataclass(frozen=True)
class StatsReport:
    model: str
    rows: tuple[Stats, ...]  # per tensor, or per group with `by`
    by: str | None
    errors: tuple[tuple[str, str], ...] = field(default=())  # (name, error line) of each tensor that could not be read
    tensors: int = 0
    nbytes: int = 0


class _Tail:
    """Holds every value above a rising floor, and at most 2 * keep of them: after a
    compaction only the `keep` largest remain and the floor becomes the smallest kept.
    The low tail is the same on negated values."""

    def __init__(self, keep: int, negate: bool) -> None:
        self.keep, self.negate = keep, negate
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.floor = -math.inf

    def offer(self, block: np.ndarray, extreme: float, bound: float) -> None:
        """Hold the block's values above the floor and above `bound` (values at or under
        `bound` are provably not outliers, see _Accumulator.bound); `extreme` is the block's
        max (min on the low side) so most blocks cost one comparison."""
        import numpy as np

        floor = max(self.floor, bound)
        if (-extreme if self.negate else extreme) <= floor:
            return
        picked = block[block < -floor] if self.negate else block[block > floor]
        if self.negate:
            np.negative(picked, out=picked)
        self.parts.append(picked)
        self.size += picked.size
        if self.size > 2 * self.keep:
            values = np.concatenate(self.parts)
            values = values[values > bound]
            if values.size > self.keep:
                values = np.partition(values, values.size - self.keep)[values.size - self.keep :]
                self.floor = float(values.min())
            self.parts, self.size = [values], values.size

    def beyond(self, mean: float, limit: float) -> int | None:
        """How many held values lie more than `limit` past `mean` on this side, or None
        when values under the floor might too (then the caller counts in a second pass)."""
        import numpy as np

        shift = mean if self.negate else -mean  # held w = -x on the low side: |x - mean| = w + mean
        if self.floor + shift > limit:  # rounding is monotonic: v <= floor gives v + shift <= floor + shift
            return None
        values = np.concatenate(self.parts) if self.parts else np.empty(0)
        return int(np.count_nonzero(values + shift > limit))


class _Accumulator:
    def __init__(self, numel: int, keep: int) -> None:
        self.numel = numel
        self.moments = Moments()
        self.min, self.max = math.inf, -math.inf
        self.zeros = self.nan = self.inf = 0
        self.high, self.low = _Tail(keep, negate=False), _Tail(keep, negate=True)

    def bound(self) -> float:
        """A distance from the mean seen so far within which no value can end up beyond
        6 std of the final mean. With a = values seen, N <= numel the final count:
        M2 only grows, so final std >= sqrt(M2_a / numel); and Chan's merge bounds how far
        the mean can still move, |mean - mean_a| <= std * sqrt((numel - n_a) / n_a).
        So |x - mean| > 6 std needs |x - mean_a| > (6 - sqrt((numel - n_a) / n_a)) * sqrt(M2_a / numel)."""
        seen = self.moments.count
        if seen == 0:
            return -math.inf
        drift = math.sqrt((self.numel - seen) / seen)
        if drift >= SIGMAS:
            return -math.inf
        return (SIGMAS - drift) * math.sqrt(self.moments.m2 / self.numel) * (1 - 1e-9)

    def add(self, block: np.ndarray) -> None:
        import numpy as np

        total = float(block.sum())
        if not math.isfinite(total):  # a finite sum means every value is finite
            finite = np.isfinite(block)
            nan = int(np.count_nonzero(np.isnan(block)))
            self.nan += nan
            self.inf += block.size - nan - int(np.count_nonzero(finite))
            block = block[finite]
            total = float(block.sum())
        if block.size == 0:
            return
        self.zeros += block.size - int(np.count_nonzero(block))
        low, high = float(block.min()), float(block.max())
        self.min, self.max = min(self.min, low), max(self.max, high)
        mean_before, bound = self.moments.mean, self.bound()
        self.high.offer(block, high, mean_before + bound)
        self.low.offer(block, low, bound - mean_before)
        mean = total / block.size
        np.subtract(block, mean, out=block)
        self.moments = self.moments.merge(Moments(block.size, mean, float(np.einsum("i,i", block, block))))


def _count_beyond(info: TensorInfo, reader: "Reader", mean: float, limit: float, inf: int) -> int:
    """Second pass: |x - mean| > limit over the whole tensor (infinities match too: take them off)."""
    import numpy as np

    count = 0
    for block in reader.blocks(info):
        np.subtract(block, mean, out=block)
        np.abs(block, out=block)
        count += int(np.count_nonzero(block > limit))
    return count - inf


def _code_values(info: TensorInfo) -> np.ndarray:
    """The value of every code of the tensor's 1- or 2-byte dtype, as float64 (decoded once
    per dtype: a model has hundreds of tensors of the same one)."""
    import numpy as np

    from ..decode.stream import Scratch, decoder_for

    decoder = decoder_for(info)
    if info.dtype not in _CODE_VALUES:
        codes = 1 << (8 * decoder.unit_bytes)
        values = np.empty(codes, np.float64)
        decoder.decode(
            np.arange(codes, dtype=np.dtype("u1" if codes == 256 else "<u2")).view(np.uint8), values, Scratch(codes)
        )
        values.flags.writeable = False
        _CODE_VALUES[info.dtype] = values
    return _CODE_VALUES[info.dtype]


_CODE_VALUES: dict[str, "np.ndarray"] = {}


def _histogram_stats(info: TensorInfo, reader: "Reader", unit_bytes: int) -> Stats:
    """1- and 2-byte types have at most 65536 distinct values: count each bit pattern
    (code_counts, on the raw bytes, no decoding), then compute every statistic exactly from
    the (value, count) pairs: sums with math.fsum, the 6-sigma count from the final mean."""
    import numpy as np

    from ..decode import histogram

    counts = np.zeros(1 << (8 * unit_bytes), np.int64)
    for chunk in reader.chunks(info, unit_bytes):
        histogram.count(chunk, counts)
    values = _code_values(info)
    nan, inf = int(counts[np.isnan(values)].sum()), int(counts[np.isinf(values)].sum())
    present = (counts > 0) & np.isfinite(values)
    values, counts = values[present], counts[present]
    count = int(counts.sum())
    if count == 0:
        return Stats(info.name, info.dtype, info.numel, Moments(), math.inf, -math.inf, 0, nan, inf, 0)
    mean = math.fsum((values * counts).tolist()) / count  # each product is exact: <= 11 + 40 bits
    deviations = values - mean
    moments = Moments(count, mean, math.fsum((deviations * deviations * counts).tolist()))
    beyond = int(counts[np.abs(deviations) > SIGMAS * moments.std].sum())
    zeros = int(counts[values == 0].sum())
    return Stats(
        info.name, info.dtype, info.numel, moments, float(values.min()), float(values.max()), zeros, nan, inf, beyond
    )


def tensor_stats(info: TensorInfo, reader: "Reader", keep: int = TAIL_KEEP) -> Stats:
    dtype = (
        DTYPES.get(info.dtype) if not (hasattr(info, "dequantizer") or is_strided(info)) else None
    )  # a quantized weight, a strided view: values, not bytes
    if dtype is not None and dtype.kind in HISTOGRAM_KINDS and dtype.bits in (8, 16):
        return _histogram_stats(info, reader, dtype.bits // 8)
    acc = _Accumulator(info.numel, keep)
    for block in reader.blocks(info):
        acc.add(block)
    moments = acc.moments
    beyond = 0
    if moments.count:
        limit = SIGMAS * moments.std
        sides = (acc.high.beyond(moments.mean, limit), acc.low.beyond(moments.mean, limit))
        beyond = _count_beyond(info, reader, moments.mean, limit, acc.inf) if None in sides else sum(sides)  # type: ignore[arg-type]
    return Stats(info.name, info.dtype, info.numel, moments, acc.min, acc.max, acc.zeros, acc.nan, acc.inf, beyond)


EMPTY = Stats("", "", 0, Moments(), math.inf, -math.inf, 0, 0, 0, 0)  # of a tensor with no values


def batch_stats(infos: Sequence[TensorInfo], reader: "Reader") -> list[Stats | str]:
    """Statistics of many small tensors at once (streaming.SMALL_ELEMS): their values in one
    float64 array, each statistic one segmented reduction (np.*.reduceat) over all of them.
    Sums of at most SMALL_ELEMS float64 values stay within 1e-11 of the exact ones."""
    import numpy as np

    got = reader.gather(infos)
    sizes = np.diff(got.bounds)
    present = np.flatnonzero(sizes)  # reduceat needs segments of at least one value
    starts, lengths, values = got.bounds[present], sizes[present], got.values
    finite = np.isfinite(values)
    if finite.all():
        count, nan = lengths, np.zeros(len(present), np.int64)
        x = extremes = values
    else:
        count = np.add.reduceat(finite, starts, dtype=np.int64)
        nan = np.add.reduceat(np.isnan(values), starts, dtype=np.int64)
        x, extremes = np.where(finite, values, 0.0), np.where(finite, values, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):  # tensors with no finite value: NaN moments
        mean = np.add.reduceat(x, starts) / count
        deviations = x - np.repeat(mean, lengths)
        if x is not values:
            deviations[~finite] = 0.0
        m2 = np.add.reduceat(deviations * deviations, starts)
        limit = np.repeat(SIGMAS * np.sqrt(m2 / count), lengths)
        beyond = np.add.reduceat(np.abs(deviations) > limit, starts, dtype=np.int64)
    lows = np.nan_to_num(np.fmin.reduceat(extremes, starts), nan=math.inf)
    highs = np.nan_to_num(np.fmax.reduceat(extremes, starts), nan=-math.inf)
    zeros = np.add.reduceat(values == 0, starts, dtype=np.int64)
    columns = zip(
        present.tolist(),
        count.tolist(),
        mean.tolist(),
        m2.tolist(),
        lows.tolist(),
        highs.tolist(),
        zeros.tolist(),
        nan.tolist(),
        beyond.tolist(),
    )
    rows: list[Stats | str] = [
        EMPTY._replace(name=info.name, dtype=info.dtype) if not info.numel else "" for info in infos
    ]
    for i, n, mu, m, low, high, zero, nans, out in columns:
        info = infos[i]
        moments = Moments(n, mu, m) if n else Moments()
        rows[i] = Stats(info.name, info.dtype, info.numel, moments, low, high, zero, nans, info.numel - n - nans, out)
    for i, exc in got.errors.items():
        rows[i] = exc.line()
    return rows


def combine(name: str, members: Sequence[Stats]) -> Stats:
    """One group's statistics from its members' (exact: moments merge, extremes and counts add)."""
    moments = Moments()
    for member in members:
        moments = moments.merge(member.moments)
    dtypes = sorted({m.dtype for m in members})
    return Stats(
        name,
        "/".join(dtypes),
        sum(m.numel for m in members),
        moments,
        min(m.min for m in members),
        max(m.max for m in members),
        sum(m.zeros for m in members),
        sum(m.nan for m in members),
        sum(m.inf for m in members),
        sum(m.beyond for m in members),
        sum(m.tensors for m in members),
    )


def weight_stats(
    catalog: Catalog,
    pattern: str | None = None,
    by: str | None = None,
    progress: Callable[[int], None] | None = None,
    keep: int = TAIL_KEEP,
) -> StatsReport:
    """Statistics of every selected tensor (or group), all cores, one read of each byte.

    A tensor that cannot be read (truncated file, unsupported dtype) becomes a line in
    `errors` and the rest are still computed."""
    from ..decode.stream import batch_numel, run_batched

    chosen = sorted(matching(catalog, pattern), key=lambda t: natural_key(t.name))

    def work(info: TensorInfo, reader: "Reader") -> Stats | str:
        try:
            return tensor_stats(info, reader, keep)
        except AnatomyError as exc:
            return exc.line()

    done = (lambda info: progress(info.nbytes)) if progress is not None else None
    results = run_batched(
        chosen,
        work,
        batch_stats,
        numel=batch_numel,
        place=lambda t: (t.file, t.offset),
        weight=lambda t: t.nbytes,
        done=done,
    )
    rows = [r for r in results if isinstance(r, Stats)]
    errors = tuple((t.name, r) for t, r in zip(chosen, results) if isinstance(r, str))
    if by is not None:
        by_name = {r.name: r for r in rows}
        groups = group_names([r.name for r in rows], by)
        rows = [combine(key, [by_name[n] for n in names]) for key, names in groups.items()]
    return StatsReport(catalog.name, tuple(rows), by, errors, len(chosen), sum(t.nbytes for t in chosen))
