"""One table per quantization scheme: which stored tensors make up one weight, the logical
name and shape they stand for, and how the scheme reads in words. Shapes only (headers):
counting a quantized model never reads its data.

Each Scheme: key; main (the stored suffix that carries the packed values, with the dtypes
it may have); parts (suffixes stored beside it that belong to the same weight); logical
(the suffix replacing main in the logical name); shape(main_shape, q) -> (logical shape,
{part suffix: expected shape, or None for "present, any shape"}) or raises Mismatch;
describe(q) -> the scheme in words; state: the parts that hold a small JSON document about
the weight (bitsandbytes keeps the logical shape there, not in the header), read and given
to shape() as q["state"]. q is the scheme's settings (bits, group size, ...) read from the config."""

from __future__ import annotations

from collections import namedtuple
from math import ceil


class Mismatch(ValueError):
    """The stored shape cannot be what the settings say (a finding, never a wrong count).
    kind: which check failed; repeats of one kind in other weights fold into one finding."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Scheme(namedtuple("Scheme", "key main main_dtypes parts logical shape describe state", defaults=((),))):
    __slots__ = ()


def _unpacked(packed: int, bits: int, what: str) -> int:
    """Values in `packed` 32-bit words of `bits`-bit values."""
    if (packed * 32) % bits:
        raise Mismatch(f"{what} {packed} words of 32 bits holding {bits}-bit values (not a whole number)", "words")
    return packed * 32 // bits


def _groups(size: int, group: int, what: str) -> int:
    if group <= 0:  # GPTQ's group_size -1: one group over the whole input
        return 1
    if size % group:
        raise Mismatch(f"{what} {size} not divisible by group_size {group}", "group")
    return size // group


def _rank(shape, rank: int, what: str) -> None:
    """A stored tensor of another rank than the scheme packs (a hostile header): a finding."""
    if len(shape) != rank:
        raise Mismatch(f"{what} of shape {list(shape)}, not of {rank} dimensions", "rank")


def _gptq(shape, q):
    _rank(shape, 2, "a qweight")
    rows, out = shape
    inner = _unpacked(rows, q["bits"], "qweight rows")
    groups = _groups(inner, q["group_size"], "input size")
    return (out, inner), {".scales": (groups, out), ".qzeros": (groups, _words(out, q["bits"])), ".g_idx": (inner,)}


def _awq(shape, q):
    _rank(shape, 2, "a qweight")
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
        raise Mismatch(
            f"blocks of 16 bytes (32 four-bit values) as the last dimension, found shape {list(shape)}", "blocks"
        )
    *lead, rows, blocks, _ = shape
    return (*lead, blocks * 32, rows), {"_scales": (*lead, rows, blocks)}


def _mlx(shape, q):
    if not shape:
        raise Mismatch("packed words of shape [], not of at least 1 dimension", "rank")
    *lead, packed = shape
    inner = _unpacked(packed, q["bits"], "packed columns")
    groups = _groups(inner, q["group_size"], "input size")
    return (*lead, inner), {".scales": (*lead, groups), ".biases": (*lead, groups)}


# bitsandbytes 4 bit (Params4bit.quant_state.as_dict(packed=True), as transformers saves it):
# `weight` holds two 4-bit codes per byte, flattened ([ceil(n/2), 1]); beside it `absmax` (one
# per block: F32, or U8 codes when double-quantized with `nested_absmax` F32 per 256 blocks and
# `nested_quant_map` [256]), `quant_map` [16] (the nf4 or fp4 code table) and the JSON state.
BNB4_STATES = (".weight.quant_state.bitsandbytes__nf4", ".weight.quant_state.bitsandbytes__fp4")


def _bnb4(shape, q):
    state = q.get("state")
    if not isinstance(state, dict):
        raise Mismatch(state or "a quant_state beside it: missing", "state")
    logical, block = state.get("shape"), state.get("blocksize")
    if not isinstance(logical, list) or not logical or not all(type(d) is int and d >= 0 for d in logical):
        raise Mismatch(f"quant_state shape {logical!r} (not a list of sizes)", "state shape")
    if type(block) is not int or block <= 0:
        raise Mismatch(f"quant_state blocksize {block!r} (not a positive whole number)", "state blocksize")
    n = 1
    for d in logical:
        n *= d
    packed = 1
    for d in shape:
        packed *= d
    if packed != -(-n // 2):
        raise Mismatch(
            f"packed weight of {packed} bytes for the {n} four-bit values of shape {logical} ({-(-n // 2)} bytes)",
            "packed",
        )
    blocks = -(-n // block)
    expected = {
        ".weight.absmax": (blocks,),
        ".weight.quant_map": (16,),
        f".weight.quant_state.bitsandbytes__{q['bnb_4bit_quant_type']}": None,
    }
    if q.get("bnb_4bit_use_double_quant"):
        nested = state.get("nested_blocksize")
        if type(nested) is not int or nested <= 0:
            raise Mismatch(f"quant_state nested_blocksize {nested!r} (not a positive whole number)", "state nested")
        expected.update({".weight.nested_absmax": (-(-blocks // nested),), ".weight.nested_quant_map": (256,)})
    return tuple(logical), expected


def _bnb8(shape, q):
    # LLM.int8 (Linear8bitLt._save_to_state_dict): `weight` I8 [out, in] as the logical shape,
    # `SCB` F32 [out] (each row's absmax) and `weight_format` (0: row-major) beside the module.
    if len(shape) != 2:
        raise Mismatch(f"an int8 weight of 2 dimensions, found shape {list(shape)}", "rank")
    return tuple(shape), {".SCB": (shape[0],)}


def _bnb4_words(q):
    block = q.get("state", {}).get("blocksize", 64)
    return f"bitsandbytes 4 bit {q['bnb_4bit_quant_type']}, block {block}" + (
        ", double quant" if q.get("bnb_4bit_use_double_quant") else ""
    )


def _pack(shape, q):
    # compressed-tensors pack-quantized: [..., out, ceil(in * bits / 32)] words. The header alone
    # gives in when the codes fill whole words (weight_shape, a stored tensor, is checked when
    # the values are read).
    if len(shape) < 2:
        raise Mismatch(f"a weight_packed of shape {list(shape)}, not of at least 2 dimensions", "rank")
    *lead, out, words = shape
    inner = _unpacked(words, q["bits"], "weight_packed columns")
    strategy = q.get("strategy") or "group"
    groups = _groups(inner, q["group_size"], "input size") if strategy == "group" else 1
    rows = out if strategy in ("group", "channel") else 1
    expected = {".weight_shape": (2,)}
    if strategy != "tensor":
        expected[".weight_scale"] = (*lead, rows, groups)
    if not q.get("sym", True) and strategy != "tensor":
        expected[".weight_zero_point"] = (*lead, -(-rows * q["bits"] // 32), groups)
    return (*lead, out, inner), expected


def _pack_words(q):
    strategy = q.get("strategy") or "group"
    how = _group(q) if strategy == "group" else f"per {'column' if strategy == 'channel' else strategy}"
    return f"compressed-tensors pack-quantized int{q['bits']}, {how}, {_sym(q)}"


def _sym(q):
    return "symmetric" if q.get("sym", True) else "asymmetric"


def _group(q):
    return "per column" if q["group_size"] <= 0 else f"group {q['group_size']}"


def _fp8_words(q):
    block = q.get("weight_block_size")
    return "FP8 E4M3, " + (
        f"{block[0]}x{block[1]} blocks (weight_scale_inv)"
        if block
        else "per-tensor or per-channel scales (weight_scale)"
    )


SCHEMES = {
    "gptq": Scheme(
        "gptq",
        ".qweight",
        ("I32",),
        (".qzeros", ".scales", ".g_idx"),
        ".weight",
        _gptq,
        lambda q: f"GPTQ {q['bits']} bit, {_group(q)}, {_sym(q)}, act-order {'on' if q.get('desc_act') else 'off'}",
    ),
    "awq": Scheme(
        "awq",
        ".qweight",
        ("I32",),
        (".qzeros", ".scales"),
        ".weight",
        _awq,
        lambda q: (
            f"AWQ {q['bits']} bit, {_group(q)}, {'zero point' if q.get('zero_point', True) else 'symmetric'}, {str(q.get('version') or 'gemm').upper()}"
        ),
    ),
    "fp8": Scheme(
        "fp8",
        ".weight",
        ("F8_E4M3", "F8_E5M2"),
        (".weight_scale_inv", ".weight_scale", ".input_scale"),
        ".weight",
        _fp8,
        _fp8_words,
    ),
    "mxfp4": Scheme(
        "mxfp4",
        "_blocks",
        ("U8",),
        ("_scales",),
        "",
        _mxfp4,
        lambda q: "MXFP4: 4-bit E2M1 values in blocks of 32 sharing one E8M0 scale",
    ),
    "mlx": Scheme(
        "mlx",
        ".weight",
        ("U32",),
        (".scales", ".biases"),
        ".weight",
        _mlx,
        lambda q: (
            f"MLX {q['mode']} {q['bits']} bit, group {q['group_size']}"
            + (" (scales and biases)" if q["mode"] == "affine" else "")
        ),
    ),
    "bnb4": Scheme(
        "bnb4",
        ".weight",
        ("U8",),
        (".weight.absmax", ".weight.quant_map", ".weight.nested_absmax", ".weight.nested_quant_map", *BNB4_STATES),
        ".weight",
        _bnb4,
        _bnb4_words,
        BNB4_STATES,
    ),
    "bnb8": Scheme(
        "bnb8",
        ".weight",
        ("I8",),
        (".SCB", ".weight_format"),
        ".weight",
        _bnb8,
        lambda q: f"bitsandbytes 8 bit (LLM.int8), per-row scales (SCB), outlier threshold {q['llm_int8_threshold']}",
    ),
    "pack": Scheme(
        "pack",
        ".weight_packed",
        ("I32",),
        (".weight_scale", ".weight_zero_point", ".weight_shape"),
        ".weight",
        _pack,
        _pack_words,
    ),
}

# config.json's quantization_config.quant_method -> scheme key.
QUANT_METHODS = {
    "gptq": "gptq",
    "awq": "awq",
    "fp8": "fp8",
    "fbgemm_fp8": "fp8",
    "compressed-tensors": "fp8",
    "mxfp4": "mxfp4",
    "bitsandbytes": "bnb4",
}

# A setting that picks another scheme of the same quant_method: scheme -> (setting, scheme when it is true).
SWITCHED_BY = {"bnb4": ("load_in_8bit", "bnb8")}


def _block_size(value) -> bool:
    return type(value) is list and len(value) == 2 and all(type(b) is int and b > 0 for b in value)


# Settings a scheme reads without a default, and what each must be: (check, in words).
OPTIONAL = {"fp8": {"weight_block_size": (_block_size, "a list of two positive integers")}}

# Settings each scheme reads from the config, with the defaults its writers use.
DEFAULTS = {
    "gptq": {"bits": 4, "group_size": 128, "sym": True, "desc_act": False, "checkpoint_format": "gptq"},
    "awq": {"bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "fp8": {},
    "mxfp4": {},
    "mlx": {"bits": 4, "group_size": 64, "mode": "affine"},
    "bnb4": {"bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False},  # BitsAndBytesConfig's defaults
    "bnb8": {"llm_int8_threshold": 6.0},
    "pack": {"bits": 4, "group_size": 128, "strategy": "group", "sym": True},
}

# compressed-tensors' quantization_config.format -> scheme key: its integer formats packed in
# int32 words are their own scheme, its float ones read as FP8.
COMPRESSED_TENSORS_FORMATS = {"pack-quantized": "pack", "float-quantized": "fp8", "naive-quantized": "fp8"}
