"""Read chosen elements of a tensor as Python values, without numpy or torch.

Each dtype has a Decoder (how many bytes hold how many elements, and how to turn those
bytes into Python numbers). Elements are read in a few bounded reads: nearby positions
are grouped into one run, and each file stays open once for all the tensors it holds.
Block-quantized types (GGML) fit the same table: a decoder whose block holds several
elements; reads are widened to whole blocks."""

from __future__ import annotations

import math
import struct
from collections import namedtuple
from functools import lru_cache

TYPE_CHECKING = False  # typing and dataclasses cost ~8 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator, Sequence

    from ..io.sources import ByteSource

    from ..core.dtypes import DType

from ..io.sources import open_bytes
from ..core.catalog import TensorInfo, is_strided
from ..core.dtypes import DTYPES
from ..core.errors import AnatomyError
from ..core.ggml_types import GGML_DEQUANTIZABLE

# Two wanted elements closer than this many bytes are read in one run (one read beats two
# seeks); no single read is longer than MAX_RUN_BYTES, so memory stays bounded.
MERGE_GAP_BYTES = 4096
MAX_RUN_BYTES = 1 << 20
STREAM_CHUNK_ELEMS = 1 << 16  # values per chunk when streaming a whole view


class Decoder(namedtuple("Decoder", "torch_dtype kind decode block_bytes block_elems", defaults=(1,))):
    """How to turn stored bytes into values. torch_dtype: the dtype torch prints for them
    ("torch.float16"); kind: how torch formats them ("float", "int", "bool" or "complex");
    decode: bytes of whole blocks -> one value per element; block_bytes: bytes per block
    (per element for plain types); block_elems: elements per block (1 for plain types)."""

    __slots__ = ()


def _struct(code: str, size: int) -> Callable[[bytes], list]:
    def decode(data: bytes) -> list:
        return list(struct.unpack(f"<{len(data) // size}{code}", data))

    return decode


def _bf16(data: bytes) -> list:
    """bfloat16 is the top half of a float32: widen by putting zero bytes below each pair."""
    wide = bytearray(2 * len(data))
    wide[2::4] = data[0::2]
    wide[3::4] = data[1::2]
    return list(struct.unpack(f"<{len(data) // 2}f", wide))


def _complex(code: str, size: int) -> Callable[[bytes], list]:
    def decode(data: bytes) -> list:
        parts = struct.unpack(f"<{2 * len(data) // size}{code}", data)
        return [complex(re, im) for re, im in zip(parts[0::2], parts[1::2])]

    return decode


def _minifloat(
    exp_bits: int, man_bits: int, bias: int, special: Callable[[int, int, int], float | None]
) -> tuple[float, ...]:
    """All 256 values of an 8-bit float: sign, exp_bits, man_bits; special(code, exp, man) gives nan/inf codes."""
    table = []
    for code in range(256):
        exp, man = (code >> man_bits) & ((1 << exp_bits) - 1), code & ((1 << man_bits) - 1)
        value = special(code, exp, man)
        if value is None:
            value = (
                math.ldexp(man, 1 - bias - man_bits)
                if exp == 0
                else math.ldexp((1 << man_bits) + man, exp - bias - man_bits)
            )
            value = -value if code & 0x80 else value
        table.append(value)
    return tuple(table)


def _e4m3fn_special(code: int, exp: int, man: int) -> float | None:
    return math.nan if exp == 15 and man == 7 else None  # no infinities


def _e5m2_special(code: int, exp: int, man: int) -> float | None:
    if exp != 31:
        return None
    return math.nan if man else (-math.inf if code & 0x80 else math.inf)


def _fnuz_special(code: int, exp: int, man: int) -> float | None:
    return math.nan if code == 0x80 else None  # the "negative zero" code is the only NaN


# The 8-bit float types: name -> builder of its 256 values (one per byte code).
_EIGHT_BIT_FLOAT_BUILDERS: dict[str, Callable[[], tuple[float, ...]]] = {
    "F8_E4M3": lambda: _minifloat(4, 3, 7, _e4m3fn_special),
    "F8_E5M2": lambda: _minifloat(5, 2, 15, _e5m2_special),
    "F8_E4M3FNUZ": lambda: _minifloat(4, 3, 8, _fnuz_special),
    "F8_E5M2FNUZ": lambda: _minifloat(5, 2, 16, _fnuz_special),
    # E8M0: an unsigned power of two, 0xFF is NaN; there is no zero.
    "F8_E8M0": lambda: tuple(math.nan if code == 255 else math.ldexp(1.0, code - 127) for code in range(256)),
}
EIGHT_BIT_FLOATS = tuple(_EIGHT_BIT_FLOAT_BUILDERS)


@lru_cache(maxsize=None)
def eight_bit_float_values(name: str) -> tuple[float, ...]:
    """The value of each byte code 0..255 of an 8-bit float type (an EIGHT_BIT_FLOATS name),
    built on first use; `values` decodes through it and streaming.py makes its numpy table of it."""
    return _EIGHT_BIT_FLOAT_BUILDERS[name]()


def _lookup(name: str) -> Callable[[bytes], list]:
    def decode(data: bytes) -> list:
        return list(map(eight_bit_float_values(name).__getitem__, data))

    return decode


def decoding(dtype: DType) -> str | None:
    """How a dtype's stored bytes become values, the one rule both decoders follow (this
    module's pure-Python ones for `values`, decode.stream's numpy ones for whole tensors), or
    None when they cannot be decoded (F4, F6). A kind, each decoder module building its own."""
    if dtype.name == "BF16":
        return "bf16"  # the top half of a float32
    if dtype.name in EIGHT_BIT_FLOATS:
        return "byte table"  # 256 values, one per code
    if dtype.kind == "complex":
        return "complex"
    if dtype.struct_code:
        return "struct"
    if dtype.name in GGML_DEQUANTIZABLE:  # from the tables alone: no GGUF reader imported
        return "ggml blocks"  # whole blocks, through the gguf package
    return None


DECODING: dict[str, str] = {name: kind for name, dtype in DTYPES.items() if (kind := decoding(dtype))}


def _dequantizer(name: str) -> Callable[[bytes], list]:
    """Whole blocks of a GGML type dequantized by the gguf package to float32, the dtype
    transformers gives GGUF weights when it loads them; numpy and gguf imported on first decode."""

    def decode(data: bytes) -> list:
        import numpy
        from gguf import GGMLQuantizationType, quants

        with numpy.errstate(all="ignore"):  # a corrupt block's inf/nan scale prints as inf/nan, as in torch
            return quants.dequantize(numpy.frombuffer(data, dtype=numpy.uint8), GGMLQuantizationType[name]).tolist()

    return decode


def _plain(dtype: DType, decode: Callable[[bytes], list]) -> Decoder:
    return Decoder(dtype.torch_name, "int" if dtype.kind == "uint" else dtype.kind, decode, dtype.bits // 8)


# Each kind of DECODING as this module decodes it.
_BUILDERS: dict[str, Callable[[DType], Decoder]] = {
    "bf16": lambda dtype: _plain(dtype, _bf16),
    "byte table": lambda dtype: _plain(dtype, _lookup(dtype.name)),
    "complex": lambda dtype: _plain(dtype, _complex(dtype.struct_code[0], dtype.bits // 8)),
    "struct": lambda dtype: _plain(dtype, _struct(dtype.struct_code, dtype.bits // 8)),
    # the dtype transformers gives GGUF weights when it loads them
    "ggml blocks": lambda dtype: Decoder(
        "torch.float32", "float", _dequantizer(dtype.name), dtype.block_bytes, dtype.block_size
    ),
}
DECODERS: dict[str, Decoder] = {name: _BUILDERS[kind](DTYPES[name]) for name, kind in DECODING.items()}


def _round(code: str, values: list) -> list:
    """Each value rounded to the float format of a struct code."""
    try:
        return list(struct.unpack(f"<{len(values)}{code}", struct.pack(f"<{len(values)}{code}", *values)))
    except OverflowError:  # some value lies beyond the format's range: torch makes it inf
        return [_round_one(code, v) for v in values]


def _round_one(code: str, value: float) -> float:
    try:
        return struct.unpack(f"<{code}", struct.pack(f"<{code}", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def _to_bf16(values: list) -> list:
    """float32 -> bfloat16 by rounding the bit pattern to nearest even, as c10::BFloat16 does."""
    bits = struct.unpack(f"<{len(values)}I", struct.pack(f"<{len(values)}f", *values))
    top = [0x7FC0 if (b & 0x7FFFFFFF) > 0x7F800000 else (b + 0x7FFF + ((b >> 16) & 1)) >> 16 for b in bits]
    return _bf16(struct.pack(f"<{len(top)}H", *top))


# Values of any float dtype as another float dtype holds them (what tensor.to(dtype) gives).
# torch converts through float32 (c10's Half and BFloat16 are built from a float), so
# every cast rounds to float32 first.
CASTS: dict[str, Callable[[list], list]] = {
    "F64": lambda values: values,
    "F32": lambda values: _round("f", values),
    "F16": lambda values: _round("e", _round("f", values)),
    "BF16": lambda values: _to_bf16(_round("f", values)),
}


def decoder_for(info: TensorInfo, as_dtype: str | None = None) -> Decoder:
    """The decoder of the tensor's dtype; with as_dtype (a CASTS key), its values converted to
    that dtype. A quantized weight (quant.dequant.Dequantized) decodes as its loaded dtype."""
    decoder = DECODERS.get(getattr(info, "loaded", info.dtype))
    if decoder is None:
        raise AnatomyError(
            f"{info.file}: tensor {info.name}",
            "a dtype whose values llm-anatomy can decode",
            info.dtype,
            "its names, shapes and sizes are still shown by `llm-anatomy params`",
        )
    if info.dtype in GGML_DEQUANTIZABLE and not hasattr(info, "loaded"):
        from ..core.extras import require

        require("gguf", f"{info.file}: tensor {info.name}", f"to dequantize {info.dtype} blocks")
    if as_dtype is None or as_dtype == getattr(info, "loaded", info.dtype):
        return decoder
    cast, decode = CASTS[as_dtype], decoder.decode
    return decoder._replace(torch_dtype=DECODERS[as_dtype].torch_dtype, decode=lambda data: cast(decode(data)))


def _runs(
    positions: Sequence[int], per_block: int, gap_blocks: int, max_blocks: int
) -> list[tuple[int, int, int, int]]:
    """Group ascending element positions into runs of blocks at most gap_blocks apart and
    max_blocks long: (first block, block count, first index, end index into positions)."""
    runs = []
    first = start = 0
    last = -gap_blocks - 2  # so that the first position starts a run
    for index, position in enumerate(positions):
        block = position // per_block
        if block - last > gap_blocks or block - first >= max_blocks:
            if index:
                runs.append((first, last - first + 1, start, index))
            first, start = block, index
        last = block
    if positions:
        runs.append((first, last - first + 1, start, len(positions)))
    return runs


def _by_segment(info: TensorInfo, positions: Sequence[int]) -> list[tuple[TensorInfo, Sequence[int]]]:
    """Ascending positions of a tensor as (stored tensor, its positions): a FusedTensor's
    (catalog.py) fall into its segments in turn; any other tensor's are its own."""
    segments = getattr(info, "segments", None)
    if segments is None:
        return [(info, positions)]
    parts: list[tuple[TensorInfo, Sequence[int]]] = []
    index, end = 0, 0
    for tensor, first, count in segments:
        start, end = end, end + count
        taken = []
        while index < len(positions) and positions[index] < end:
            taken.append(positions[index] - start + first)
            index += 1
        if taken:
            parts.append((tensor, taken))
    return parts


class ElementReader:
    """Reads elements of tensors by flat position, one open byte source per file."""

    def __init__(self) -> None:
        self._files: dict[str, ByteSource] = {}

    def __enter__(self) -> "ElementReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for source in self._files.values():
            source.close()
        self._files.clear()

    def _file(self, path: str) -> ByteSource:
        if path not in self._files:
            self._files[path] = open_bytes(path)
        return self._files[path]

    def prefetch(self, wanted: Iterable[tuple[TensorInfo, Sequence[int], str | None]]) -> None:
        """Let each file's byte source fetch, all at once, the runs that read() will ask for
        these (tensor, positions, as_dtype): a remote file sends them in parallel requests."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        stored = [
            (part, local, as_dtype)
            for info, positions, as_dtype in wanted
            for part, local in _by_segment(info, positions)
        ]
        for info, positions, as_dtype in stored:
            if hasattr(info, "dequantizer") or is_strided(info):  # its parts (its storage) are read when it is
                continue
            decoder = decoder_for(info, as_dtype)
            block_bytes = decoder.block_bytes
            runs = _runs(
                positions,
                decoder.block_elems,
                max(1, MERGE_GAP_BYTES // block_bytes),
                max(1, MAX_RUN_BYTES // block_bytes),
            )
            ranges.setdefault(info.file, []).extend(
                (info.offset + first * block_bytes, blocks * block_bytes) for first, blocks, _, _ in runs
            )
        for path, spans in ranges.items():
            self._file(path).prefetch(spans)

    def read(self, info: TensorInfo, positions: Sequence[int], as_dtype: str | None = None) -> list:
        """The values at these ascending flat positions (row-major element indices) of the
        tensor; with as_dtype, converted to that float dtype (see decoder_for). A quantized
        weight (quant.dequant.Dequantized) reads the parts those positions need, a strided view
        (catalog.StridedTensor) the storage elements they map to."""
        if hasattr(info, "dequantizer") or is_strided(info):
            return info.read(self, positions, as_dtype)  # type: ignore[attr-defined]
        decoder = decoder_for(info, as_dtype)
        if positions and not 0 <= positions[0] <= positions[-1] < info.numel:
            raise AnatomyError(
                f"{info.file}: tensor {info.name}",
                f"element positions inside its {info.numel} elements",
                f"{positions[0]}..{positions[-1]}",
            )
        if getattr(info, "segments", None) is not None:  # a FusedTensor: read from each stored part
            return [value for part, local in _by_segment(info, positions) for value in self.read(part, local, as_dtype)]
        source = self._file(info.file)
        per_block, block_bytes, decode = decoder.block_elems, decoder.block_bytes, decoder.decode
        max_blocks = max(1, MAX_RUN_BYTES // block_bytes)
        what = f"data of {info.name}"
        values: list = []
        for first, blocks, start, end in _runs(
            positions, per_block, max(1, MERGE_GAP_BYTES // block_bytes), max_blocks
        ):
            data = source.read(info.offset + first * block_bytes, blocks * block_bytes, what)
            wanted = positions[start:end]
            # Decode the stretches of adjacent wanted blocks, not the gaps between them
            # (a run mostly wanted is decoded whole: one call beats many).
            dense = 4 * len(wanted) >= blocks * per_block
            for low, count, a, b in (
                [(first, blocks, 0, len(wanted))] if dense else _runs(wanted, per_block, 1, max_blocks)
            ):
                part = (
                    data if count == blocks else data[(low - first) * block_bytes : (low - first + count) * block_bytes]
                )
                decoded = decode(part)
                if b - a == len(decoded):  # every element of the stretch is wanted
                    values.extend(decoded)
                else:
                    base = low * per_block
                    values.extend([decoded[p - base] for p in wanted[a:b]])
        return values

    def stream(
        self, info: TensorInfo, start: int, count: int, step: int, as_dtype: str | None = None
    ) -> Iterator[list]:
        """Elements start, start+step, ... (count of them) in bounded chunks, for whole-tensor views."""
        for done in range(0, count, STREAM_CHUNK_ELEMS):
            yield self.read(
                info, range(start + done * step, start + min(count, done + STREAM_CHUNK_ELEMS) * step, step), as_dtype
            )
