"""bitsandbytes 8-bit (LLM.int8) weights dequantized as transformers' dequantize() does:
bitsandbytes' int8_vectorwise_dequant, value = weight x SCB[row] x 7.874015718698502e-3 (its
1/127), each product in float32, then cast to the model's dtype."""

from __future__ import annotations

from .dequant import Dequantizer, bad_part, missing_part, round_array, round_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Sequence

    import numpy as np

    from ..core.catalog import TensorInfo
    from ..decode.stream import Reader
    from ..decode.elements import ElementReader
    from . import LogicalWeight
    from .dequant import Dequantized

INV_127 = 7.874015718698502e-3  # a Python float times a float32 tensor: rounded to float32 first


def _dtype(weight: LogicalWeight, model_dtype: str | None) -> str:
    return model_dtype or "F32"


def _scb(tensor: Dequantized) -> TensorInfo:
    main = tensor.weight.parts[0]
    scb = tensor.part(".SCB")
    if scb is None:
        raise missing_part(tensor, main.name[: -len(".weight")] + ".SCB")
    if tuple(scb.shape) != (main.shape[0],) or scb.dtype != "F32":
        raise bad_part(
            tensor, scb, f"F32 [{main.shape[0]}], one absmax per row of {main.name}", f"{scb.dtype} {list(scb.shape)}"
        )
    return scb


def _check(tensor: Dequantized) -> None:
    _scb(tensor)


def _read(reader: ElementReader, tensor: Dequantized, positions: Sequence[int]) -> list:
    scb = _scb(tensor)
    cols = tensor.weight.parts[0].shape[1]
    values = reader.read(tensor.weight.parts[0], positions)
    rows = sorted({p // cols for p in positions})
    scale_of = dict(zip(rows, reader.read(scb, rows)))
    inverse = round_values([INV_127], "F32")[0]
    products = round_values([v * scale_of[p // cols] for v, p in zip(values, positions)], "F32")
    return round_values(round_values([x * inverse for x in products], "F32"), tensor.loaded)


def _stream(reader: Reader, tensor: Dequantized) -> Iterator[np.ndarray]:
    import numpy as np

    scb = _scb(tensor)
    cols = tensor.weight.parts[0].shape[1]
    scales = np.concatenate([block.copy() for block in reader.blocks(scb)]).astype(np.float32)
    done = 0
    for block in reader.blocks(tensor.weight.parts[0]):
        values = block.astype(np.float32) * scales[(done + np.arange(block.size)) // cols] * np.float32(INV_127)
        done += block.size
        yield round_array(values.astype(np.float64), tensor.loaded)


DEQUANTIZER = Dequantizer(_dtype, _check, _read, _stream)
