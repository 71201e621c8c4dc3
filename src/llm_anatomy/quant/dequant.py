"""Dequantization: a quantized weight's values as transformers' loader gives them, reading only
the stored bytes the wanted elements need.

How it plugs in. `quant.logical.logical_catalog(catalog, model_dtype)` replaces each quantized weight's
stored tensors by one `Dequantized` tensor (a TensorInfo: logical name and shape, dtype the
scheme's label such as "FP8", file/offset of its main stored tensor, nbytes of all its stored
tensors). Every reader asks that tensor for its values instead of decoding bytes:
`tensors.ElementReader.read` (values, the API) calls `Dequantized.read`, and
`streaming.Reader.blocks` (stats, diff) calls `Dequantized.blocks`; both go to the scheme's
Dequantizer, found in quant.logical.DEQUANTIZERS by the scheme key of quant.schemes.SCHEMES
when the Dequantized tensor is made (this module, which every scheme imports, imports none).

A scheme's dequantizer is a module of this package (named in DEQUANTIZERS, imported on first
use) defining DEQUANTIZER = Dequantizer(dtype, check, read, stream):

    dtype(weight, model_dtype) -> str
        The dtype (a tensors.CASTS key: "BF16", "F16", "F32") of the parameter the loader
        makes; model_dtype is the one from_pretrained(dtype="auto") gives the model, or None.
    check(tensor) -> None
        Raise AnatomyError when the stored parts cannot hold this weight (a part missing, a
        scale grid that does not match the weight's shape): one line in `values`, an error
        row in stats and diff. Called before any read.
    read(reader, tensor, positions) -> list
        The values (Python floats, already rounded to tensor.loaded) at ascending flat
        positions of the logical tensor (row-major), reading only the packed words and scales
        they need: reader.read(part, part_positions) on the stored parts (tensor.part(suffix)).
    stream(reader, tensor) -> Iterator[numpy.ndarray]
        Every value as float64 (rounded to tensor.loaded), in logical row-major order, in
        pieces of any size (Dequantized.blocks cuts them into the reader's block size, so two
        tensors' blocks line up in diff), in memory bounded by the parts' scales and one
        stripe of the weight: reader.blocks(part), reader.read_bytes(part, start, length).

Helpers for a dequantizer: tensor.part(suffix) is the stored tensor <base><suffix> beside the
main one (None when missing); tensor.settings the weight's settings (LogicalWeight.settings when it
has its own, else the scheme's from config.json: bits, group_size, weight_block_size, ...
with quant.schemes.DEFAULTS filled in); missing_part and
bad_part build the one-line errors; round_values / round_array round to a dtype as torch's
casts do (through float32); loaded_or(default) is a ready-made dtype(). To add a scheme: a
module here with DEQUANTIZER, one line in quant.logical.DEQUANTIZERS, and tests that compare
every element with the reference implementation (tests/quant/test_dequant.py does so for FP8 and MXFP4 against
transformers' own converters and from_pretrained on the CPU).
"""

from __future__ import annotations

from collections import namedtuple

from ..core.catalog import TensorInfo
from ..core.errors import AnatomyError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, Sequence

    import numpy as np

    from ..decode.stream import Reader
    from ..decode.elements import ElementReader
    from . import LogicalWeight


class Dequantizer(namedtuple("Dequantizer", "dtype check read stream")):
    """One scheme's dequantization (see the module docstring for each function's contract)."""

    __slots__ = ()


class Dequantized(TensorInfo):
    """A quantized weight as the one tensor the loader makes of it. name and shape: logical;
    dtype: the scheme's label ("FP8"); file, offset: of the main stored tensor; nbytes: all
    its stored bytes. weight: the LogicalWeight; settings: the scheme's settings; loaded:
    the dtype of its values (a tensors.CASTS key); description: the scheme in words;
    found: the scheme's Dequantizer, None if llm-anatomy has none (an error when read)."""

    def __new__(
        cls, weight: LogicalWeight, settings: dict[str, Any], loaded: str, description: str, found: Dequantizer | None
    ) -> "Dequantized":
        main = weight.parts[0]
        self = super().__new__(
            cls, weight.name, weight.scheme.upper(), tuple(weight.shape), main.file, main.offset, weight.nbytes
        )
        self.weight, self.settings, self.loaded, self.description, self.found = (
            weight,
            settings,
            loaded,
            description,
            found,
        )
        return self

    def __getnewargs__(self) -> tuple:  # pickles as itself, not as the six fields
        return (self.weight, self.settings, self.loaded, self.description, self.found)

    @property
    def dequantizer(self) -> Dequantizer:
        found = self.found
        if found is None:
            raise AnatomyError(
                f"{self.file}: tensor {self.weight.parts[0].name}",
                "a quantization scheme whose values llm-anatomy dequantizes",
                f"{self.description}, not dequantized yet",
                "its stored tensors are shown by their own names (`llm-anatomy params --stored` lists them)",
            )
        return found

    def part(self, suffix: str) -> TensorInfo | None:
        """The stored tensor <base><suffix> of this weight (".weight_scale_inv"), or None."""
        base = (
            self.weight.parts[0].name[: -len(_MAIN_SUFFIX[self.weight.scheme])]
            if _MAIN_SUFFIX.get(self.weight.scheme)
            else self.weight.parts[0].name
        )
        return next((p for p in self.weight.parts if p.name == base + suffix), None)

    def read(self, reader: ElementReader, positions: Sequence[int], as_dtype: str | None = None) -> list:
        """Values at ascending flat positions, in as_dtype (a CASTS key) when given."""
        if positions and not 0 <= positions[0] <= positions[-1] < self.numel:
            raise AnatomyError(
                f"{self.file}: tensor {self.name}",
                f"element positions inside its {self.numel} elements",
                f"{positions[0]}..{positions[-1]}",
            )
        dequantizer = self.dequantizer
        dequantizer.check(self)
        values = dequantizer.read(reader, self, positions) if positions else []
        if as_dtype is not None and as_dtype != self.loaded:
            from ..decode.elements import CASTS

            values = CASTS[as_dtype](values)
        return values

    def blocks(self, reader: Reader) -> Iterator[np.ndarray]:
        """Every value as float64 in row-major order, in blocks of the reader's block size (the
        last one shorter), so that they line up with another tensor's blocks in diff."""
        self.dequantizer.check(self)  # before the first block is asked for: refusals come first
        return reader.reblock(self.dequantizer.stream(reader, self))


# The stored suffix of each scheme's main tensor (the rest of its name is the weight's base).
def _main_suffixes() -> dict[str, str]:
    from .schemes import SCHEMES

    return {key: scheme.main for key, scheme in SCHEMES.items()}


_MAIN_SUFFIX = _main_suffixes()


def is_dequantized(info: TensorInfo) -> bool:
    return isinstance(info, Dequantized)


def missing_part(tensor: Dequantized, wanted: str) -> AnatomyError:
    """The one-line error of a weight whose part `wanted` (a name, or names joined by "or") is not stored."""
    main = tensor.weight.parts[0]
    return AnatomyError(
        f"{main.file}: tensor {main.name}",
        f"{wanted} beside it ({tensor.description})",
        "none",
        "its values cannot be dequantized without it; check that every shard was downloaded",
    )


def bad_part(tensor: Dequantized, part: TensorInfo, expected: str, found: str) -> AnatomyError:
    return AnatomyError(
        f"{part.file}: tensor {part.name}",
        f"{expected} ({tensor.description})",
        found,
        "its weight cannot be dequantized; check quantization_config in config.json",
    )


# ---------------------------------------------------------------- rounding as torch's casts round


def round_values(values: list, dtype: str) -> list:
    """Python floats rounded to a float dtype (a CASTS key) as tensor.to(dtype) rounds them."""
    from ..decode.elements import CASTS

    return CASTS[dtype](values)


def round_array(values: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values rounded in place to a float dtype, as torch casts (through float32:
    c10's Half and BFloat16 are built from a float; bfloat16 to nearest even, NaN 0x7FC0)."""
    import numpy as np

    if dtype == "F64":
        return values
    with np.errstate(over="ignore"):  # past the dtype's range is inf, as in torch
        single = values.astype(np.float32)
    if dtype == "F16":
        with np.errstate(over="ignore"):
            values[...] = single.astype(np.float16)
    elif dtype == "BF16":
        bits = single.view(np.uint32)
        top = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        top[np.isnan(single)] = 0x7FC00000
        values[...] = top.view(np.float32)
    else:
        values[...] = single
    return values


def _model_dtype_or(default: str, weight: LogicalWeight, model_dtype: str | None) -> str:
    return model_dtype or default


def loaded_or(default: str) -> Callable[[LogicalWeight, str | None], str]:
    """A Dequantizer.dtype: the model's dtype, or `default` when the config names none (a
    partial, not a closure: a Dequantized tensor pickles with its Dequantizer)."""
    from functools import partial

    return partial(_model_dtype_or, default)
