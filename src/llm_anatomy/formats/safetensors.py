"""Read safetensors headers (the format's one-page spec: 8-byte little-endian header
length, a JSON header, then the data) with every size and offset checked."""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..io import bounded_json
from ..io.sources import open_bytes
from ..core.catalog import MAX_DIM, MAX_NAME_CHARS, MAX_RANK, MAX_TENSORS, TensorInfo, check_tensor_name
from ..core.dtypes import lookup
from ..core.errors import AnatomyError, CorruptFile
from ..core.text import escape

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors library itself enforces
CORRUPT = "the file is corrupt; download it again"


def read_header(path: str) -> tuple[dict[str, Any], int, int]:
    """Return (header dict, data start offset, file size)."""
    with open_bytes(path) as source:
        size = source.size
        if size < 8:
            raise AnatomyError(
                path,
                "a safetensors file (8-byte header length, JSON header, data)",
                f"{size} bytes",
                "the file is empty or truncated; download it again",
            )
        (header_len,) = struct.unpack("<Q", source.read(0, 8, "the header length"))
        if header_len > MAX_HEADER_BYTES:
            raise CorruptFile(
                path,
                f"a header of at most {MAX_HEADER_BYTES} bytes",
                f"a header length of {header_len} bytes",
                "the file is corrupt or not safetensors",
            )
        if 8 + header_len > size:
            raise AnatomyError(
                path,
                f"a header of {header_len} bytes after the 8-byte length",
                f"a file of {size} bytes",
                "the file is truncated; download it again",
            )
        raw = source.read(8, header_len, "the JSON header")
    outside = bounded_json.scan(raw, path, "a JSON header", CORRUPT)
    entries = outside.count(b"{") - 1  # objects inside the header: tensors, and __metadata__
    if entries > MAX_TENSORS + 1:
        raise CorruptFile(
            path,
            f"at most {MAX_TENSORS} tensors in one file",
            f"{entries} header entries",
            "the file is corrupt or hostile",
        )
    header = bounded_json.parse(raw, path, "a JSON header", CORRUPT)
    # formats.detect() saw '{', so valid JSON here is always an object.
    return header, 8 + header_len, size


def _entry(path: str, name: str, entry: Any, data_start: int, data_size: int) -> TensorInfo:
    check_tensor_name(path, name)
    where = f"{path}: tensor {name}"
    if not isinstance(entry, dict):
        raise AnatomyError(where, "an object with dtype, shape and data_offsets", type(entry).__name__)
    dtype_name, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    dtype = lookup(dtype_name if isinstance(dtype_name, str) else repr(dtype_name), where)
    if not (
        isinstance(shape, list) and len(shape) <= MAX_RANK and all(type(d) is int and 0 <= d <= MAX_DIM for d in shape)
    ):
        found = (
            f"a shape of rank {len(shape)}"
            if isinstance(shape, list) and len(shape) > MAX_RANK
            else escape(repr(shape))[:80]
        )
        raise AnatomyError(where, f"a shape of at most {MAX_RANK} integers in 0..2**63-1", found)
    if not (
        isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int and abs(o) <= MAX_DIM for o in offsets)
    ):
        raise AnatomyError(where, "data_offsets [begin, end]", escape(repr(offsets))[:80])
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise CorruptFile(
            where,
            f"data_offsets inside the {data_size} data bytes",
            f"[{begin}, {end}]",
            "the file is truncated or corrupt",
        )
    info = TensorInfo(name, dtype.name, tuple(shape), path, data_start + begin, end - begin)
    expected = dtype.nbytes(info.numel)
    if expected is None and dtype.is_block:
        raise CorruptFile(
            where,
            f"a shape of whole {dtype.name} blocks ({dtype.block_size} elements)",
            f"shape {list(shape)}: {info.numel} elements",
            "the header is corrupt",
        )
    if expected is None:  # 4- and 6-bit elements that end inside a byte: the safetensors library refuses them too
        bits = info.numel * dtype.bits
        raise CorruptFile(
            where,
            f"a shape of {dtype.name} elements filling whole bytes",
            f"shape {list(shape)}: {bits} bits ({bits / 8:g} bytes)",
            "the header is corrupt",
        )
    if expected != info.nbytes:
        raise CorruptFile(
            where,
            f"{expected} bytes for shape {list(shape)} of {dtype.name}",
            f"{info.nbytes} bytes",
            "the header is corrupt",
        )
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
        raise CorruptFile(path, "__metadata__ as an object of strings", type(metadata).__name__, "the file is corrupt")
    data_size = size - data_start
    limit = max([data_size, *(_declared_end(entry) for entry in header.values())]) if allow_truncated else data_size
    tensors = [_entry(path, name, entry, data_start, limit) for name, entry in header.items()]
    previous_end, previous_name = data_start, None
    for info in sorted(tensors, key=lambda t: (t.offset, t.nbytes)):
        if info.offset < previous_end and info.nbytes:
            raise CorruptFile(
                path,
                "tensor data that does not overlap",
                f"{escape(info.name)} overlapping {escape(previous_name or '')}",
                "the file is corrupt or hostile",
            )
        if info.nbytes:
            previous_end, previous_name = info.offset + info.nbytes, info.name
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def read_index(index_path: str) -> dict[str, str]:
    """weight_map of a sharded checkpoint's index: tensor name -> shard file name."""
    todo = "download the index again"
    index = bounded_json.read(index_path, "a JSON index with a weight_map", bounded_json.MAX_INDEX_BYTES, todo)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise AnatomyError(index_path, "a weight_map of tensor name -> shard file", "none", todo)
    if len(weight_map) > MAX_TENSORS:
        raise CorruptFile(
            index_path, f"at most {MAX_TENSORS} tensors", f"{len(weight_map)}", "the index is corrupt or hostile"
        )
    longest = max(map(len, weight_map), default=0)
    if longest > MAX_NAME_CHARS:
        raise CorruptFile(
            index_path,
            f"tensor names of at most {MAX_NAME_CHARS} characters",
            f"a name of {longest} characters",
            "the index is corrupt or hostile",
        )
    for shard in set(weight_map.values()):
        if len(shard) > MAX_NAME_CHARS or "/" in shard or "\\" in shard or shard in (".", ".."):
            raise CorruptFile(
                index_path,
                "shard names inside the model folder",
                f"{escape(shard[:200])!r}",
                "the index is corrupt or hostile",
            )
    return weight_map
