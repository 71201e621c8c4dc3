"""MXFP4 experts (gpt-oss) dequantized as transformers' convert_moe_packed_tensors does.

Stored: `<name>_blocks` U8 [*lead, rows, G, 16] (32 four-bit E2M1 values per block, the low
nibble first) and `<name>_scales` U8 [*lead, rows, G] (E8M0: 2 ** (byte - 127)). Logical:
[*lead, G * 32, rows], the last two dimensions swapped (GptOssExperts.gate_up_proj is
experts x hidden x 2*expert_dim). Each value is e2m1 x 2 ** exponent rounded once to the
model's dtype: torch.ldexp scales exactly (byte 255 is 2 ** 128, so 0.5 x 2 ** 128 is the
finite 2 ** 127 and 0 stays 0), and so does float64 here."""

from __future__ import annotations

from math import prod

from .dequant import Dequantizer, bad_part, loaded_or, missing_part, round_array, round_values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator, Sequence

    import numpy as np

    from ..core.catalog import TensorInfo
    from ..decode.stream import Reader
    from ..decode.elements import ElementReader
    from .dequant import Dequantized

# transformers' FP4_VALUES: the E2M1 code of each nibble.
E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
BLOCK_BYTES = 16  # 32 values
# One expert's packed bytes are read whole (gpt-oss: 4 MiB); past this, refused rather than
# read row by row (a stripe of the transposed output needs every row).
MAX_EXPERT_BYTES = 256 << 20


def _parts(tensor: Dequantized) -> tuple[TensorInfo, TensorInfo, int, int, int]:
    """(blocks, scales, lead, rows, blocks per row), checked."""
    blocks = tensor.weight.parts[0]
    scales = tensor.part("_scales")
    if scales is None:
        raise missing_part(tensor, blocks.name[: -len("_blocks")] + "_scales")
    *lead, rows, groups, _ = blocks.shape
    if tuple(scales.shape) != (*lead, rows, groups):
        raise bad_part(
            tensor,
            scales,
            f"shape {[*lead, rows, groups]}, one scale per block of 32 values of {blocks.name}",
            f"shape {list(scales.shape)}",
        )
    if scales.dtype != "U8":
        raise bad_part(tensor, scales, "dtype U8 (E8M0 exponents)", scales.dtype)
    if rows * groups * BLOCK_BYTES > MAX_EXPERT_BYTES:
        raise bad_part(
            tensor, blocks, f"at most {MAX_EXPERT_BYTES >> 20} MiB per expert", f"{rows * groups * BLOCK_BYTES:,} bytes"
        )
    return blocks, scales, prod(lead), rows, groups


def _check(tensor: Dequantized) -> None:
    _parts(tensor)


def _read(reader: ElementReader, tensor: Dequantized, positions: Sequence[int]) -> list:
    blocks, scales, _, rows, groups = _parts(tensor)
    columns = groups * 32
    bytes_at, scales_at, high = [], [], []
    for p in positions:
        matrix, rest = divmod(p, columns * rows)
        column, row = divmod(rest, rows)
        block = (matrix * rows + row) * groups + column // 32
        scales_at.append(block)
        bytes_at.append(block * BLOCK_BYTES + (column % 32) // 2)
        high.append(column % 2)
    packed = _at(reader, blocks, bytes_at)
    powers = _at(reader, scales, scales_at)
    codes = [(b >> 4) if h else (b & 15) for b, h in zip(packed, high)]
    return round_values([E2M1[c] * 2.0 ** (e - 127) for c, e in zip(codes, powers)], tensor.loaded)


def _at(reader: ElementReader, info: TensorInfo, positions: list) -> list:
    """Values at positions in any order (the transposed layout visits stored bytes out of order)."""
    unique = sorted(set(positions))
    found = dict(zip(unique, reader.read(info, unique)))
    return [found[p] for p in positions]


def _stream(reader: Reader, tensor: Dequantized) -> Iterator[np.ndarray]:
    import numpy as np

    blocks, scales, lead, rows, groups = _parts(tensor)
    table = np.array(E2M1, np.float64)
    expert_bytes = rows * groups * BLOCK_BYTES
    # Stripes of whole blocks of 32 output rows, about a float64 block's worth of values each.
    stripe = max(1, len(reader.block) // (32 * rows))
    for matrix in range(lead):
        packed = reader.read_bytes(blocks, matrix * expert_bytes, expert_bytes).reshape(rows, groups, BLOCK_BYTES)
        exponents = reader.read_bytes(scales, matrix * rows * groups, rows * groups).reshape(rows, groups)
        powers = np.ldexp(1.0, exponents.astype(np.int64) - 127)
        for first in range(0, groups, stripe):
            part = packed[:, first : first + stripe]
            values = np.empty((*part.shape[:2], 32), np.float64)
            values[..., 0::2] = table[part & 15]
            values[..., 1::2] = table[part >> 4]
            values *= powers[:, first : first + stripe, None]
            round_array(values, tensor.loaded)
            yield values.reshape(rows, -1).T.copy()


DEQUANTIZER = Dequantizer(loaded_or("BF16"), _check, _read, _stream)
