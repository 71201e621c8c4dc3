"""FP8 weights dequantized: value = fp8 weight x its scale, one scale per block of the weight.

Block FP8 (DeepSeek-V3, Qwen3-FP8: `weight_scale_inv`, one per 128x128 block) is computed
as transformers' Fp8Dequantize does: both sides in float32, then the model's dtype.
`weight_scale` (compressed-tensors per tensor, channel, group or block; FBGEMM per channel)
is computed as compressed-tensors dequantizes: in the scale's dtype, then the model's dtype.
Per tensor, per channel and per block are one rule: a scale grid [R, C] over the weight's
last two dimensions [rows, cols] splits them into blocks of ceil(rows / R) x ceil(cols / C)
(the last block may be shorter, as in transformers' backward dequantization)."""

from __future__ import annotations

from collections import namedtuple
from math import ceil, prod

from .dequant import Dequantizer, bad_part, loaded_or, missing_part, round_array, round_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Sequence

    import numpy as np

    from ..decode.stream import Reader
    from ..decode.elements import ElementReader
    from .dequant import Dequantized

# weight_scale_inv: transformers multiplies in float32; weight_scale: in the scale's dtype.
SCALE_PARTS = ((".weight_scale_inv", None), (".weight_scale", "scale"))
FLOAT_SCALES = ("F32", "BF16", "F16", "F64")
E8M0_SCALES = ("F8_E8M0", "U8")  # powers of two: 2 ** (byte - 127), computed in float32


class Grid(namedtuple("Grid", "weight scale lead rows cols srows scols brows bcols compute")):
    """weight, scale: the stored parts; lead: how many [rows, cols] matrices (experts);
    srows x scols scales per matrix (lead 1 for one scale shared by all), each over a block
    of brows x bcols; compute: the dtype the product is rounded to before the model's dtype."""

    __slots__ = ()

    def scale_index(self, position: int) -> int:
        matrix, rest = divmod(position, self.rows * self.cols)
        row, col = divmod(rest, self.cols)
        first = matrix * self.srows * self.scols if self.scale.numel > 1 else 0
        return first + (row // self.brows) * self.scols + col // self.bcols


def grid(tensor: Dequantized) -> Grid:
    weight = tensor.weight.parts[0]
    found = next(
        ((part, compute) for suffix, compute in SCALE_PARTS if (part := tensor.part(suffix)) is not None), None
    )
    if found is None:
        raise missing_part(tensor, " or ".join(weight.name[: -len(".weight")] + suffix for suffix, _ in SCALE_PARTS))
    scale, compute = found
    if scale.dtype not in FLOAT_SCALES + E8M0_SCALES:
        raise bad_part(tensor, scale, "float scales (F32, BF16, F16 or E8M0)", scale.dtype)
    compute = "F32" if compute is None or scale.dtype not in FLOAT_SCALES else scale.dtype
    shape = weight.shape
    rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, shape[-1] if shape else 1)
    lead = prod(shape[:-2])
    if scale.numel == 1:
        return Grid(weight, scale, lead, rows, cols, 1, 1, rows, cols, compute)
    sshape = tuple(scale.shape)
    if len(sshape) == len(shape) - 1 and len(shape) >= 2:  # one scale per row stored as [rows]
        sshape = sshape + (1,)
    block = tensor.settings.get("weight_block_size") if tensor.part(".weight_scale_inv") is scale else None
    if len(sshape) != len(shape) or sshape[:-2] != tuple(shape[:-2]) or 0 in sshape:
        raise bad_part(
            tensor,
            scale,
            f"one scale, or a grid of scales over {weight.name}'s shape {list(shape)}",
            f"shape {list(scale.shape)}",
        )
    srows, scols = sshape[-2:]
    if isinstance(block, (list, tuple)) and len(block) == 2 and all(isinstance(b, int) and b > 0 for b in block):
        brows, bcols = block
    else:
        brows, bcols = ceil(rows / srows), ceil(cols / scols)
    if (ceil(rows / brows), ceil(cols / bcols)) != (srows, scols):
        raise bad_part(
            tensor,
            scale,
            f"shape {[*shape[:-2], ceil(rows / brows), ceil(cols / bcols)]}, one scale per {brows}x{bcols} block of {weight.name}'s {rows}x{cols}",
            f"shape {list(scale.shape)}",
        )
    return Grid(weight, scale, lead, rows, cols, srows, scols, brows, bcols, compute)


def _check(tensor: Dequantized) -> None:
    grid(tensor)


def _scales(values: list, dtype: str) -> list:
    """Scale values as multiplied: E8M0 bytes (U8) are powers of two, 2 ** (byte - 127); a
    power beyond float32 is inf there (then inf x 0 is NaN, as in torch)."""
    if dtype == "U8":
        values = [2.0 ** (v - 127) for v in values]
    return round_values(values, "F32") if dtype in E8M0_SCALES else values


def _read(reader: ElementReader, tensor: Dequantized, positions: Sequence[int]) -> list:
    g = grid(tensor)
    weights = reader.read(g.weight, positions)
    wanted = [g.scale_index(p) for p in positions]
    unique = sorted(set(wanted))
    scale_of = dict(zip(unique, _scales(reader.read(g.scale, unique), g.scale.dtype)))
    products = [w * scale_of[s] for w, s in zip(weights, wanted)]  # exact in float64: 4 x 24 significant bits
    if g.compute != "F32" or tensor.loaded == "F64":  # a cast to F32, F16 or BF16 goes through float32 already
        products = round_values(products, g.compute)
    return round_values(products, tensor.loaded)


def _scale_array(reader: Reader, g: Grid) -> np.ndarray:
    """All the scales as float64 [lead or 1, srows, scols] (a scale per block: at most a
    block's share of the weight, read once)."""
    import numpy as np

    values = np.concatenate([block.copy() for block in reader.blocks(g.scale)]) if g.scale.numel else np.empty(0)
    if g.scale.dtype == "U8":
        values = np.ldexp(1.0, values.astype(np.int64) - 127)
    if g.scale.dtype in E8M0_SCALES:
        round_array(values, "F32")
    return values.reshape(-1, g.srows, g.scols)


def _stream(reader: Reader, tensor: Dequantized) -> Iterator[np.ndarray]:
    import numpy as np

    g = grid(tensor)
    scales = _scale_array(reader, g)
    done = 0
    for block in reader.blocks(g.weight):  # the fp8 values as float64, in row-major order
        if done % g.cols == 0 and block.size % g.cols == 0:  # whole rows (most blocks): a scale row per row, widened
            rows = np.arange(done // g.cols, (done + block.size) // g.cols)
            per_row = scales[rows // g.rows if scales.shape[0] > 1 else 0, rows % g.rows // g.brows]
            block.reshape(-1, g.cols)[...] *= np.repeat(per_row, g.bcols, axis=1)[:, : g.cols]
        else:
            matrix, rest = np.divmod(np.arange(done, done + block.size, dtype=np.int64), g.rows * g.cols)
            row, col = np.divmod(rest, g.cols)
            block *= scales[matrix if scales.shape[0] > 1 else 0, row // g.brows, col // g.bcols]
        done += block.size
        if g.compute != "F32" or tensor.loaded == "F64":  # a cast to F32, F16 or BF16 goes through float32 already
            round_array(block, g.compute)
        yield round_array(block, tensor.loaded)


DEQUANTIZER = Dequantizer(loaded_or("BF16"), _check, _read, _stream)
