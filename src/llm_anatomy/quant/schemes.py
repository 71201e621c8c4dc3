"""One table per quantization scheme: which stored tensors make up one weight, the logical
name and shape they stand for, and how the scheme reads in words. Shapes only (headers):
counting a quantized model never reads its data.

Each Scheme: key; main (the stored suffix that carries the packed values, with the dtypes
it may have); parts (suffixes stored beside it that belong to the same weight); logical
(the suffix replacing main in the logical name); shape(main_shape, q) -> (logical shape,
{part suffix: expected shape}) or raises Mismatch; describe(q) -> the scheme in words.
q is the scheme's settings (bits, group size, ...) read from the config."""

from __future__ import annotations

from collections import namedtuple
from math import ceil


class Mismatch(ValueError):
    """The stored shape cannot be what the settings say (a finding, never a wrong count)."""


class Scheme(namedtuple("Scheme", "key main main_dtypes parts logical shape describe")):
    __slots__ = ()


def _unpacked(packed: int, bits: int, what: str) -> int:
    """Values in `packed` 32-bit words of `bits`-bit values."""
    if (packed * 32) % bits:
        raise Mismatch(f"{what} {packed} words of 32 bits holding {bits}-bit values (not a whole number)")
    return packed * 32 // bits


def _groups(size: int, group: int, what: str) -> int:
    if group <= 0:  # GPTQ's group_size -1: one group over the whole input
        return 1
    if size % group:
        raise Mismatch(f"{what} {size} not divisible by group_size {group}")
    return size // group


def _gptq(shape, q):
    rows, out = shape
    inner = _unpacked(rows, q["bits"], "qweight rows")
    groups = _groups(inner, q["group_size"], "input size")
    return (out, inner), {".scales": (groups, out), ".qzeros": (groups, _words(out, q["bits"])), ".g_idx": (inner,)}


def _awq(shape, q):
    inner, cols = shape
    out = _unpacked(cols, q["bits"], "qweight columns")
    groups = _groups(inner, q["group_size"], "input size")
    return (out, inner), {".scales": (groups, out), ".qzeros": (groups, cols)}


def _words(values: int, bits: int) -> int:
    return values * bits // 32


def _fp8(shape, q):
    block = q.get("weight_block_size")
    if not block or len(shape) != 2:
        return tuple(shape), {}
    return tuple(shape), {".weight_scale_inv": (ceil(shape[0] / block[0]), ceil(shape[1] / block[1]))}


def _mxfp4(shape, q):
    # gpt-oss experts: [experts, rows, blocks, 16 bytes = 32 values]; transformers' parameter
    # is [experts, columns, rows] (GptOssExperts.gate_up_proj: experts x hidden x 2*expert_dim).
    if len(shape) < 3 or shape[-1] != 16:
        raise Mismatch(f"blocks of 16 bytes (32 four-bit values) as the last dimension, found shape {list(shape)}")
    *lead, rows, blocks, _ = shape
    return (*lead, blocks * 32, rows), {"_scales": (*lead, rows, blocks)}


def _mlx(shape, q):
    *lead, packed = shape
    inner = _unpacked(packed, q["bits"], "packed columns")
    groups = _groups(inner, q["group_size"], "input size")
    return (*lead, inner), {".scales": (*lead, groups), ".biases": (*lead, groups)}


def _sym(q):
    return "symmetric" if q.get("sym", True) else "asymmetric"


def _group(q):
    return "per column" if q["group_size"] <= 0 else f"group {q['group_size']}"


def _fp8_words(q):
    block = q.get("weight_block_size")
    return "FP8 E4M3, " + (f"{block[0]}x{block[1]} blocks (weight_scale_inv)" if block else "per-tensor or per-channel scales (weight_scale)")


SCHEMES = {
    "gptq": Scheme("gptq", ".qweight", ("I32",), (".qzeros", ".scales", ".g_idx"), ".weight", _gptq,
                   lambda q: f"GPTQ {q['bits']} bit, {_group(q)}, {_sym(q)}, act-order {'on' if q.get('desc_act') else 'off'}"),
    "awq": Scheme("awq", ".qweight", ("I32",), (".qzeros", ".scales"), ".weight", _awq,
                  lambda q: f"AWQ {q['bits']} bit, {_group(q)}, {'zero point' if q.get('zero_point', True) else 'symmetric'}, {str(q.get('version') or 'gemm').upper()}"),
    "fp8": Scheme("fp8", ".weight", ("F8_E4M3", "F8_E5M2"), (".weight_scale_inv", ".weight_scale", ".input_scale"), ".weight", _fp8, _fp8_words),
    "mxfp4": Scheme("mxfp4", "_blocks", ("U8",), ("_scales",), "", _mxfp4,
                    lambda q: "MXFP4: 4-bit E2M1 values in blocks of 32 sharing one E8M0 scale"),
    "mlx": Scheme("mlx", ".weight", ("U32",), (".scales", ".biases"), ".weight", _mlx,
                  lambda q: f"MLX affine {q['bits']} bit, group {q['group_size']} (scales and biases)"),
}

# config.json's quantization_config.quant_method -> scheme key.
QUANT_METHODS = {"gptq": "gptq", "awq": "awq", "fp8": "fp8", "fbgemm_fp8": "fp8", "compressed-tensors": "fp8", "mxfp4": "mxfp4"}

# Settings each scheme reads from the config, with the defaults its writers use.
DEFAULTS = {
    "gptq": {"bits": 4, "group_size": 128, "sym": True, "desc_act": False},
    "awq": {"bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "fp8": {},
    "mxfp4": {},
    "mlx": {"bits": 4, "group_size": 64},
}
