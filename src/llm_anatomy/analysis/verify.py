"""Did a conversion keep the model? Every tensor pair of a diff (names paired, conventions undone:
analysis.diff) checked against the noise the two dtypes or the quantization type allow, one
status per tensor, a summary per type, and a verdict with the failures said in words.

Expected noise, per element (docs/verify.md derives each):
- two float dtypes: rounding to the coarser one, |B - A| <= u * max(|A|, |B|) + t, where u is
  its unit roundoff (half a unit in the last place relative to the value) and t half its
  smallest subnormal (FLOAT_NOISE); one dtype: no noise at all.
- a GGML block type against floats: within each block of 32, the error of rounding to the
  block's step (the scale d: half a step, a whole one where the type clips its top code), plus
  the float16 rounding of the stored scale (and minimum) times the largest code, plus float32's
  rounding of the product (BLOCK_NOISE). The step is read back from the block's dequantized
  values: its largest magnitude is exactly qmax steps (symmetric types), its range exactly
  qmax steps (affine ones).
- a K-quant against floats: each element within half a step of its code under its sub-block's
  stored step (read from the bytes: kquant_steps), or past the end of the codes' range when its
  code is that end (KQUANT).
Other types (I-quants, quantized checkpoint schemes) have no derived bound yet: their tensors
are `unchecked` and the verdict is at best `warn`."""

from __future__ import annotations

import math
import re
from collections import namedtuple
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from ..core.catalog import TensorInfo, natural_key
from ..core.errors import AnatomyError
from ..hf.gguf_transforms import ROTARY_CONVENTIONS
from .diff import Converted, HeaderDiff, value_blocks

if TYPE_CHECKING:
    from ..decode.stream import Reader
    from .tokenizer_compare import TokenizerComparison

# dtype -> (unit roundoff: half a unit in the last place relative to 1; half the smallest subnormal).
FLOAT_NOISE = {
    "F64": (2.0**-53, 2.0**-1075),
    "F32": (2.0**-24, 2.0**-150),
    "F16": (2.0**-11, 2.0**-25),
    "BF16": (2.0**-8, 2.0**-134),
}
F16_ROUNDOFF = 2.0**-11  # GGML blocks store their scale (and minimum) as float16
F32_ROUNDOFF = 2.0**-24  # the dequantized value d * q is a float32 product

# A GGML block type's noise: elements per block; symmetric (x = d * q) or affine (x = d * q + m);
# qmax: the largest code magnitude (symmetric) or code (affine); steps: the rounding error in
# steps (1/2 for round to nearest; 1 where the top code is clipped, so that an element as large
# as the block's extreme but of the other sign lands one step short).
BlockNoise = namedtuple("BlockNoise", "elems affine qmax steps")
BLOCK_NOISE = {
    "Q8_0": BlockNoise(32, False, 127, 0.5),
    "Q4_0": BlockNoise(32, False, 8, 1.0),
    "Q5_0": BlockNoise(32, False, 16, 1.0),
    "Q4_1": BlockNoise(32, True, 15, 0.5),
    "Q5_1": BlockNoise(32, True, 31, 0.5),
}

# A K-quant (llama.cpp's super-blocks of 256): bytes per super-block; elements per sub-block,
# each with its own step (and offset, affine types); the codes' range. Every value is
# step * q - offset with q an integer in [low, high] (kquant_steps reads step and offset from
# the bytes), and llama.cpp's quantizers, whatever scales they search for, end by rounding each
# element to the nearest code under the stored step, clamped to the range (docs/verify.md).
KQuant = namedtuple("KQuant", "block_bytes sub_elems low high")
KQUANT = {
    "Q2_K": KQuant(84, 16, 0, 3),
    "Q3_K": KQuant(110, 16, -4, 3),
    "Q4_K": KQuant(144, 32, 0, 15),
    "Q5_K": KQuant(176, 32, 0, 31),
    "Q6_K": KQuant(210, 16, -32, 31),
}
# Steps held for one K-quant tensor (two float32 per sub-block): 2^27 elements is 64 MB of them.
MAX_KQUANT_ELEMS = 1 << 27
# The float32 arithmetic of the quantizer (x / step, rounded to the nearest code) and of the
# dequantization (step * q - offset): a few float32 roundings of the magnitudes involved.
KQUANT_SLACK = 2.0**-21

STATUSES = ("identical", "same", "different", "unchecked")
EXPERTS = "experts_stacked"  # analysis.experts: one expert's slice of a stacked tensor, read in place
# Conventions under which a K-quant's values still come from its stored sub-blocks (rows reordered, or a slice).
KQUANT_CONVENTIONS = ROTARY_CONVENTIONS | {EXPERTS}


@dataclass(frozen=True)
class TensorCheck:
    a_name: str
    b_name: str
    dtype_a: str
    dtype_b: str
    numel: int
    status: str  # one of STATUSES
    transforms: tuple[str, ...]
    max_abs: float
    rel_rmse: float  # ||B - A|| / ||A||
    sqnr_db: float  # 10 log10(||A||^2 / ||B - A||^2): inf when equal
    cosine: float
    noise: str  # what was allowed, in words
    excess: float  # largest |B - A| / allowed (over 1: beyond noise)
    sums: tuple[float, float, float, float, float]  # A.A, B.B, (B-A).(B-A), sum A, sum B
    offset: tuple[float, float]  # min and max of B - A
    skipped: int = 0  # NaN/Inf pairs left out


@dataclass(frozen=True)
class TypeSummary:
    dtype: str
    tensors: int
    numel: int
    statuses: dict[str, int]
    rel_rmse: float  # over all its tensors' elements
    sqnr_db: float
    min_cosine: float
    max_abs: float


@dataclass(frozen=True)
class Verification:
    header: HeaderDiff
    verdict: str  # pass, warn, fail
    tensors: tuple[TensorCheck, ...]  # failing first
    by_type: tuple[TypeSummary, ...]
    overall: TypeSummary
    config: tuple[tuple[str, Any, Any], ...]
    tokenizer: tuple[str, ...]  # differences of the tokenizers and chat templates (analysis.tokenizer_compare)
    findings: tuple[str, ...]  # failures first, then warnings
    errors: tuple[tuple[str, str], ...]  # (name, error line): could not be read
    tokenizer_compared: bool = False
    tokenizer_summary: str = "tokenizers: not compared"
    by_layer: tuple[TypeSummary, ...] = ()  # dtype: the layer's number, then OUTSIDE_LAYERS


def _quantized_side(a: Any, b: Any) -> tuple[int, BlockNoise] | None:
    for side, tensor in ((1, b), (0, a)):
        if tensor.dtype in BLOCK_NOISE:
            return side, BLOCK_NOISE[tensor.dtype]
    return None


def _f16(blocks: Any, at: int) -> Any:
    import numpy as np

    return blocks[:, at : at + 2].copy().view(np.float16)[:, 0].astype(np.float32)


def _scale_min_k4(packed: Any) -> tuple[Any, Any]:
    """The eight 6-bit scales and mins of a Q4_K / Q5_K super-block from its 12 bytes (ggml's get_scale_min_k4)."""
    import numpy as np

    low, mid, high = packed[:, :4], packed[:, 4:8], packed[:, 8:12]
    scales = np.concatenate([low & 63, (high & 0xF) | ((low >> 6) << 4)], axis=1)
    mins = np.concatenate([mid & 63, (high >> 4) | ((mid >> 6) << 4)], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _q3_k_scales(packed: Any) -> Any:
    """Q3_K's sixteen 6-bit scales (minus 32) from their 12 bytes, as ggml's dequantize_row_q3_K unpacks them."""
    import numpy as np

    words = packed.copy().view("<u4")
    first, second, top = words[:, 0], words[:, 1], words[:, 2]
    two, four = np.uint32(0x03030303), np.uint32(0x0F0F0F0F)
    unpacked = np.stack(
        [
            (first & four) | ((top & two) << 4),
            (second & four) | (((top >> 2) & two) << 4),
            ((first >> 4) & four) | (((top >> 4) & two) << 4),
            ((second >> 4) & four) | (((top >> 6) & two) << 4),
        ],
        axis=1,
    )
    return unpacked.astype("<u4").view(np.int8).astype(np.float32) - 32


def kquant_steps(dtype: str, raw: Any) -> tuple[Any, Any]:
    """(step, offset) of each sub-block, in order, from a K-quant tensor's bytes: its values are
    step * q - offset (offset 0 for the symmetric Q3_K and Q6_K); float32, as ggml computes them."""
    import numpy as np

    blocks = raw.reshape(-1, KQUANT[dtype].block_bytes)
    if dtype == "Q2_K":
        packed = blocks[:, :16]
        return _f16(blocks, 80)[:, None] * (packed & 0xF).astype(np.float32), _f16(blocks, 82)[:, None] * (
            packed >> 4
        ).astype(np.float32)
    if dtype == "Q3_K":
        steps = _f16(blocks, 108)[:, None] * _q3_k_scales(blocks[:, 96:108])
        return steps, np.zeros_like(steps)
    if dtype in ("Q4_K", "Q5_K"):
        scales, mins = _scale_min_k4(blocks[:, 4:16])
        return _f16(blocks, 0)[:, None] * scales, _f16(blocks, 2)[:, None] * mins
    steps = _f16(blocks, 208)[:, None] * blocks[:, 192:208].copy().view(np.int8).astype(np.float32)
    return steps, np.zeros_like(steps)


def _kquant_side(a: Any, b: Any) -> tuple[int, Any] | None:
    """(side, the stored K-quant tensor) when one side is a K-quant whose sub-blocks the values
    can be traced back to: stored as is, with its rows reordered (q/k), or one expert's slice
    of a stacked tensor; else None."""
    for side, tensor in ((1, b), (0, a)):
        if tensor.dtype not in KQUANT or (a.dtype == b.dtype):
            continue
        stored = tensor.stored if isinstance(tensor, Converted) else tensor
        in_place = isinstance(tensor, Converted) and tensor.convention == EXPERTS and tensor.view.row_order is None
        if (
            isinstance(tensor, Converted)
            and not in_place
            and (tensor.view.row_order is None or tensor.shape != stored.shape)
        ):
            return None
        if not isinstance(stored, TensorInfo) or stored.numel > MAX_KQUANT_ELEMS or stored.numel % 256:
            return None
        return side, tensor
    return None


def _kquant_allowed(side: int, tensor: Any, reader: "Reader") -> Callable[[Any, Any, int], Any]:
    """Per element: within half a step of its code under the stored step, or beyond the range's end
    when its code is that end (the quantizer clamps), plus float32's rounding (KQUANT_SLACK)."""
    import numpy as np

    kind = KQUANT[tensor.dtype]
    stored = tensor.stored if isinstance(tensor, Converted) else tensor
    pieces = [kquant_steps(tensor.dtype, chunk) for chunk in reader.chunks(stored, kind.block_bytes)]
    steps = np.concatenate([p[0].reshape(-1) for p in pieces]).astype(np.float64)
    offsets = np.concatenate([p[1].reshape(-1) for p in pieces]).astype(np.float64)
    # A sub-block whose scale rounded to 0 beside others that did not: ggml's quantizer skips its
    # codes and every element holds -offset; how far that lies from the original is not derived.
    per_block = 256 // kind.sub_elems
    unbounded = (steps == 0) & np.repeat((steps != 0).reshape(-1, per_block).any(axis=1), per_block)
    reordered = isinstance(tensor, Converted) and tensor.view.row_order is not None
    order = np.asarray(tensor.view.row_order, np.int64) if reordered else None
    row_elems = stored.numel // max(stored.shape[0], 1) if stored.shape else 1

    def bound(block_a: Any, block_b: Any, start: int) -> Any:
        mine, theirs = (block_a, block_b) if side == 0 else (block_b, block_a)
        where = np.arange(start, start + mine.size, dtype=np.int64)
        if order is not None:
            where = order[where // row_elems] * row_elems + where % row_elems
        sub = where // kind.sub_elems
        step, offset = steps[sub], offsets[sub]
        slack = KQUANT_SLACK * (np.abs(mine) + np.abs(theirs) + offset)
        nonzero = step != 0
        scale = np.where(nonzero, step, 1.0)
        code = np.rint((mine + offset) / scale)
        position = (theirs + offset) / scale
        clamped = (
            nonzero & (((code >= kind.high) & (position > kind.high)) | ((code <= kind.low) & (position < kind.low)))
        ) | unbounded[sub]
        return np.where(clamped, np.inf, np.where(nonzero, np.abs(step) / 2, 0.0) + slack)

    return bound


SAME_DTYPE = "none (same dtype)"  # the noise two tensors of one dtype are allowed


def noise_words(a: Any, b: Any) -> str:
    """The noise allowed for this pair, in words (what _allowed allows)."""
    kquant = (
        _kquant_side(a, b)
        if not any(isinstance(t, Converted) and t.convention not in KQUANT_CONVENTIONS for t in (a, b))
        else None
    )
    if kquant is not None:
        return f"{kquant[1].dtype} rounding (per sub-block of {KQUANT[kquant[1].dtype].sub_elems}, codes clamped)"
    if _allowed(a, b) is None:
        return "no derived bound"
    converted = next((t for t in (a, b) if isinstance(t, Converted) and t.convention == "minus_one"), None)
    if converted is not None:
        return f"rounding of 1 + w to {converted.dtype}" + (
            "" if a.dtype == b.dtype else f", {a.dtype}/{b.dtype} rounding"
        )
    if a.dtype == b.dtype:
        return SAME_DTYPE
    quantized = _quantized_side(a, b)
    if quantized is not None:
        return f"{(a, b)[quantized[0]].dtype} rounding (per block of {quantized[1].elems})"
    coarser = max((a.dtype, b.dtype), key=lambda d: FLOAT_NOISE[d][0])  # _allowed knows no other pair
    return f"{coarser} rounding"


def _allowed(
    a: Any, b: Any, reader_a: "Reader | None" = None, reader_b: "Reader | None" = None
) -> Callable[[Any, Any, int], Any] | None:
    """(A's block, B's block, the index of its first element) -> the largest |B - A| each element
    may show; None: no bound known. A K-quant's bound reads its steps with the readers."""
    import numpy as np

    conventions = {t.convention for t in (a, b) if isinstance(t, Converted)}
    kquant = _kquant_side(a, b) if conventions <= KQUANT_CONVENTIONS else None
    if kquant is not None and reader_a is not None and reader_b is not None:
        return _kquant_allowed(kquant[0], kquant[1], (reader_a, reader_b)[kquant[0]])
    if "log_of_negated" in conventions:
        return None  # Mamba's -exp(A_log) and back: no bound derived yet
    if "minus_one" in conventions:
        if a.dtype not in FLOAT_NOISE or b.dtype not in FLOAT_NOISE:
            return None  # the blocks hold 1 + w: their steps are not read back from w
        return _minus_one_allowed(a, b)
    if a.dtype == b.dtype:
        return lambda block_a, block_b, start: np.zeros(block_a.shape)
    quantized = _quantized_side(a, b)
    if quantized is not None:
        side, noise = quantized
        if "transpose" in conventions:
            return None  # the blocks run along the stored rows, not the loaded ones

        def block_bound(block_a: Any, block_b: Any, start: int) -> Any:
            values = (block_a, block_b)[side].reshape(-1, noise.elems)
            if noise.affine:
                low = values.min(axis=1, keepdims=True)
                step = (values.max(axis=1, keepdims=True) - low) / noise.qmax
                stored = np.abs(low) * F16_ROUNDOFF
            else:
                step = np.abs(values).max(axis=1, keepdims=True) / noise.qmax
                stored = 0.0
            scale = step / (1 - F16_ROUNDOFF)  # |d| from the float16 step read back
            bound = scale * (noise.steps + noise.qmax * F16_ROUNDOFF) + stored + np.abs(values) * 2 * F32_ROUNDOFF
            return bound.reshape(-1)

        return block_bound
    if a.dtype in FLOAT_NOISE and b.dtype in FLOAT_NOISE:
        roundoff, tiny = max(FLOAT_NOISE[a.dtype], FLOAT_NOISE[b.dtype])
        return lambda block_a, block_b, start: np.maximum(np.abs(block_a), np.abs(block_b)) * roundoff + tiny
    return None


def _minus_one_allowed(a: Any, b: Any) -> Callable[[Any, Any, int], Any]:
    """A norm stored as 1 + w (Gemma): the converter rounds 1 + w to the stored dtype (u_s: its
    unit roundoff), the loader subtracts 1 in float32; so besides the two dtypes' own rounding,
    |B - A| may reach u_s * (|w| + 1) + u_32 * |w'| (w' the loaded value)."""
    import numpy as np

    converted, plain = (a, b) if isinstance(a, Converted) else (b, a)
    stored_roundoff = FLOAT_NOISE.get(converted.dtype, (1.0, 0.0))[0]
    roundoff, tiny = max(FLOAT_NOISE.get(a.dtype, (1.0, 0.0)), FLOAT_NOISE.get(b.dtype, (1.0, 0.0)))
    converted_is_a = converted is a

    def bound(block_a: Any, block_b: Any, start: int) -> Any:
        loaded, original = (block_a, block_b) if converted_is_a else (block_b, block_a)
        rounding = (
            np.zeros(loaded.shape)
            if a.dtype == b.dtype
            else np.maximum(np.abs(loaded), np.abs(original)) * roundoff + tiny
        )
        return rounding + stored_roundoff * (np.abs(original) + 1) + F32_ROUNDOFF * np.abs(loaded)

    return bound


# 16-bit float dtypes whose pairs are first compared as bytes, as diff does: the common case
# (most tensors of a conversion to F16 or BF16 keep their bytes) then costs no float64 decode.
RAW_FIRST = ("F16", "BF16")


def _equal_bytes_sums(a: Any, b: Any, reader_a: "Reader", reader_b: "Reader") -> tuple[float, float] | None:
    """(A.A, sum of A) when A and B hold the same bytes of a RAW_FIRST dtype, all finite, from
    the histogram of their 16-bit codes (decode.histogram, as `stats` counts them); None when
    they are not comparable so, or at the first chunk that differs."""
    import numpy as np

    from ..core.catalog import is_strided
    from ..decode import histogram
    from .stats import _code_values

    if not (
        type(a) is TensorInfo
        and type(b) is TensorInfo
        and a.dtype == b.dtype
        and a.dtype in RAW_FIRST
        and a.nbytes == b.nbytes
        and not is_strided(a)
        and not is_strided(b)
    ):
        return None
    counts = np.zeros(1 << 16, np.int64)
    for chunk_a, chunk_b in zip(reader_a.chunks(a, 8), reader_b.chunks(b, 8)):
        if len(chunk_a) % 8 == 0:
            if not np.array_equal(chunk_a.view(np.uint64), chunk_b.view(np.uint64)):
                return None
        elif not np.array_equal(chunk_a, chunk_b):
            return None
        histogram.count(chunk_a, counts)
    used = counts > 0
    with np.errstate(invalid="ignore"):  # the table decodes every code, signalling NaNs among them
        table = _code_values(a)
    values, weights = table[used], counts[used].astype(np.float64)
    if not np.isfinite(values).all():
        return None  # NaN or Inf: counted apart by the value path
    return float(np.einsum("i,i", weights, values * values)), float(np.einsum("i,i", weights, values))


def check_pair(a: Any, b: Any, reader_a: "Reader", reader_b: "Reader") -> TensorCheck:
    """One pair streamed once: the sums behind every measure, and the largest error over its allowance."""
    import numpy as np

    same = _equal_bytes_sums(a, b, reader_a, reader_b)
    if same is not None:
        square, total = same
        norm = math.sqrt(square)
        return TensorCheck(
            a.name,
            b.name,
            a.dtype,
            b.dtype,
            a.numel,
            "identical",
            (),
            0.0,
            0.0,
            math.inf,
            square / (norm * norm) if norm else 1.0,
            noise_words(a, b),
            0.0,
            (square, square, 0.0, total, total),
            (0.0, 0.0),
        )
    allowed = _allowed(a, b, reader_a, reader_b)
    start = 0
    sum_aa = sum_bb = sum_dd = sum_a = sum_b = 0.0
    sum_ab = 0.0
    max_abs, excess, skipped = 0.0, 0.0, 0
    low, high = math.inf, -math.inf
    for block_a, block_b in zip(value_blocks(a, reader_a), value_blocks(b, reader_b)):
        if np.array_equal(block_a, block_b):  # the common case, at a fifth of the cost: no NaN, no error
            start += block_a.size
            square, total = float(np.einsum("i,i", block_a, block_a)), float(block_a.sum())
            sum_aa, sum_bb, sum_ab, sum_a, sum_b = (
                sum_aa + square,
                sum_bb + square,
                sum_ab + square,
                sum_a + total,
                sum_b + total,
            )
            low, high = min(low, 0.0), max(high, 0.0)
            continue
        bound = allowed(block_a, block_b, start) if allowed is not None else None
        start += block_a.size
        finite = np.isfinite(block_a) & np.isfinite(block_b)
        if not finite.all():
            skipped += int(block_a.size - np.count_nonzero(finite))
            block_a, block_b = block_a[finite], block_b[finite]
            bound = bound[finite] if bound is not None else None
        if block_a.size == 0:
            continue
        # einsum, not `@`: numpy hands `@` to the threaded BLAS, whose threads spin against the
        # other worker on a busy machine (50 ns an element on 2 shared cores; einsum: under 1)
        sum_aa += float(np.einsum("i,i", block_a, block_a))
        sum_bb += float(np.einsum("i,i", block_b, block_b))
        sum_ab += float(np.einsum("i,i", block_a, block_b))
        sum_a += float(block_a.sum())
        sum_b += float(block_b.sum())
        difference = block_b - block_a
        sum_dd += float(np.einsum("i,i", difference, difference))
        low, high = min(low, float(difference.min())), max(high, float(difference.max()))
        magnitude = np.abs(difference)
        max_abs = max(max_abs, float(magnitude.max()))
        if bound is not None:
            over = magnitude > bound
            if over.any():
                excess = max(
                    excess, float((magnitude[over] / np.maximum(bound[over], np.finfo(np.float64).tiny)).max())
                )
    norm_a, norm_d = math.sqrt(sum_aa), math.sqrt(sum_dd)
    relative = norm_d / norm_a if norm_a else (0.0 if norm_d == 0 else math.inf)
    sqnr = math.inf if sum_dd == 0 else (10 * math.log10(sum_aa / sum_dd) if sum_aa else -math.inf)
    denominator = norm_a * math.sqrt(sum_bb)
    cosine = sum_ab / denominator if denominator else (1.0 if sum_dd == 0 else math.nan)
    if sum_dd == 0 and skipped == 0:
        status = "identical"
    elif allowed is None:
        status = "unchecked"
    else:
        status = "same" if excess <= 1 and skipped == 0 else "different"
    return TensorCheck(
        a.name,
        b.name,
        a.dtype,
        b.dtype,
        a.numel,
        status,
        tuple(x.convention for x in (a, b) if isinstance(x, Converted)),
        max_abs,
        relative,
        sqnr,
        cosine,
        noise_words(a, b),
        excess,
        (sum_aa, sum_bb, sum_dd, sum_a, sum_b),
        (low if math.isfinite(low) else 0.0, high if math.isfinite(high) else 0.0),
        skipped,
    )


def _agrees(a: Any, b: Any, reader_a: "Reader", reader_b: "Reader") -> bool:
    """Every element within its allowance (equal, where none is derived); stops at the first
    block beyond it, so that telling most candidates apart reads one block of each."""
    import numpy as np

    allowed = _allowed(a, b, reader_a, reader_b)
    start = 0
    for block_a, block_b in zip(value_blocks(a, reader_a), value_blocks(b, reader_b)):
        magnitude = np.abs(block_b - block_a)
        bound = allowed(block_a, block_b, start) if allowed is not None else 0.0
        start += block_a.size
        if not (magnitude <= bound).all():
            return False
    return True


def _whole(tensor: Any, reader: "Reader") -> Any:
    import numpy as np

    return np.concatenate([block.copy() for block in value_blocks(tensor, reader)] or [np.empty(0)])


# ---------------------------------------------------------------- what went wrong, in words

LAYER = re.compile(r"^(.*?\blayers\.)(\d+)(\..*)$")
# Values of one tensor a side held whole to test a q/k permutation (Llama-2-7B's q_proj: 4096 x 4096).
MAX_HELD = 1 << 24
EXPERT = re.compile(r"^(.*?\bexperts\.)(\d+)(\..*)$")  # a mixture's experts, one tensor each
OUTSIDE_LAYERS = "other"  # the per-layer summary's row for the embeddings, the final norm, the head
# Swapped layers are looked for where at most this many layers differ in one tensor: a swap
# changes two, and telling every pair of many layers apart would read the model over again.
MAX_SWAP_LAYERS = 8


def _named(name: str, check: TensorCheck) -> str:
    return _named_as(name, check.a_name, check.b_name)


def _named_as(name: str, a_name: str, b_name: str) -> str:
    """The pair's transformers name, and each side's own where its file names it otherwise."""
    others = [f"{stored} in {side}" for side, stored in (("A", a_name), ("B", b_name)) if stored != name]
    return f"{name} ({', '.join(others)})" if others else name


def _offset_finding(name: str, check: TensorCheck) -> str | None:
    """B = A + c for one constant c (a norm stored as 1 + w and read as stored)."""
    low, high = check.offset
    if (
        check.status != "different"
        or not math.isfinite(low)
        or high - low > 1e-6 * max(1.0, abs(high))
        or abs(high) < 1e-6
    ):
        return None
    constant = (low + high) / 2
    words = (
        "exactly +1"
        if abs(constant - 1) < 1e-6
        else "exactly -1"
        if abs(constant + 1) < 1e-6
        else f"a constant {constant:+.4g}"
    )
    kind = "norm weights" if "norm" in check.a_name else "values"
    return f"{_named(name, check)}: {kind} differ by {words} (B = A {'+' if constant > 0 else '-'} {abs(constant):.4g})"


def _zero_finding(name: str, check: TensorCheck) -> str | None:
    sum_aa, sum_bb = check.sums[:2]
    if check.status == "different" and sum_bb == 0 and sum_aa > 0:
        return f"{_named(name, check)}: all zero in B"
    if check.status == "different" and sum_aa == 0 and sum_bb > 0:
        return f"{_named(name, check)}: all zero in A"
    return None


def _rotary_finding(a: Any, b: Any, check: TensorCheck, reader_a: "Reader", reader_b: "Reader") -> str | None:
    """q/k compared through the rotary permutation but still different: equal to A's rows
    reordered once more (the file permuted twice) or with the permutation undone (the file not
    permuted at all)?"""
    import numpy as np

    converted = next((t for t in (a, b) if isinstance(t, Converted) and t.convention in ROTARY_CONVENTIONS), None)
    if converted is None or check.status != "different" or converted.numel > MAX_HELD:
        return None
    other = a if converted is b else b
    order = np.asarray(converted.view.row_order, np.int64)
    rows = converted.shape[0]
    mine = _whole(converted, reader_b if converted is b else reader_a).reshape(rows, -1)
    theirs = _whole(other, reader_a if converted is b else reader_b).reshape(rows, -1)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(rows)
    scale = max(float(np.abs(theirs).max()), 1e-30)
    tolerance = scale * 2.0**-6  # well inside a row of another head, well outside any quantization noise
    side = "B" if converted is b else "A"
    other_side = "A" if converted is b else "B"
    twice = bool(np.abs(mine - theirs[inverse]).max() <= tolerance)
    skipped = not twice and bool(np.abs(mine - theirs[order]).max() <= tolerance)
    # Meta's checkpoint is the converter's input: the other side is what the converter wrote.
    culprit = other_side if converted.convention == "unpermute_meta" else side
    if not twice and not skipped:
        heads = _other_head_count(mine[inverse], theirs, order, tolerance)
        if heads is not None:
            return f"{_named(converted.name, check)}: the rotary permutation applied over {heads[1]} heads, not {heads[0]} ({culprit}'s file permutes the rows with the wrong head count)"
        return None
    if converted.convention == "unpermute_meta":
        if twice:
            return f"{_named(converted.name, check)}: equal to {side}'s after the rotary permutation is applied twice ({other_side}'s file permutes the rows twice)"
        if skipped:
            return f"{_named(converted.name, check)}: equal to {side}'s rows as Meta stores them ({other_side}'s file does not permute the rows: the converter skipped it)"
        return None
    if twice:
        return f"{_named(converted.name, check)}: equal to {other_side}'s after the rotary permutation is applied twice ({side}'s file permutes the rows twice)"
    if skipped:
        return f"{_named(converted.name, check)}: equal to {other_side}'s with the rotary permutation undone ({side}'s file does not permute the rows: the converter skipped it)"
    return None


def _other_head_count(stored: Any, theirs: Any, order: Any, tolerance: float) -> tuple[int, int] | None:
    """(the head count the permutation assumed, another one under which STORED's rows permuted
    equal THEIRS): a converter that permuted k with the query heads' count (grouped-query
    attention), or the other way round; None if no count fits."""
    import numpy as np

    from ..hf.gguf_transforms import unpermuted_rows

    rows = len(order)
    half = int(np.flatnonzero(order == 1)[0]) if rows > 1 else 0  # each head's even rows come first
    if not half:
        return None
    used = rows // (2 * half)
    for heads in range(1, rows // 2 + 1):
        if rows % (2 * heads) or heads == used:
            continue
        if np.abs(stored[np.asarray(unpermuted_rows(rows, heads), np.int64)] - theirs).max() <= tolerance:
            return used, heads
    return None


def _close(mine: Any, theirs: Any) -> bool:
    """Equal up to far less than a quantization step could move them (the rotary finding's tolerance)."""
    import numpy as np

    scale = max(float(np.abs(theirs).max(initial=0.0)), 1e-30)
    return mine.shape == theirs.shape and bool(np.abs(mine - theirs).max(initial=0.0) <= scale * 2.0**-6)


def _transposed_finding(a: Any, b: Any, check: TensorCheck, reader_a: "Reader", reader_b: "Reader") -> str | None:
    """A square matrix that differs: is B's A transposed (a converter that wrote it the other way round)?"""
    if (
        check.status != "different"
        or len(a.shape) != 2
        or a.numel > MAX_HELD
        or isinstance(a, Converted)
        or isinstance(b, Converted)
    ):
        return None
    if _close(_whole(b, reader_b).reshape(b.shape), _whole(a, reader_a).reshape(a.shape).T):
        return f"{_named(a.name, check)}: equal to A's transposed (B's file stores the matrix transposed)"
    return None


def _reshaped_words(a: Any, b: Any, reader_a: "Reader", reader_b: "Reader") -> str:
    """Another shape in B: A's matrix transposed, or A's first rows only (a tensor cut short)?"""
    words = f"shape {list(a.shape)} in A, {list(b.shape)} in B"
    if (
        max(a.numel, b.numel) > MAX_HELD
        or not a.shape
        or not b.shape
        or isinstance(a, Converted)
        or isinstance(b, Converted)
    ):
        return words
    try:
        mine, theirs = _whole(b, reader_b).reshape(b.shape), _whole(a, reader_a).reshape(a.shape)
    except AnatomyError:
        return words
    if len(a.shape) == 2 and b.shape == a.shape[::-1] and _close(mine, theirs.T):
        return f"{words}: B holds A's matrix transposed"
    if a.shape[1:] == b.shape[1:] and b.shape[0] < a.shape[0] and _close(mine, theirs[: b.shape[0]]):
        return f"{words}: B holds only A's first {b.shape[0]} of {a.shape[0]} rows (truncated)"
    if a.shape[1:] == b.shape[1:] and a.shape[0] < b.shape[0] and _close(theirs, mine[: a.shape[0]]):
        return f"{words}: B holds A's {a.shape[0]} rows and {b.shape[0] - a.shape[0]} more"
    return words


def _swaps(
    checks: dict[str, TensorCheck],
    pairs: dict[str, tuple[Any, Any]],
    reader_a: "Reader",
    reader_b: "Reader",
    numbered: re.Pattern[str] = LAYER,
) -> tuple[list[str], set[str]]:
    """Different tensors equal to the same tensor of another layer (or expert: EXPERT) on the
    other side: 'layers i and j are swapped', confirmed by comparing the values crosswise."""
    by_place: dict[tuple[str, str], dict[int, str]] = {}
    for name, check in checks.items():
        match = numbered.match(name)
        if check.status == "different" and match:
            by_place.setdefault((match.group(1), match.group(3)), {})[int(match.group(2))] = name
    swapped: dict[tuple[str, int, int], list[str]] = {}
    explained: set[str] = set()
    for (prefix, suffix), layers in sorted(by_place.items()):
        if len(layers) > MAX_SWAP_LAYERS:
            continue
        for i, name_i in sorted(layers.items()):
            for j, name_j in sorted(layers.items()):
                if j <= i or name_i in explained or name_j in explained:
                    continue
                ai, bi = pairs[name_i]
                aj, bj = pairs[name_j]
                if (ai.shape, ai.dtype, bi.dtype) != (aj.shape, aj.dtype, bj.dtype):
                    continue
                if _agrees(ai, bj, reader_a, reader_b) and _agrees(aj, bi, reader_a, reader_b):
                    swapped.setdefault((prefix, i, j), []).append(suffix)
                    explained.update((name_i, name_j))
    lines = []
    for (prefix, i, j), suffixes in sorted(swapped.items()):
        what = f"{prefix}{i} and {prefix}{j}"
        swap = (
            f"layers {i} and {j}"
            if numbered is LAYER
            else f"experts {i} and {j} of {prefix.rstrip('.').rpartition('.')[0]}"
        )
        lines.append(
            f"{swap} are swapped: {len(suffixes)} tensor{'s' if len(suffixes) != 1 else ''} of {what} ({', '.join(s.lstrip('.') for s in suffixes)}) hold each other's values"
        )
    return lines, explained


def _summary(dtype: str, checks: list[TensorCheck]) -> TypeSummary:
    sum_aa = sum(c.sums[0] for c in checks)
    sum_dd = sum(c.sums[2] for c in checks)
    relative = math.sqrt(sum_dd) / math.sqrt(sum_aa) if sum_aa else (0.0 if sum_dd == 0 else math.inf)
    sqnr = math.inf if sum_dd == 0 else (10 * math.log10(sum_aa / sum_dd) if sum_aa else -math.inf)
    statuses = {s: sum(c.status == s for c in checks) for s in STATUSES}
    cosines = [c.cosine for c in checks if not math.isnan(c.cosine)]
    return TypeSummary(
        dtype,
        len(checks),
        sum(c.numel for c in checks),
        statuses,
        relative,
        sqnr,
        min(cosines, default=math.nan),
        max((c.max_abs for c in checks), default=0.0),
    )


def _type_of(check: TensorCheck) -> str:
    """The pair's type for the summary: its quantization type, else the coarser dtype."""
    for dtype in (check.dtype_b, check.dtype_a):
        if dtype not in FLOAT_NOISE:
            return dtype
    return max((check.dtype_a, check.dtype_b), key=lambda d: FLOAT_NOISE[d][0])


def _config_words(key: str, a: Any, b: Any) -> str:
    from .diff import ABSENT

    shown = lambda v: "absent" if v is ABSENT else repr(v)  # noqa: E731
    return f"config {key}: {shown(a)} in A, {shown(b)} in B"


def verify_pairs(
    header: HeaderDiff,
    stored_names: tuple[Callable[[Any], str], Callable[[Any], str]],
    progress: Callable[[int], None] | None = None,
    tokenizer: "TokenizerComparison | None" = None,
) -> Verification:
    """Check every pair of the header diff on all cores, then say what is wrong; stored_names:
    per side, a tensor's name as its file stores it (a GGUF's llama.cpp name); tokenizer: the
    two tokenizers compared (its failures fail the verdict, its warnings warn)."""
    from ..decode.stream import Reader
    from .diff import run_pairs

    pairs = list(header.pairs)
    # each pair alone (no batch): its allowance is per element, from its own blocks
    results = run_pairs(pairs, check_pair, progress)
    name_a, name_b = stored_names
    checks: dict[str, TensorCheck] = {}
    by_name: dict[str, tuple[Any, Any]] = {}
    errors = []
    for (a, b), result in zip(pairs, results):
        if isinstance(result, str):
            errors.append((a.name, result))
            continue
        checks[a.name] = replace(result, a_name=name_a(a), b_name=name_b(b))
        by_name[a.name] = (a, b)
    failures: list[str] = []
    warnings: list[str] = []
    failures += [f"{n}: in A, missing from B" for n in header.only_a]
    failures += [f"{n}: in B, not in A" for n in header.only_b]
    reader_a, reader_b = Reader(), Reader()
    try:
        reshaped = {a.name: (a, b) for a, b in header.reshaped}
        for n, shape_a, shape_b in header.shape_changes:
            if n in reshaped:
                a, b = reshaped[n]
                failures.append(f"{_named_as(n, name_a(a), name_b(b))}: {_reshaped_words(a, b, reader_a, reader_b)}")
            else:
                failures.append(f"{n}: shape {list(shape_a)} in A, {list(shape_b)} in B")
        # A special token's id changes how the model is prompted, not its weights: a warning,
        # said once (the tokenizers' comparison names it when it ran).
        token_ids = [c for c in header.config_changes if c[0].endswith("_token_id")]
        failures += [_config_words(*change) for change in header.config_changes if change not in token_ids]
        if tokenizer is None or not tokenizer.compared:
            warnings += [_config_words(*change) for change in token_ids]
        swap_lines, explained = _swaps(checks, by_name, reader_a, reader_b)
        expert_lines, experts_explained = _swaps(
            {n: c for n, c in checks.items() if n not in explained}, by_name, reader_a, reader_b, EXPERT
        )
        failures += swap_lines + expert_lines
        explained |= experts_explained
        for name, check in sorted(checks.items(), key=lambda item: natural_key(item[0])):
            if check.status != "different" or name in explained:
                continue
            words = (
                _offset_finding(name, check)
                or _zero_finding(name, check)
                or _rotary_finding(*by_name[name], check, reader_a, reader_b)
                or _transposed_finding(*by_name[name], check, reader_a, reader_b)
            )
            beyond = (  # no allowance to be a multiple of when the dtypes are the same
                f"where the same dtype allows no difference (max abs {check.max_abs:.4g}"
                if check.noise == SAME_DTYPE
                else f"beyond {check.noise} (max abs {check.max_abs:.4g}, {check.excess:.3g}x the allowance"
            )
            failures.append(
                words
                or f"{_named(name, check)}: differs {beyond}; relative {check.rel_rmse:.4g}, cosine {check.cosine:.4g})"
            )
    finally:
        reader_a.close()
        reader_b.close()
    unchecked = [c for c in checks.values() if c.status == "unchecked"]
    if unchecked:
        types = sorted({_type_of(c) for c in unchecked})
        warnings.append(
            f"{len(unchecked)} tensor{'s' if len(unchecked) != 1 else ''} of {', '.join(types)}: no derived noise bound for this type yet, compared by the measures only"
        )
    warnings += list(header.notes)
    if tokenizer is not None:
        failures += tokenizer.failures
        warnings += tokenizer.warnings
    verdict = "fail" if failures else ("warn" if warnings else "pass")
    rank = {"different": 0, "unchecked": 1, "same": 2, "identical": 3}
    ordered = sorted(checks.values(), key=lambda c: (rank[c.status], natural_key(c.a_name)))
    by_type: dict[str, list[TensorCheck]] = {}
    for check in ordered:
        by_type.setdefault(_type_of(check), []).append(check)
    summaries = tuple(_summary(dtype, by_type[dtype]) for dtype in sorted(by_type))
    by_layer: dict[str, list[TensorCheck]] = {}
    for name, check in checks.items():
        match = LAYER.match(name)
        by_layer.setdefault(match.group(2) if match else OUTSIDE_LAYERS, []).append(check)
    layers = tuple(
        _summary(layer, by_layer[layer])
        for layer in sorted(by_layer, key=lambda k: (k == OUTSIDE_LAYERS, int(k) if k.isdigit() else 0))
    )
    return Verification(
        header,
        verdict,
        tuple(ordered),
        summaries,
        _summary("all", ordered),
        header.config_changes,
        tokenizer.differences if tokenizer is not None else (),
        tuple(failures + warnings),
        tuple(errors),
        tokenizer is not None and tokenizer.compared,
        tokenizer.summary if tokenizer is not None else "tokenizers: not compared",
        layers,
    )
