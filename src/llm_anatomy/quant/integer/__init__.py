"""The integer schemes, GPTQ, AWQ GEMM, MLX affine and compressed-tensors pack-quantized: the
layout of one weight's stored parts (checked from the headers alone; data, in
quant.integer.layout) and its values, computed as the reference computes them: in the
scales' dtype, each operation rounded to it (torch's half and bfloat16 arithmetic, and mlx's
CPU backend, compute each operation in float32 and round the result).

The four store b-bit codes alike: one little-endian bit stream per packed row, code k at bits
[k*b, k*b + b) of the 32-bit words laid end to end (so 3-bit GPTQ and mlx's 3, 5 and 6-bit
codes cross word boundaries); AWQ alone permutes the eight nibbles of each word.

A few values (`values`, the API) are computed here in plain Python from the stored elements
they need, so showing a quantized weight imports no numpy; whole weights (stats, diff) are
computed over boxes of rows with numpy in quant.integer.arrays. DEQUANTIZER plugs the four
schemes into quant.dequant's table."""

from __future__ import annotations

from ..dequant import Dequantizer
from .layout import FLOAT_PARTS, LAYOUTS, Layout, _part

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Sequence

    import numpy as np

    from ...core.catalog import TensorInfo
    from ...decode.stream import Reader
    from ...decode.elements import ElementReader
    from .. import LogicalWeight
    from ..dequant import Dequantized


def values(layout: Layout, read: Callable[[TensorInfo, list[int]], list], positions: Sequence[int]) -> list[float]:
    """The values at flat positions of the logical weight, reading each part's elements once
    (read(part, ascending positions), as tensors.ElementReader.read). The formulas run until
    every element they ask for has been read: a missing one reads as 0 and is fetched for the
    next pass (GPTQ's g_idx first, then the scales and zeros of the groups it names)."""
    for info, check in layout.checks:
        check(tuple(read(info, list(range(info.numel)))))
    cells = [divmod(p, layout.inner) for p in positions]
    known: dict[str, dict[int, Any]] = {}
    while True:
        missing: dict[str, tuple[TensorInfo, set[int]]] = {}

        def at(info: TensorInfo, position: int, missing: dict[str, tuple[TensorInfo, set[int]]] = missing) -> Any:
            found = known.get(info.name, {}).get(position)
            if found is None:
                missing.setdefault(info.name, (info, set()))[1].add(position)
                return 0
            return found

        components = [layout.components(at, o, i) for o, i in cells]
        if not missing:
            return layout.combine(components)
        for name, (info, wanted) in missing.items():
            ordered = sorted(wanted)
            known.setdefault(name, {}).update(zip(ordered, read(info, ordered)))


# ---------------------------------------------------------------- the dequantizer table's entry (quant.dequant)


def _layout(tensor: Dequantized) -> Layout:
    return LAYOUTS[tensor.weight.scheme](tensor.weight, tensor.settings)


def _dtype(weight: LogicalWeight, model_dtype: str | None) -> str:
    """The scales' dtype, which every reference computes in (F16 until check() refuses a weight without float scales)."""
    scales = _part(weight, LAYOUTS[weight.scheme].scales, required=False)
    return scales.dtype if scales is not None and scales.dtype in FLOAT_PARTS else "F16"


def _check(tensor: Dequantized) -> None:
    _layout(tensor)


def _read(reader: ElementReader, tensor: Dequantized, positions: Sequence[int]) -> list:
    return values(_layout(tensor), reader.read, positions)


def _stream(reader: Reader, tensor: Dequantized) -> Iterator[np.ndarray]:
    from .arrays import stripes  # numpy: only whole weights (stats, diff) need it

    return stripes(_layout(tensor), reader.read_bytes)


DEQUANTIZER = Dequantizer(_dtype, _check, _read, _stream)
