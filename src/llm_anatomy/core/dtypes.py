"""One table of element types: how many bits each element takes, how torch names it,
and how to decode it without numpy. GGML block-quantized types live in the same table
(block size and bytes per block), so sizes are computed in one place."""

from __future__ import annotations

from collections import namedtuple

from .errors import CorruptFile
from .ggml_types import GGML_TYPES


class DType(namedtuple("DType", "name bits torch_name kind struct_code block_size block_bytes", defaults=(None, 1, 0))):
    """An element type. name: safetensors / GGML spelling ("BF16", "Q4_K"); bits: bits per
    element (block types: per block); torch_name: how torch prints it ("torch.bfloat16"),
    None if torch has none; kind: "float", "int", "uint", "bool", "complex" or "quant";
    struct_code: struct format of one element when struct can decode it; block_size:
    elements per block (GGML quants, else 1); block_bytes: bytes per block.
    (A named tuple rather than a dataclass: see catalog.py.)"""

    __slots__ = ()

    @property
    def is_block(self) -> bool:
        return self.block_size > 1 or self.kind == "quant"

    def nbytes(self, numel: int) -> int | None:
        """Bytes for numel elements, or None if numel does not fill whole blocks/bytes."""
        if self.is_block:
            blocks, rest = divmod(numel, self.block_size)
            return None if rest else blocks * self.block_bytes
        bits = numel * self.bits
        return None if bits % 8 else bits // 8

    @property
    def bits_per_weight(self) -> float:
        if self.is_block:
            return self.block_bytes * 8 / self.block_size
        return float(self.bits)


def _plain(name: str, bits: int, torch_name: str | None, kind: str, code: str | None = None) -> DType:
    return DType(name, bits, torch_name, kind, code)


# Every dtype of the safetensors spec (bindings/python and the Rust crate's Dtype enum).
SAFETENSORS_DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        _plain("BOOL", 8, "torch.bool", "bool", "?"),
        _plain("U8", 8, "torch.uint8", "uint", "B"),
        _plain("I8", 8, "torch.int8", "int", "b"),
        _plain("U16", 16, "torch.uint16", "uint", "H"),
        _plain("I16", 16, "torch.int16", "int", "h"),
        _plain("U32", 32, "torch.uint32", "uint", "I"),
        _plain("I32", 32, "torch.int32", "int", "i"),
        _plain("U64", 64, "torch.uint64", "uint", "Q"),
        _plain("I64", 64, "torch.int64", "int", "q"),
        _plain("F16", 16, "torch.float16", "float", "e"),
        _plain("BF16", 16, "torch.bfloat16", "float"),
        _plain("F32", 32, "torch.float32", "float", "f"),
        _plain("F64", 64, "torch.float64", "float", "d"),
        _plain("F8_E4M3", 8, "torch.float8_e4m3fn", "float"),
        _plain("F8_E5M2", 8, "torch.float8_e5m2", "float"),
        _plain("F8_E4M3FNUZ", 8, "torch.float8_e4m3fnuz", "float"),
        _plain("F8_E5M2FNUZ", 8, "torch.float8_e5m2fnuz", "float"),
        _plain("F8_E8M0", 8, "torch.float8_e8m0fnu", "float"),
        _plain("F6_E2M3", 6, None, "float"),
        _plain("F6_E3M2", 6, None, "float"),
        _plain("F4", 4, "torch.float4_e2m1fn_x2", "float"),
        _plain("C64", 64, "torch.complex64", "complex", "ff"),
        _plain("C128", 128, "torch.complex128", "complex", "dd"),
    )
}

# The table every reader and analysis consults: the safetensors types, and GGML's
# block-quantized types (GGUF's plain types share the safetensors names).
DTYPES: dict[str, DType] = dict(SAFETENSORS_DTYPES)
DTYPES.update(
    (name, DType(name, block_bytes * 8, None, "quant", None, block_size, block_bytes))
    for name, block_size, block_bytes in GGML_TYPES.values()
    if block_size > 1
)

# torch dtype names as written in config.json ("torch_dtype": "float16") -> table name.
CONFIG_DTYPE_NAMES = {
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "int8": "I8",
    "uint8": "U8",
}


def lookup(name: str, where: object) -> DType:
    try:
        return DTYPES[name]
    except KeyError:
        known = ", ".join(SAFETENSORS_DTYPES)
        raise CorruptFile(
            where, f"a known dtype ({known})", f"{name!r}", "the file may be corrupt or from a newer writer"
        ) from None
