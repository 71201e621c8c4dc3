"""Read GGUF headers (llama.cpp's format: magic, version, counts, key/values, tensor infos,
aligned data) front to back, checking every count and length against the bytes left in
the file before reading or allocating anything.

Arrays are walked, not decoded: `tokenizer.ggml.tokens` becomes "array of 32000 strings
['<unk>', '<s>', '</s>', ...]", which is what makes this reader fast where
gguf.GGUFReader decodes the whole vocabulary (`params --metadata --json` streams the items
from the file when asked for them whole). GGUF lists dimensions fastest first
(ne[0]); shapes here are reversed to the order torch and Hugging Face use."""

from __future__ import annotations

import os
import re
import struct
from math import prod

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Iterator, Sequence

    from ..io.sources import ByteSource

from ..io.sources import open_bytes
from ..core.catalog import MAX_DIM, MAX_NAME_CHARS, MAX_TENSORS, TensorInfo, check_tensor_name
from ..core.errors import AnatomyError, CorruptFile
from ..core.text import escape
from ..core.ggml_types import (
    FLOAT32,
    GGML_TYPES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUF_VERSIONS,
    GGUF_VALUE_TYPES,
    KEY_ALIGNMENT,
    STRING,
)

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
CHUNK_BYTES = 1 << 20
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_KEY_BYTES = MAX_NAME_CHARS  # keys are dotted names such as tokenizer.ggml.tokens
MAX_NAME_BYTES = MAX_NAME_CHARS  # llama.cpp allows 64-byte tensor names
# String values kept whole, all keys together (tokenizer.huggingface.json, the largest, is a
# few MB); past that a string is kept as its length and first bytes, its rest skipped.
MAX_KEPT_STRING_BYTES = 32 * 1024 * 1024
LONG_STRING_HEAD = 120
MAX_ARRAY_DEPTH = 3
# Counts past any real model's (some 50 keys; a vocabulary or merges list of up to a few
# hundred thousand items), refused before the loop over them: a Hub GGUF generated on the
# fly can claim 2^40 of either, which no file-size check bounds.
MAX_METADATA_KEYS = 1 << 16
MAX_ARRAY_ITEMS = 1 << 24
SPLIT_NAME = re.compile(r"-\d{5}-of-\d{5}\.gguf$")  # gguf-split's file names
HEAD_ITEMS = 3  # items of an array kept to show
PER_LAYER_ITEMS = 4096  # numeric arrays up to this long are kept whole (per-layer settings, not vocabularies)
SCALARS = {type_id: struct.Struct("<" + code) for type_id, (_, code) in GGUF_VALUE_TYPES.items() if code}
TRUNCATED = "the file is truncated or corrupt; download it again"
# Smallest encoding of each record, to bound counts before looping over them.
MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, a one-byte value
MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset


class ArraySummary(str):
    """A metadata array shown as text ("array of 32000 strings [...]"), with its item count,
    and all its items when it is a short array of numbers (a per-layer setting), else None.
    iter_items() reads every item again from the file, one at a time (for --json)."""

    item_count: int
    items: tuple | None

    def __new__(
        cls,
        item_type: str,
        count: int,
        head: list[Any],
        items: list[Any] | None = None,
        file: str = "",
        offset: int = 0,
    ) -> "ArraySummary":
        shown = ", ".join(repr(v) for v in head) + (", ..." if count > len(head) else "")
        noun = "strings" if item_type == "STRING" else item_type.lower()
        self = super().__new__(cls, f"array of {count} {noun} [{shown}]")
        self.item_count = count
        self.items = None if items is None else tuple(items)
        self.file, self.offset = file, offset  # where the array's item type is stored
        return self

    def iter_items(self) -> Iterator[Any]:
        """Every item, in order, decoded one at a time: a vocabulary of 150,000 strings is
        never held in memory at once. Strings that are not UTF-8 show their bytes as \\xNN;
        arrays inside the array come as lists. The header reader has already checked every
        length against the file, so this reads nothing past it."""
        if self.items is not None:
            yield from self.items
            return
        with open_bytes(self.file) as source:
            cursor = _Cursor(source, self.file)
            cursor.pos = self.offset
            yield from _items(cursor)


ITEMS_PER_READ = 65536  # numbers of an array unpacked per read: bounded memory, few calls


def _items(cursor: _Cursor) -> Iterator[Any]:
    item_type = _value_type(cursor, "an array item")
    (count,) = cursor.unpack(U64, "an array length")
    if item_type in SCALARS:
        code, size = SCALARS[item_type].format[-1], SCALARS[item_type].size
        for start in range(0, count, ITEMS_PER_READ):
            n = min(ITEMS_PER_READ, count - start)
            values = struct.unpack(f"<{n}{code}", cursor.raw(n * size, "the items of an array"))
            yield from map(_float32_text, values) if item_type == FLOAT32 else values
    elif item_type == STRING:
        for _ in range(count):
            (length,) = cursor.unpack(U64, "a string length")
            cursor.check(length, "a string")
            yield cursor.raw(length, "a string").decode("utf-8", "backslashreplace")
    else:
        for _ in range(count):
            yield list(_items(cursor))


class LongString(str):
    """A string value past the kept-string budget, shown as its size and first characters."""

    def __new__(cls, length: int, head: str) -> "LongString":
        return super().__new__(cls, f"string of {length} bytes {head!r}...")


class _Cursor:
    """Reads the header front to back through a window of the file; nothing past the end."""

    def __init__(self, source: ByteSource, path: str) -> None:
        # path: as the reader was given it (a remote one carries its source, for ArraySummary)
        self.path, self.source, self.size = path, source, source.size
        self.buffer, self.start, self.pos = b"", 0, 0
        self.string_budget = MAX_KEPT_STRING_BYTES

    def remaining(self) -> int:
        return self.size - self.pos

    def check(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise AnatomyError(
                self.path, f"{what} at bytes {self.pos}..{self.pos + n}", f"a file of {self.size} bytes", TRUNCATED
            )

    def _window(self, n: int, what: str) -> int:
        """Make n bytes at pos readable; return where they start in the buffer."""
        if self.pos < self.start or self.pos + n > self.start + len(self.buffer):
            length = max(n, min(CHUNK_BYTES, self.size - self.pos))  # n past the end fails the source's bounds check
            self.buffer, self.start = self.source.read(self.pos, length, what), self.pos
        return self.pos - self.start

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        index = self._window(fmt.size, what)
        self.pos += fmt.size
        return fmt.unpack_from(self.buffer, index)

    def raw(self, n: int, what: str) -> bytes:
        index = self._window(n, what)
        self.pos += n
        return self.buffer[index : index + n]

    def skip(self, n: int, what: str) -> None:
        self.check(n, what)
        self.pos += n

    def skip_strings(self, count: int, what: str) -> None:
        """Step over count length-prefixed strings: the header's hot loop (a vocabulary has
        32,000 to 150,000 of them, merges more), so the buffer is walked with locals."""
        unpack_from = U64.unpack_from
        buffer, start, pos = self.buffer, self.start, self.pos
        buffer_end = start + len(buffer)
        for _ in range(count):
            if pos + 8 > buffer_end or pos < start:
                self.pos = pos
                self._window(8, f"a string length in {what}")  # refills, or raises past the end
                buffer, start = self.buffer, self.start
                buffer_end = start + len(buffer)
            pos += 8 + unpack_from(buffer, pos - start)[0]
        self.pos = pos
        if pos > self.size:
            raise AnatomyError(
                self.path, f"the strings of {what} to end at byte {pos}", f"a file of {self.size} bytes", TRUNCATED
            )

    def string_value(self, what: str) -> str:
        """A metadata string: whole while the budget lasts, else its head (LongString)."""
        (length,) = self.unpack(U64, f"the length of {what}")
        self.check(length, what)
        if length > self.string_budget:
            head = self.raw(min(length, LONG_STRING_HEAD), what).decode("utf-8", "replace")
            self.skip(length - min(length, LONG_STRING_HEAD), what)
            return LongString(length, head)
        self.string_budget -= length
        return self._decoded(self.raw(length, what), what)

    def _decoded(self, data: bytes, what: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise AnatomyError(self.path, f"{what} in UTF-8", escape(repr(data[:40])), TRUNCATED) from None

    def text(self, what: str, limit: int) -> str:
        (length,) = self.unpack(U64, f"the length of {what}")
        self.check(length, what)
        if length > limit:
            raise AnatomyError(self.path, f"{what} of at most {limit} bytes", f"{length} bytes", TRUNCATED)
        return self._decoded(self.raw(length, what), what)


def _value_type(cursor: _Cursor, where: str) -> int:
    (type_id,) = cursor.unpack(U32, f"the value type of {where}")
    if type_id not in GGUF_VALUE_TYPES:
        raise AnatomyError(
            cursor.path, f"a GGUF value type (0..{max(GGUF_VALUE_TYPES)}) for {where}", str(type_id), TRUNCATED
        )
    return type_id


def _float32_text(value: float) -> float:
    """The shortest decimal that is the same float32: 1e-05 is stored as 9.99999974e-06 and
    shown, as by llama.cpp and in the config, as 1e-05."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if struct.pack("<f", shortest) == packed:
            return shortest
    return value  # nan


def _value(cursor: _Cursor, type_id: int, where: str, depth: int = 0) -> Any:
    if type_id in SCALARS:
        (value,) = cursor.unpack(SCALARS[type_id], f"the value of {where}")
        return _float32_text(value) if type_id == FLOAT32 else value
    if type_id == STRING:
        return cursor.string_value(f"the string value of {where}")
    return _array(cursor, where, depth)


def _array(cursor: _Cursor, where: str, depth: int) -> ArraySummary:
    """Keep the first few items, step over the rest without decoding them."""
    if depth >= MAX_ARRAY_DEPTH:
        raise AnatomyError(
            cursor.path, f"arrays nested at most {MAX_ARRAY_DEPTH} deep in {where}", "deeper nesting", TRUNCATED
        )
    offset = cursor.pos
    item_type = _value_type(cursor, f"the items of {where}")
    (count,) = cursor.unpack(U64, f"the item count of {where}")
    item_name = GGUF_VALUE_TYPES[item_type][0]
    item_size = SCALARS[item_type].size if item_type in SCALARS else (8 if item_type == STRING else 12)
    if count > cursor.remaining() // item_size:
        raise AnatomyError(
            cursor.path, f"{count} items of {where} within the file", f"{cursor.remaining()} bytes left", TRUNCATED
        )
    if count > MAX_ARRAY_ITEMS:
        raise AnatomyError(
            cursor.path, f"at most {MAX_ARRAY_ITEMS} items in {where}", f"{count}", "the file is corrupt or hostile"
        )
    if item_type in SCALARS and count <= PER_LAYER_ITEMS:
        items = [_value(cursor, item_type, where, depth + 1) for _ in range(count)]
        return ArraySummary(item_name, count, items[:HEAD_ITEMS], items, cursor.path, offset)
    head = [_value(cursor, item_type, where, depth + 1) for _ in range(min(count, HEAD_ITEMS))]
    rest = count - len(head)
    if item_type in SCALARS:
        cursor.skip(rest * item_size, f"the items of {where}")
    elif item_type == STRING:
        cursor.skip_strings(rest, where)
    else:
        for _ in range(rest):
            _array(cursor, where, depth + 1)
    return ArraySummary(item_name, count, head, None, cursor.path, offset)


def check_file_set(files: Sequence[str]) -> None:
    """A GGUF repository usually holds one file per quantization (Q4_K_M, Q8_0, ...): they are
    alternatives, not shards, unless named as llama.cpp's splits (-00001-of-00003.gguf)."""
    if len(files) > 1 and not all(SPLIT_NAME.search(f) for f in files):
        names = ", ".join(os.path.basename(f) for f in files[:3]) + (", ..." if len(files) > 3 else "")
        raise AnatomyError(
            os.path.dirname(files[0]) or ".",
            "one GGUF model (a file, or the splits NAME-0000N-of-0000M.gguf)",
            f"{len(files)} GGUF files ({escape(names)})",
            "pass one of the files",
        )


def _read_version(cursor: _Cursor) -> int:
    magic = cursor.raw(4, "the GGUF magic")
    if magic != GGUF_MAGIC:
        raise AnatomyError(
            cursor.path,
            "a GGUF file starting with b'GGUF'",
            f"a file starting with {escape(repr(magic))}",
            "the file is not GGUF",
        )
    (version,) = cursor.unpack(U32, "the GGUF version")
    if version not in GGUF_VERSIONS and version & 0xFFFF == 0:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        raise AnatomyError(
            cursor.path,
            "a little-endian GGUF file",
            f"a big-endian one (version {swapped})",
            "convert it with `gguf-convert-endian FILE little`",
        )
    if version not in GGUF_VERSIONS:
        raise AnatomyError(
            cursor.path, "GGUF version 2 or 3", f"version {version}", "convert the model again with a current llama.cpp"
        )
    return version


def _count(cursor: _Cursor, what: str, min_bytes: int) -> int:
    (count,) = cursor.unpack(U64, f"the {what} count")
    if count > cursor.remaining() // min_bytes:
        raise AnatomyError(
            cursor.path,
            f"{count} {what}s within the file (at least {min_bytes} bytes each)",
            f"{cursor.remaining()} bytes left",
            TRUNCATED,
        )
    return count


def _metadata(cursor: _Cursor, kv_count: int) -> dict[str, Any]:
    if kv_count > MAX_METADATA_KEYS:
        raise AnatomyError(
            cursor.path, f"at most {MAX_METADATA_KEYS} metadata keys", f"{kv_count}", "the file is corrupt or hostile"
        )
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cursor.text("a metadata key", MAX_KEY_BYTES)
        if key in metadata:
            raise CorruptFile(cursor.path, "each metadata key once", f"{escape(key)} twice", "the file is corrupt")
        metadata[key] = _value(cursor, _value_type(cursor, escape(key)), escape(key))
    return metadata


def _alignment(path: str, metadata: dict[str, Any]) -> int:
    alignment = metadata.get(KEY_ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
    if type(alignment) is not int or alignment <= 0 or alignment & (alignment - 1):
        raise CorruptFile(path, f"{KEY_ALIGNMENT} a power of two", escape(repr(alignment)), "the file is corrupt")
    return alignment


def _tensor_infos(cursor: _Cursor, count: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, dims as stored, ggml type, offset) for each tensor, in file order."""
    infos, seen = [], set()
    for _ in range(count):
        name = cursor.text("a tensor name", MAX_NAME_BYTES)
        check_tensor_name(cursor.path, name)  # (its length is capped as it is read)
        if name in seen:
            raise CorruptFile(cursor.path, "each tensor name once", f"{escape(name)} twice", "the file is corrupt")
        seen.add(name)
        (n_dims,) = cursor.unpack(U32, f"the rank of {name}")
        if n_dims > MAX_DIMS:
            raise AnatomyError(cursor.path, f"at most {MAX_DIMS} dimensions for {name}", str(n_dims), TRUNCATED)
        dims = cursor.unpack(struct.Struct(f"<{n_dims}Q"), f"the shape of {name}")
        if any(d > MAX_DIM for d in dims):
            raise AnatomyError(cursor.path, f"dimensions below 2**63 for {name}", str(max(dims)), TRUNCATED)
        (type_id,) = cursor.unpack(U32, f"the type of {name}")
        (offset,) = cursor.unpack(U64, f"the offset of {name}")
        infos.append((name, dims, type_id, offset))
    return infos


def _tensor(
    path: str, info: tuple[str, tuple[int, ...], int, int], data_start: int, size: int, alignment: int
) -> TensorInfo:
    name, dims, type_id, offset = info
    where = f"{path}: tensor {escape(name)}"
    if type_id not in GGML_TYPES:
        raise CorruptFile(
            where, "a GGML type known to gguf", f"type {type_id}", "upgrade the gguf package, or the file is corrupt"
        )
    type_name, block_size, block_bytes = GGML_TYPES[type_id]
    row = dims[0] if dims else 1  # a tensor of 0 dimensions holds one element, as ggml counts it (ne[0] = 1)
    if row % block_size:
        found = f"a row of {row}" if dims else "a tensor of 0 dimensions (one element)"
        raise CorruptFile(
            where, f"rows of whole {type_name} blocks ({block_size} elements)", found, "the file is corrupt"
        )
    nbytes = prod(dims) // block_size * block_bytes
    if offset % alignment:
        raise CorruptFile(where, f"data offset aligned to {alignment} bytes", f"offset {offset}", "the file is corrupt")
    if data_start + offset + nbytes > size:
        raise AnatomyError(where, f"{nbytes} data bytes at {data_start + offset}", f"a file of {size} bytes", TRUNCATED)
    return TensorInfo(name, type_name, tuple(reversed(dims)), path, data_start + offset, nbytes)


def read_tensors(path: str) -> tuple[list[TensorInfo], dict[str, Any]]:
    """Tensors of one GGUF file, in file order, and its metadata key/values."""
    with open_bytes(path) as source:
        size = source.size
        cursor = _Cursor(source, path)
        _read_version(cursor)
        tensor_count = _count(cursor, "tensor", MIN_TENSOR_INFO_BYTES)
        if tensor_count > MAX_TENSORS:
            raise CorruptFile(
                path, f"at most {MAX_TENSORS} tensors", f"{tensor_count}", "the file is corrupt or hostile"
            )
        metadata = _metadata(cursor, _count(cursor, "metadata key", MIN_KV_BYTES))
        infos = _tensor_infos(cursor, tensor_count)
    alignment = _alignment(path, metadata)
    data_start = -(-cursor.pos // alignment) * alignment
    return [_tensor(path, info, data_start, size, alignment) for info in infos], metadata
