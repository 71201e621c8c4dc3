"""bitsandbytes 4-bit weights dequantized as bitsandbytes' dequantize_4bit does (transformers'
dequantize() calls it), element for element.

Byte k of `weight` holds values 2k (high nibble) and 2k + 1 (low nibble) of the flattened
weight; value = code[nibble] x absmax[i // blocksize] in float32, then the quant state's dtype
(the dtype the weight had). code is bitsandbytes' own nf4 or fp4 table (its kernels use it,
not the stored quant_map). Double quant stores absmax as U8 codes:
absmax = nested_quant_map[code] x nested_absmax[block // nested_blocksize], then
+ nested_offset, each step in float32 (dequantize_blockwise, then `absmax += offset`)."""

from __future__ import annotations

from .dequant import Dequantizer, bad_part, missing_part, round_array, round_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator, Sequence

    import numpy as np

    from ..core.catalog import TensorInfo
    from ..decode.stream import Reader
    from ..decode.elements import ElementReader
    from . import LogicalWeight
    from .dequant import Dequantized

# bitsandbytes' get_4bit_type tables, float32 values. nf4: quantiles of the standard normal
# (QLoRA); fp4: 1 sign, 2 exponent, 1 mantissa bit in bit-pattern order, scaled to [-1, 1]:
# (0, 0.0625, 8, 12, 4, 6, 2, 3) / 12, then the same negated.
NF4 = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)
_FP4 = (0.0, 0.0052083334885537624, 0.6666666865348816, 1.0, 0.3333333432674408, 0.5, 0.1666666716337204, 0.25)
CODES = {"nf4": NF4, "fp4": _FP4 + (0.0,) + tuple(-v for v in _FP4[1:])}  # code 8, "-0", is +0.0 in its table
STATE_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}  # what dequantize_4bit accepts


def _dtype(weight: LogicalWeight, model_dtype: str | None) -> str:
    state = (weight.settings or {}).get("state") or {}
    return STATE_DTYPES.get(state.get("dtype"), model_dtype or "F16")


def _parts(tensor: Dequantized) -> tuple[dict[str, Any], dict[str, TensorInfo]]:
    """(the quant state, the stored parts by role: absmax, and code and nested when double-quantized), checked."""
    state = tensor.settings.get("state") or {}
    main = tensor.weight.parts[0]
    if state.get("quant_type") not in CODES or state.get("dtype") not in STATE_DTYPES:
        found = f"quant_type {state.get('quant_type')!r}, dtype {state.get('dtype')!r}"
        raise bad_part(
            tensor, main, "a quant state of quant_type nf4 or fp4 and dtype float16, bfloat16 or float32", found
        )
    if main.dtype != "U8":
        raise bad_part(tensor, main, "pairs of 4-bit codes stored as U8", main.dtype)
    blocks = -(-tensor.numel // state["blocksize"])  # a positive whole number: counting checked it
    nested = "nested_blocksize" in state
    if nested and not (_whole(state["nested_blocksize"]) and _number(state.get("nested_offset"))):
        found = f"nested_blocksize {state['nested_blocksize']!r}, nested_offset {state.get('nested_offset')!r}"
        raise bad_part(
            tensor, main, "a quant state with a positive whole nested_blocksize and a number as nested_offset", found
        )
    # role -> (suffix, shape, dtype)
    expected = {"absmax": (".absmax", (blocks,), "U8" if nested else "F32")}
    if nested:
        expected.update(
            code=(".nested_quant_map", (256,), "F32"),
            nested=(".nested_absmax", (-(-blocks // state["nested_blocksize"]),), "F32"),
        )
    parts = {}
    for role, (suffix, shape, dtype) in expected.items():
        part = tensor.part(".weight" + suffix)
        if part is None:
            raise missing_part(tensor, main.name + suffix)
        if tuple(part.shape) != shape or part.dtype != dtype:
            raise bad_part(tensor, part, f"{dtype} {list(shape)}", f"{part.dtype} {list(part.shape)}")
        parts[role] = part
    return state, parts


def _whole(value: object) -> bool:
    return type(value) is int and value > 0


def _number(value: object) -> bool:
    return type(value) in (int, float) and abs(value) < float("inf")


def _check(tensor: Dequantized) -> None:
    _parts(tensor)


def _at(reader: ElementReader, info: TensorInfo, positions: list) -> list:
    """Values at positions in any order, each stored element read once."""
    unique = sorted(set(positions))
    found = dict(zip(unique, reader.read(info, unique)))
    return [found[p] for p in positions]


def _absmax(reader: ElementReader, state: dict[str, Any], parts: dict[str, TensorInfo], blocks: list) -> list:
    """The float32 absmax of these ascending blocks."""
    stored = reader.read(parts["absmax"], blocks)
    if "code" not in parts:
        return stored
    size = state["nested_blocksize"]
    nested = _at(reader, parts["nested"], [b // size for b in blocks])
    table = _at(reader, parts["code"], [int(c) for c in stored])
    offset = round_values([float(state["nested_offset"])], "F32")[0]
    products = round_values([t * s for t, s in zip(table, nested)], "F32")
    return round_values([p + offset for p in products], "F32")


def _read(reader: ElementReader, tensor: Dequantized, positions: Sequence[int]) -> list:
    state, parts = _parts(tensor)
    block, table = state["blocksize"], CODES[state["quant_type"]]
    packed = _at(reader, tensor.weight.parts[0], [p // 2 for p in positions])
    nibbles = [b & 15 if p % 2 else b >> 4 for b, p in zip(packed, positions)]
    wanted = sorted({p // block for p in positions})
    scale_of = dict(zip(wanted, _absmax(reader, state, parts, wanted)))
    products = round_values([table[c] * scale_of[p // block] for c, p in zip(nibbles, positions)], "F32")
    return round_values(products, tensor.loaded)


def _all(reader: Reader, info: TensorInfo) -> np.ndarray:
    import numpy as np

    return np.concatenate([block.copy() for block in reader.blocks(info)])


def _stream(reader: Reader, tensor: Dequantized) -> Iterator[np.ndarray]:
    import numpy as np

    state, parts = _parts(tensor)
    main, block, n = tensor.weight.parts[0], state["blocksize"], tensor.numel
    table = np.array(CODES[state["quant_type"]], np.float32)
    absmax = _all(reader, parts["absmax"]).astype(np.float32)  # one per block: a 64th of the values
    if "code" in parts:
        codes = _all(reader, parts["code"]).astype(np.float32)
        nested = _all(reader, parts["nested"]).astype(np.float32)
        absmax = codes[absmax.astype(np.int64)] * nested[np.arange(absmax.size) // state["nested_blocksize"]]
        absmax += np.float32(float(state["nested_offset"]))
    stripe = max(1, len(reader.block) // 2)  # packed bytes per piece, two values each
    for start in range(0, main.nbytes, stripe):
        packed = reader.read_bytes(main, start, min(stripe, main.nbytes - start))
        values = np.empty(packed.size * 2, np.float32)
        values[0::2] = table[packed >> 4]
        values[1::2] = table[packed & 15]
        first = start * 2
        values = values[: min(values.size, n - first)]  # an odd count leaves the last low nibble unused
        values *= absmax[(first + np.arange(values.size)) // block]
        yield round_array(values.astype(np.float64), tensor.loaded)


DEQUANTIZER = Dequantizer(_dtype, _check, _read, _stream)
