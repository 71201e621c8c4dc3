"""The integer schemes' values over boxes of rows and columns with numpy, for whole weights
(stats, diff): the formulas of quant.integer, each operation in float32 and rounded to the
scales' dtype as there, reading from each stored part only the box the values need."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ...core.errors import AnatomyError
from .layout import AWQ, AWQ_NIBBLE, GPTQ, MLX, NOT_AS_CONFIGURED, PackQuantized, bad_group

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator

    from ...core.catalog import TensorInfo
    from .layout import Layout

    Fetch = Callable[[TensorInfo, int, int], bytes]  # (part, start, length) -> bytes of its data
    ReadBox = Callable[[TensorInfo, tuple[int, int], tuple[int, int]], np.ndarray]

# Stored dtypes the parts may have, as numpy reads them (BF16 is widened to float32 below).
NUMPY = {"I32": "<i4", "U32": "<u4", "I64": "<i8", "I8": "i1", "U8": "u1", "F16": "<f2", "F32": "<f4", "BF16": "<u2"}
# Wanted bytes of two stored rows closer than this are read in one run; no run is longer than
# MAX_RUN_BYTES (as tensors.ElementReader does).
MERGE_GAP_BYTES = 4096
MAX_RUN_BYTES = 1 << 20
STRIPE_VALUES = 1 << 20  # values per stripe of rows when a whole weight is computed


class Box(namedtuple("Box", "rows cols")):
    """Rows r0..r1 and columns c0..c1 of a logical [out, in] weight."""

    __slots__ = ()


def read_box(fetch: Fetch, info: TensorInfo, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Rows r0..r1 and columns c0..c1 of a stored tensor seen as 2-D [product of the leading
    dimensions, last dimension]: integers as stored, floats as float32."""
    code = NUMPY.get(info.dtype)
    if code is None:
        raise AnatomyError(
            f"{info.file}: tensor {info.name}", f"one of the dtypes {', '.join(NUMPY)}", info.dtype, NOT_AS_CONFIGURED
        )
    width = info.shape[-1] if info.shape else 1
    (r0, r1), (c0, c1) = rows, cols
    item = np.dtype(code).itemsize
    stride, span = width * item, (c1 - c0) * item
    out = np.empty((r1 - r0, c1 - c0), dtype=code)
    if span and r1 > r0:
        # Whole runs of rows when the gaps between the wanted bytes are small, else row by row.
        per_run = max(1, MAX_RUN_BYTES // stride) if stride - span <= MERGE_GAP_BYTES else 1
        for first in range(r0, r1, per_run):
            last = min(r1, first + per_run)
            data = bytes(fetch(info, first * stride + c0 * item, (last - first - 1) * stride + span))
            out[first - r0 : last - r0] = np.frombuffer(data + bytes(stride - span), dtype=code).reshape(
                last - first, width
            )[:, : c1 - c0]
    if info.dtype == "BF16":  # bfloat16 is the top half of a float32
        return (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(np.float32) if info.dtype == "F16" else out


# ---------------------------------------------------------------- rounding as torch and mlx do


def _bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), NaN kept NaN, as c10::BFloat16 rounds."""
    bits = values.astype(np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return np.where(np.isnan(values), values, rounded.view(np.float32)).astype(np.float32)


ROUND: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "F32": lambda v: v.astype(np.float32),
    "F16": lambda v: v.astype(np.float32).astype(np.float16).astype(np.float32),
    "BF16": _bf16,
}


def _op(ufunc: np.ufunc, dtype: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """One arithmetic operation as torch does it on tensors of dtype: in float32, the result
    rounded to dtype."""
    rnd = ROUND[dtype]

    def apply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # an inf or nan scale gives inf or nan, as in torch
            return rnd(ufunc(a, b, dtype=np.float32))

    return apply


# ---------------------------------------------------------------- bit streams


def word_span(first: int, stop: int, bits: int) -> tuple[int, int]:
    """The 32-bit words holding codes first..stop-1 of a bit stream."""
    return first * bits // 32, -(-stop * bits // 32)


def codes(words: np.ndarray, first: int, stop: int, bits: int) -> np.ndarray:
    """Codes first..stop-1 of each row's bit stream, from the row's words starting at word_span's first."""
    base = first * bits // 32 * 32
    position = np.arange(first, stop, dtype=np.int64) * bits - base
    index, shift = position >> 5, (position & 31).astype(np.uint64)
    wide = np.zeros((words.shape[0], words.shape[1] + 1), dtype=np.uint64)  # a zero word past the end
    wide[:, :-1] = words.astype(np.uint32)  # int32 words read as their bit patterns
    pairs = wide[:, index] | (wide[:, index + 1] << np.uint64(32))
    return ((pairs >> shift) & np.uint64((1 << bits) - 1)).astype(np.int32)


def _groups_of(first: int, stop: int, group_size: int) -> np.ndarray:
    """The group of each input first..stop-1: consecutive runs of group_size (all one group when <= 0)."""
    columns = np.arange(first, stop, dtype=np.int64)
    return np.zeros_like(columns) if group_size <= 0 else columns // group_size


# ---------------------------------------------------------------- the schemes (formulas: quant.integer)


def _gptq(layout: GPTQ, read: ReadBox, box: Box) -> np.ndarray:
    bits, (r0, r1), (c0, c1) = layout.bits, box.rows, box.cols
    if layout.g_idx is not None:
        groups = read(layout.g_idx, (0, 1), (c0, c1))[0].astype(np.int64)
        bad = groups[(groups < 0) | (groups >= layout.groups)]
        if bad.size:
            raise bad_group(layout.g_idx, int(bad[0]), layout.groups)
    else:
        groups = _groups_of(c0, c1, layout.group)
    weights = codes(read(layout.main, word_span(c0, c1, bits), (r0, r1)).T, c0, c1, bits)  # [rows, columns]
    g0, g1 = int(groups.min()), int(groups.max()) + 1
    zeros = (
        codes(read(layout.qzeros, (g0, g1), word_span(r0, r1, bits)), r0, r1, bits) + layout.plus_one
    )  # [groups, rows]
    local = groups - g0
    return _op(np.multiply, layout.dtype)(
        read(layout.scales_part, (g0, g1), (r0, r1))[local].T, weights - zeros[local].T
    )


def _awq_codes(words: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Columns first..stop-1 of AWQ-packed rows (words from column first // 8)."""
    columns = np.arange(first, stop)
    shift = np.array([4 * AWQ_NIBBLE[c % 8] for c in columns], dtype=np.uint32)
    return ((words.astype(np.uint32)[:, columns // 8 - first // 8] >> shift) & np.uint32(15)).astype(np.int32)


def _awq(layout: AWQ, read: ReadBox, box: Box) -> np.ndarray:
    (r0, r1), (c0, c1) = box.rows, box.cols
    groups = _groups_of(c0, c1, layout.group)
    words = (r0 // 8, -(-r1 // 8))
    weights = _awq_codes(read(layout.main, (c0, c1), words), r0, r1)  # [columns, rows]
    g0, g1 = int(groups.min()), int(groups.max()) + 1
    zeros = _awq_codes(read(layout.qzeros, (g0, g1), words), r0, r1)
    local = groups - g0
    return _op(np.multiply, layout.dtype)(weights - zeros[local], read(layout.scales_part, (g0, g1), (r0, r1))[local]).T


def _mlx(layout: MLX, read: ReadBox, box: Box) -> np.ndarray:
    bits, group, (r0, r1), (c0, c1) = layout.bits, layout.group, box.rows, box.cols
    values = codes(read(layout.main, (r0, r1), word_span(c0, c1, bits)), c0, c1, bits)
    g0, g1 = c0 // group, (c1 - 1) // group + 1
    local = np.arange(c0, c1) // group - g0
    scales, biases = (read(part, (r0, r1), (g0, g1))[:, local] for part in (layout.scales_part, layout.biases))
    return _op(np.add, layout.dtype)(_op(np.multiply, layout.dtype)(scales, values), biases)


def _pack(layout: PackQuantized, read: ReadBox, box: Box) -> np.ndarray:
    bits, offset, rnd, (r0, r1), (c0, c1) = layout.bits, layout.offset, ROUND[layout.dtype], box.rows, box.cols
    values = rnd(codes(read(layout.main, (r0, r1), word_span(c0, c1, bits)), c0, c1, bits).astype(np.float32) - offset)
    group = layout.group
    g0, g1 = (c0 // group, (c1 - 1) // group + 1) if group > 0 else (0, 1)
    local = np.arange(c0, c1) // group - g0 if group > 0 else np.zeros(c1 - c0, dtype=np.int64)
    rows = (r0, r1) if layout.scale_rows == layout.out else (0, 1)
    scales = (read(layout.scale, (0, 1), (0, 1)) if layout.scale.numel == 1 else read(layout.scale, rows, (g0, g1)))[
        :, local
    ]
    if layout.zero is not None:
        if layout.zero.dtype == "I32":
            zeros = codes(read(layout.zero, word_span(*rows, bits), (g0, g1)).T, *rows, bits).T - offset
        else:
            zeros = read(layout.zero, rows, (g0, g1))
        values = _op(np.subtract, layout.dtype)(values, rnd(zeros[:, local].astype(np.float32)))
    return _op(np.multiply, layout.dtype)(values, scales)


BOXES = {GPTQ: _gptq, AWQ: _awq, MLX: _mlx, PackQuantized: _pack}


def dequantize_box(layout: Layout, fetch: Fetch, box: Box) -> np.ndarray:
    """A box of the weight's values as float32 (exactly the values of layout.dtype)."""
    read = lambda info, rows, cols: read_box(fetch, info, rows, cols)  # noqa: E731
    for info, check in layout.checks:
        check(tuple(read(info, (0, 1), (0, info.numel))[0].tolist()))
    (r0, r1), (c0, c1) = box.rows, box.cols
    if r1 <= r0 or c1 <= c0:
        return np.zeros((max(0, r1 - r0), max(0, c1 - c0)), dtype=np.float32)
    return BOXES[type(layout)](layout, read, box)


def stripes(layout: Layout, fetch: Fetch) -> Iterator[np.ndarray]:
    """Every value of the weight as float64 in row-major order, a stripe of rows at a time."""
    rows = max(1, STRIPE_VALUES // max(1, layout.inner))
    for first in range(0, layout.out, rows):
        yield (
            dequantize_box(layout, fetch, Box((first, min(layout.out, first + rows)), (0, layout.inner)))
            .astype(np.float64)
            .reshape(-1)
        )
