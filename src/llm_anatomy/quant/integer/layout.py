"""The integer schemes' weights as data: the layout of one weight's stored parts (GPTQ, AWQ,
MLX, compressed-tensors pack-quantized), checked from the headers alone, and how a value is
computed from the stored elements (components, combine). No numpy: the pure-Python reads
(quant.integer) and the numpy ones (quant.integer.arrays) both build on it, neither on the other."""

from __future__ import annotations

from math import prod

from ...core.errors import AnatomyError
from ...decode.elements import CASTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from ...core.catalog import TensorInfo
    from .. import LogicalWeight

    At = Callable[[TensorInfo, int], Any]  # the stored value of a part at a flat position

# The dtypes a dequantized weight can have: the dtype of its scales.
FLOAT_PARTS = ("F16", "BF16", "F32")
NOT_AS_CONFIGURED = "the checkpoint is not what its quantization_config says"
WORD = 0xFFFFFFFF  # an int32 word read as its bit pattern


def _round(values: list[float], dtype: str) -> list[float]:
    """Python floats rounded to a float dtype as torch rounds them (through float32)."""
    return CASTS[dtype](values)


def _part(weight: LogicalWeight, suffix: str, required: bool = True) -> TensorInfo | None:
    main = weight.parts[0]
    found = next((p for p in weight.parts[1:] if p.name.endswith(suffix)), None)
    if found is None and required:
        raise AnatomyError(
            f"{main.file}: tensor {main.name}",
            f"a tensor {suffix} beside it",
            "none",
            "the checkpoint is incomplete; download it again",
        )
    return found


def _expect_shape(info: TensorInfo, shape: tuple[int, ...], why: str) -> None:
    if tuple(info.shape) != tuple(shape):
        raise AnatomyError(
            f"{info.file}: tensor {info.name}", f"shape {list(shape)} ({why})", str(list(info.shape)), NOT_AS_CONFIGURED
        )


def _expect_dtype(info: TensorInfo, dtypes: tuple[str, ...], what: str) -> str:
    if info.dtype not in dtypes:
        raise AnatomyError(
            f"{info.file}: tensor {info.name}", f"{what} of dtype {' or '.join(dtypes)}", info.dtype, NOT_AS_CONFIGURED
        )
    return info.dtype


def refuse(
    info: TensorInfo, expected: str, found: str, todo: str = "check quantization_config in config.json"
) -> AnatomyError:
    return AnatomyError(f"{info.file}: tensor {info.name}", expected, found, todo)


def bad_group(info: TensorInfo, group: int, count: int) -> AnatomyError:
    return refuse(info, f"group indices in 0..{count - 1}", str(group), "the checkpoint is corrupt; download it again")


def _code(at: At, info: TensorInfo, word_position: Callable[[int], int], bit: int, bits: int) -> int:
    """The code at `bit` of a bit stream whose word w is stored at word_position(w)."""
    word, shift = bit >> 5, bit & 31
    value = at(info, word_position(word)) & WORD
    if shift + bits > 32:  # crosses into the next word
        value |= (at(info, word_position(word + 1)) & WORD) << 32
    return (value >> shift) & ((1 << bits) - 1)


class Layout:
    """One weight of an integer scheme: its stored parts, checked from the headers when made
    (a part missing, or of the wrong shape or dtype, raises AnatomyError). out x inner is the
    logical [out, in] matrix (leading dimensions such as experts flattened into out); dtype:
    the safetensors dtype of its values (the scales').

    components(at, o, i): the numbers value [o, i] is computed from, read through at(part,
    position); combine(components of many values): those values, rounded as the reference rounds.
    checks: small parts whose values must agree with the headers, checked before any value."""

    scales = ".scales"
    checks: tuple[tuple[TensorInfo, Callable[[tuple], None]], ...] = ()

    def __init__(self, weight: LogicalWeight, q: dict[str, Any]) -> None:
        self.weight, self.q, self.main = weight, q, weight.parts[0]
        *lead, self.inner = weight.shape
        self.out = prod(lead)
        self.dtype = _expect_dtype(_part(weight, self.scales), FLOAT_PARTS, "scales")

    def components(self, at: At, o: int, i: int) -> tuple:
        raise NotImplementedError

    def combine(self, components: list[tuple]) -> list[float]:
        """scale x (code - zero), one rounding (the product of two small numbers is exact in float32)."""
        return _round([scale * diff for scale, diff in components], self.dtype)


class GPTQ(Layout):
    """AutoGPTQ / gptqmodel: qweight [in*b/32, out] packs the input dimension, qzeros
    [groups, out*b/32] the output one; w[o, i] = scales[g, o] * (code - zero) with g = g_idx[i]
    (act-order) or i // group_size, and zero = stored + 1 in the v1 format AutoGPTQ writes
    (checkpoint_format "gptq"; gptqmodel's "gptq_v2" stores the zero itself)."""

    def __init__(self, weight: LogicalWeight, q: dict[str, Any]) -> None:
        super().__init__(weight, q)
        self.bits = q["bits"]
        if self.bits not in (2, 3, 4, 8):
            raise refuse(self.main, "GPTQ bits 2, 3, 4 or 8", str(self.bits))
        self.qzeros, self.scales_part, self.g_idx = (
            _part(weight, ".qzeros"),
            _part(weight, ".scales"),
            _part(weight, ".g_idx", required=False),
        )
        _expect_dtype(self.qzeros, ("I32",), "packed zeros")
        # The loader sizes scales and qzeros by group_size even when g_idx (act-order) says
        # which group each input is in: other shapes do not load.
        self.group = q["group_size"]
        self.groups = 1 if self.group <= 0 else -(-self.inner // self.group)
        _expect_shape(
            self.scales_part, (self.groups, self.out), f"GPTQ scales: one row per group of {self.group} inputs"
        )
        _expect_shape(
            self.qzeros,
            (self.groups, self.out * self.bits // 32),
            f"GPTQ qzeros: groups x output features in {self.bits}-bit codes",
        )
        if self.g_idx is not None:
            _expect_dtype(self.g_idx, ("I32", "I64"), "group indices")
            _expect_shape(self.g_idx, (self.inner,), "GPTQ g_idx: one group per input feature")
        self.plus_one = str(q.get("checkpoint_format") or "gptq") != "gptq_v2"

    def components(self, at: At, o: int, i: int) -> tuple:
        b, out = self.bits, self.out
        g = 0 if self.group <= 0 else i // self.group
        if self.g_idx is not None:
            g = at(self.g_idx, i)
            if not 0 <= g < self.groups:
                raise bad_group(self.g_idx, g, self.groups)
        code = _code(at, self.main, lambda w: w * out + o, i * b, b)
        zero = _code(at, self.qzeros, lambda w: g * self.qzeros.shape[1] + w, o * b, b) + self.plus_one
        return at(self.scales_part, g * out + o), code - zero


# AWQ packs output columns 8*w + AWQ_ORDER[n] in nibble n of word w; a column's nibble is the inverse.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
AWQ_NIBBLE = tuple(AWQ_ORDER.index(column) for column in range(8))


class AWQ(Layout):
    """AutoAWQ GEMM: qweight [in, out/8] and qzeros [in/group, out/8] pack the output dimension
    in AWQ's nibble order; w[o, i] = (code - zero) * scales[i // group, o] (dequantize_gemm)."""

    def __init__(self, weight: LogicalWeight, q: dict[str, Any]) -> None:
        super().__init__(weight, q)
        version = str(q.get("version") or "gemm").lower()
        if q["bits"] != 4 or version != "gemm":
            raise refuse(
                self.main,
                "AWQ 4 bit, GEMM layout",
                f"{q['bits']} bit, {version.upper()}",
                "llm-anatomy reads AWQ's GEMM layout only",
            )
        self.qzeros, self.scales_part = _part(weight, ".qzeros"), _part(weight, ".scales")
        _expect_dtype(self.qzeros, ("I32",), "packed zeros")
        self.group = q["group_size"]
        self.groups = 1 if self.group <= 0 else -(-self.inner // self.group)
        _expect_shape(
            self.scales_part, (self.groups, self.out), f"AWQ scales: one row per group of {self.group} inputs"
        )
        _expect_shape(
            self.qzeros, (self.groups, self.out // 8), "AWQ qzeros: groups x output features packed 8 per word"
        )

    def components(self, at: At, o: int, i: int) -> tuple:
        g, words, shift = (0 if self.group <= 0 else i // self.group), self.out // 8, 4 * AWQ_NIBBLE[o % 8]
        code = ((at(self.main, i * words + o // 8) & WORD) >> shift) & 15
        zero = ((at(self.qzeros, g * words + o // 8) & WORD) >> shift) & 15
        return at(self.scales_part, g * self.out + o), code - zero


class MLX(Layout):
    """MLX affine (mlx.core.dequantize): weight [..., in*b/32] packs the input dimension;
    w = scales * code + biases per group of group_size inputs, in the scales' dtype. A module
    of a mixed quantization has its own bits and group size (weight.settings)."""

    def __init__(self, weight: LogicalWeight, q: dict[str, Any]) -> None:
        super().__init__(weight, weight.settings or q)
        q = self.q
        self.bits, self.group = q["bits"], q["group_size"]
        if q.get("mode", "affine") != "affine" or self.group <= 0:
            raise refuse(
                self.main,
                "MLX affine quantization with a positive group size",
                f"mode {q.get('mode')}, group size {self.group}",
                "llm-anatomy dequantizes MLX's affine mode only",
            )
        self.groups = -(-self.inner // self.group)
        self.scales_part, self.biases = _part(weight, ".scales"), _part(weight, ".biases")
        for part in (self.scales_part, self.biases):
            _expect_shape(
                part, (*weight.shape[:-1], self.groups), f"MLX scales and biases: one per group of {self.group} inputs"
            )
        _expect_dtype(self.biases, (self.dtype,), "biases")

    def components(self, at: At, o: int, i: int) -> tuple:
        words, g = self.main.shape[-1], o * self.groups + i // self.group
        return (
            at(self.scales_part, g),
            _code(at, self.main, lambda w: o * words + w, i * self.bits, self.bits),
            at(self.biases, g),
        )

    def combine(self, components: list[tuple]) -> list[float]:
        """scale x code + bias: the product rounded, then the sum (mlx computes in the scales' dtype)."""
        products = _round([scale * code for scale, code, _ in components], self.dtype)
        return _round([p + bias for p, (_, _, bias) in zip(products, components)], self.dtype)


class PackQuantized(Layout):
    """compressed-tensors pack-quantized: weight_packed [out, ceil(in*b/32)] packs the input
    dimension, codes offset by 2**(b-1); weight_zero_point (asymmetric) packs the output
    dimension; w = (code - zero) * scale per group, channel or tensor (its dequantize: the
    difference of two small integers is exact in the scale's dtype, the product rounded)."""

    scales = ".weight_scale"

    def __init__(self, weight: LogicalWeight, q: dict[str, Any]) -> None:
        super().__init__(weight, q)
        self.bits, strategy = q["bits"], str(q.get("strategy") or "group")
        if not 1 <= self.bits <= 8 or strategy not in ("group", "channel", "tensor") or len(weight.shape) != 2:
            raise refuse(
                self.main,
                "pack-quantized [out, in] weights of 1..8 bits, by group, channel or tensor",
                f"{self.bits} bits by {strategy}, shape {list(weight.shape)}",
            )
        self.group = q["group_size"] if strategy == "group" else self.inner if strategy == "channel" else 0
        self.groups = -(-self.inner // self.group) if self.group > 0 else 1
        self.scale_rows = 1 if strategy == "tensor" else self.out
        self.offset = 1 << (self.bits - 1)
        self.scale, self.zero, self.shape = (
            _part(weight, ".weight_scale"),
            _part(weight, ".weight_zero_point", required=False),
            _part(weight, ".weight_shape", required=False),
        )
        if self.scale.numel != self.scale_rows * self.groups:
            _expect_shape(self.scale, (self.scale_rows, self.groups), f"weight_scale of the {strategy} strategy")
        if self.zero is not None and self.zero.dtype == "I32":  # packed along the output dimension (packed_dim=0)
            _expect_shape(
                self.zero,
                (-(-self.scale_rows * self.bits // 32), self.groups),
                "weight_zero_point packed along the output dimension",
            )
        elif self.zero is not None:
            _expect_dtype(self.zero, ("I8",), "zero points")
            _expect_shape(self.zero, (self.scale_rows, self.groups), "weight_zero_point: one per scale")
        if self.shape is not None:
            _expect_dtype(self.shape, ("I32", "I64"), "weight_shape")
            _expect_shape(self.shape, (2,), "weight_shape: the unpacked [out, in]")
            self.checks = ((self.shape, self._check_shape),)

    def _check_shape(self, stored: tuple[int, ...]) -> None:
        """weight_shape's values: the header gives in from whole words, the stored shape must agree."""
        if stored != (self.out, self.inner):
            raise refuse(
                self.shape,
                f"[{self.out}, {self.inner}] (from the shapes of {self.main.name} and its scales)",
                str(list(stored)),
                "the checkpoint is corrupt; download it again",
            )

    def components(self, at: At, o: int, i: int) -> tuple:
        b, words = self.bits, self.main.shape[-1]
        g = i // self.group if self.group > 0 else 0
        row = o if self.scale_rows == self.out else 0
        code = _code(at, self.main, lambda w: o * words + w, i * b, b) - self.offset
        if self.zero is None:
            zero = 0
        elif self.zero.dtype == "I32":
            zero = _code(at, self.zero, lambda w: w * self.groups + g, row * b, b) - self.offset
        else:
            zero = at(self.zero, row * self.groups + g)
        return at(self.scale, row * self.groups + g if self.scale.numel > 1 else 0), code - zero


# scheme key (quant.schemes.SCHEMES) -> the layout of its weights.
LAYOUTS = {"gptq": GPTQ, "awq": AWQ, "mlx": MLX, "pack": PackQuantized}
