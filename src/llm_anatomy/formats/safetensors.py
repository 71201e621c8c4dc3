"""Read safetensors headers (the format's one-page spec: 8-byte little-endian header
length, a JSON header, then the data) with every size and offset checked."""

from __future__ import annotations

import json
import struct
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..byte_io import open_bytes
from ..catalog import TensorInfo
from ..dtypes import lookup
from ..errors import AnatomyError
from ..safe_text import escape, has_unsafe

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors library itself enforces
MAX_RANK = 64


def read_header(path: str) -> tuple[dict[str, Any], int, int]:
    """Return (header dict, data start offset, file size)."""
    with open_bytes(path) as source:
        size = source.size
        if size < 8:
            raise AnatomyError(path, "a safetensors file (8-byte header length, JSON header, data)", f"{size} bytes", "the file is empty or truncated; download it again")
        (header_len,) = struct.unpack("<Q", source.read(0, 8, "the header length"))
        if header_len > MAX_HEADER_BYTES:
            raise AnatomyError(path, f"a header of at most {MAX_HEADER_BYTES} bytes", f"a header length of {header_len} bytes", "the file is corrupt or not safetensors")
        if 8 + header_len > size:
            raise AnatomyError(path, f"a header of {header_len} bytes after the 8-byte length", f"a file of {size} bytes", "the file is truncated; download it again")
        raw = source.read(8, header_len, "the JSON header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AnatomyError(path, "a JSON header", f"invalid JSON ({escape(str(exc))})", "the file is corrupt; download it again") from None
    # formats.detect() saw '{', so valid JSON here is always an object.
    return header, 8 + header_len, size


def _entry(path: str, name: str, entry: Any, data_start: int, data_size: int) -> TensorInfo:
    where = f"{path}: tensor {escape(name)!s}"
    if has_unsafe(name):
        raise AnatomyError(path, "tensor names without control characters", f"'{escape(name)}'", "the file is corrupt or hostile; do not trust it")
    if not isinstance(entry, dict):
        raise AnatomyError(where, "an object with dtype, shape and data_offsets", type(entry).__name__)
    dtype_name, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    dtype = lookup(dtype_name if isinstance(dtype_name, str) else repr(dtype_name), where)
    if not (isinstance(shape, list) and len(shape) <= MAX_RANK and all(type(d) is int and d >= 0 for d in shape)):
        raise AnatomyError(where, "a shape of non-negative integers", escape(repr(shape))[:80])
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise AnatomyError(where, "data_offsets [begin, end]", escape(repr(offsets))[:80])
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise AnatomyError(where, f"data_offsets inside the {data_size} data bytes", f"[{begin}, {end}]", "the file is truncated or corrupt")
    info = TensorInfo(name, dtype.name, tuple(shape), path, data_start + begin, end - begin)
    if dtype.nbytes(info.numel) != info.nbytes:
        raise AnatomyError(where, f"{dtype.nbytes(info.numel)} bytes for shape {list(shape)} of {dtype.name}", f"{info.nbytes} bytes", "the header is corrupt")
    return info


def _declared_end(entry: Any) -> int:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    return offsets[1] if isinstance(offsets, list) and len(offsets) == 2 and type(offsets[1]) is int else 0


def read_tensors(path: str, allow_truncated: bool = False) -> tuple[list[TensorInfo], dict[str, str]]:
    """Tensors of one safetensors file, in header order, and its __metadata__.

    allow_truncated lists tensors whose data lies past the end of a file cut short too
    (stats and diff read the others and report those, each bounds-checked when read)."""
    header, data_start, size = read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise AnatomyError(path, "__metadata__ as an object of strings", type(metadata).__name__, "the file is corrupt")
    data_size = size - data_start
    limit = max([data_size, *(_declared_end(entry) for entry in header.values())]) if allow_truncated else data_size
    tensors = [_entry(path, name, entry, data_start, limit) for name, entry in header.items()]
    previous_end, previous_name = data_start, None
    for info in sorted(tensors, key=lambda t: (t.offset, t.nbytes)):
        if info.offset < previous_end and info.nbytes:
            raise AnatomyError(path, "tensor data that does not overlap", f"{escape(info.name)} overlapping {escape(previous_name or '')}", "the file is corrupt or hostile")
        if info.nbytes:
            previous_end, previous_name = info.offset + info.nbytes, info.name
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def read_index(index_path: str) -> dict[str, str]:
    """weight_map of a sharded checkpoint's index: tensor name -> shard file name."""
    try:
        with open(index_path, "rb") as handle:
            index = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AnatomyError(index_path, "a JSON index with a weight_map", f"unreadable JSON ({escape(str(exc))})", "download the index again") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise AnatomyError(index_path, "a weight_map of tensor name -> shard file", "none", "download the index again")
    for shard in set(weight_map.values()):
        if "/" in shard or "\\" in shard or shard in (".", ".."):
            raise AnatomyError(index_path, "shard names inside the model folder", f"{escape(shard)!r}", "the index is corrupt or hostile")
    return weight_map
