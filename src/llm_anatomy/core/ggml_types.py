"""GGUF's type tables, copied from the `gguf` package (llama.cpp's gguf-py, the source of
truth) so that header-only commands need neither gguf nor the numpy it imports.

tests/formats/test_gguf.py checks every table here against the installed gguf package and prints
the up-to-date literal when gguf adds a type."""

from __future__ import annotations

# GGMLQuantizationType value -> (name, elements per block, bytes per block): gguf.GGML_QUANT_SIZES.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# Block types gguf.quants.dequantize can decode (gguf.quants._type_traits); the others
# (Q8_1, Q8_K, Q1_0) are listed by params but their values are not shown.
GGML_DEQUANTIZABLE = frozenset(
    "IQ1_M IQ1_S IQ2_S IQ2_XS IQ2_XXS IQ3_S IQ3_XXS IQ4_NL IQ4_XS MXFP4 NVFP4 "
    "Q2_K Q3_K Q4_0 Q4_1 Q4_K Q5_0 Q5_1 Q5_K Q6_K Q8_0 TQ1_0 TQ2_0".split()
)

# GGUFValueType value -> (name, struct code of one item; None for STRING and ARRAY):
# gguf.GGUFValueType and GGUFWriter._simple_value_packing.
GGUF_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("UINT8", "B"),
    1: ("INT8", "b"),
    2: ("UINT16", "H"),
    3: ("INT16", "h"),
    4: ("UINT32", "I"),
    5: ("INT32", "i"),
    6: ("FLOAT32", "f"),
    7: ("BOOL", "?"),
    8: ("STRING", None),
    9: ("ARRAY", None),
    10: ("UINT64", "Q"),
    11: ("INT64", "q"),
    12: ("FLOAT64", "d"),
}
FLOAT32, STRING = 6, 8

GGUF_MAGIC = b"GGUF"  # gguf.GGUF_MAGIC, as bytes on disk
GGUF_VERSIONS = (2, 3)  # version 1 (32-bit counts) predates August 2023 and is not read
GGUF_DEFAULT_ALIGNMENT = 32  # gguf.GGUF_DEFAULT_ALIGNMENT
KEY_ARCHITECTURE = "general.architecture"  # gguf.Keys.General.ARCHITECTURE
KEY_ALIGNMENT = "general.alignment"  # gguf.Keys.General.ALIGNMENT
KEY_TOKENS = "tokenizer.ggml.tokens"  # gguf.Keys.Tokenizer.LIST
