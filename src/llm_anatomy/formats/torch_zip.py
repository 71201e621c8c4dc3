"""Read torch.save checkpoints (.bin, .pth, .pt: a zip holding data.pkl and one member per
storage) without torch: data.pkl goes through the restricted unpickler, and each tensor's
offset points straight into its storage member, which torch writes uncompressed."""

from __future__ import annotations

import os
import re
import struct
from math import prod

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Sequence

    from ..io.sources import ByteSource

from ..io.sources import is_local, open_bytes
from ..core.catalog import MAX_TENSORS, StridedTensor, TensorInfo, check_tensor_name
from ..core.dtypes import DTYPES
from ..core.errors import AnatomyError, CorruptFile
from ..core.text import escape

# torch.save(..., _use_new_zipfile_serialization=False) starts with LEGACY_MAGIC, a protocol-2
# pickle of torch's magic number 0x1950a86a20f9469cfc6c; formats/__init__ detects by both.
from .signatures import LEGACY_TORCH_MAGIC as LEGACY_MAGIC, ZIP_MAGIC  # noqa: E402

MAX_PICKLE_BYTES = 32 * 1024 * 1024  # ~100 bytes a tensor: 300,000 tensors
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra length
# The end of the central directory (APPNOTE 4.3.16) and its zip64 forms (4.3.14, 4.3.15):
# where zipfile learns how many bytes of directory to read and how many members to build.
END_RECORD = struct.Struct("<4s4H2LH")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
MAX_COMMENT = 0xFFFF
DATA_DESCRIPTOR_BYTES = (16, 24, 12, 20)  # after a member's bytes, when its flags say so (APPNOTE 4.3.9)
STORAGE_ALIGNMENT = 64  # torch.save's: every member's bytes start on this boundary
MAX_MEMBERS = MAX_TENSORS + 16  # one per storage, plus data.pkl, byteorder, version, ...
MAX_DIRECTORY_BYTES = 64 * 1024 * 1024  # ~100 bytes a member
READABLE_PICKLE_COMPRESSION = (0, 8)  # stored, deflated: both read with bounded output
CORRUPT_ZIP = "the file is corrupt or hostile; download it again"
META_SHARD = re.compile(r"consolidated\.(\d+)\.pth$")


def _refuse_legacy(source: ByteSource) -> None:
    """The pre-1.6 format interleaves pickles and raw storages; converting once is simpler and safer.
    The hint maps storages to the CPU: a file saved from GPU tensors fails to load without it
    on a machine without CUDA."""
    if not source.read(0, min(source.size, len(LEGACY_MAGIC)), "the magic number").startswith(LEGACY_MAGIC):
        return
    raise AnatomyError(
        source.name,
        "a torch checkpoint in the zip format (torch >= 1.6)",
        "the legacy torch.save format",
        "convert it once where you trust it: torch.save(torch.load(PATH, map_location='cpu', weights_only=True), 'converted.pt')",
    )


def check_file_set(files: Sequence[str]) -> None:
    """Meta's larger releases split every tensor across consolidated.00.pth, .01.pth, ...
    under the same names; joining them needs each tensor's split dimension."""
    shards = [f for f in files if META_SHARD.search(os.path.basename(f))]
    if len(shards) > 1:
        raise AnatomyError(
            os.path.dirname(shards[0]) or ".",
            "one consolidated.00.pth (a model that is not split for model parallelism)",
            f"{len(shards)} model-parallel shards",
            "pass one shard file, or convert with transformers' convert_llama_weights_to_hf.py",
        )


def _data_offset(source: ByteSource, info: Any) -> int:
    """Where a member's bytes start: after its local header, whose extra field (torch's
    64-byte alignment padding) may differ from the central directory's."""
    path, size = source.name, source.size
    header = source.read(info.header_offset, LOCAL_HEADER.size, f"the zip header of {escape(info.filename)}")
    signature, name_length, extra_length = LOCAL_HEADER.unpack(header)
    if signature != ZIP_MAGIC:
        raise CorruptFile(
            path,
            f"a zip local header for {escape(info.filename)}",
            escape(repr(signature)),
            "the file is corrupt; download it again",
        )
    start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
    if start + info.file_size > size:
        raise AnatomyError(
            path,
            f"{info.file_size} bytes of {escape(info.filename)} at {start}",
            f"a file of {size} bytes",
            "the file is truncated; download it again",
        )
    return start


def _is_contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """torch's is_contiguous(): row-major strides, ignoring dimensions of size 1; a tensor
    without elements always is."""
    if 0 in shape:
        return True
    expected = 1
    for dim, step in zip(reversed(shape), reversed(stride)):
        if dim != 1 and step != expected:
            return False
        expected *= dim
    return True


def _check_directory(source: ByteSource) -> None:
    """Refuse a central directory too large to read or to hold in memory, from its end
    records, before zipfile reads it whole and builds one object per member. A file
    without an end record is left to zipfile to refuse."""
    path, size = source.name, source.size
    tail_start = max(0, size - END_RECORD.size - MAX_COMMENT)
    tail = source.read(tail_start, size - tail_start, "the end of the zip directory")
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + END_RECORD.size > len(tail):
        return
    _, _, _, _, members, directory_bytes, _, _ = END_RECORD.unpack_from(tail, at)
    if at >= ZIP64_LOCATOR.size and tail[at - ZIP64_LOCATOR.size : at - ZIP64_LOCATOR.size + 4] == b"PK\x06\x07":
        _, _, record_at, _ = ZIP64_LOCATOR.unpack_from(tail, at - ZIP64_LOCATOR.size)
        if record_at + ZIP64_END_RECORD.size <= size:
            record = ZIP64_END_RECORD.unpack(
                source.read(record_at, ZIP64_END_RECORD.size, "the zip64 directory record")
            )
            if record[0] == b"PK\x06\x06":
                members, directory_bytes = max(members, record[7]), max(directory_bytes, record[8])
    if directory_bytes > min(size, MAX_DIRECTORY_BYTES):
        raise CorruptFile(
            path,
            f"a zip directory of at most {min(size, MAX_DIRECTORY_BYTES)} bytes",
            f"{directory_bytes} bytes",
            CORRUPT_ZIP,
        )
    if members > MAX_MEMBERS:
        raise CorruptFile(path, f"a zip of at most {MAX_MEMBERS} members", f"{members}", CORRUPT_ZIP)


def _open_archive(source: ByteSource) -> tuple[Any, Any, str]:
    """(ZipFile, data.pkl member, the archive's top folder with a trailing slash)."""
    import zipfile

    path = source.name
    _check_directory(source)
    try:
        archive = zipfile.ZipFile(source.fileobj())
    except (
        Exception
    ) as exc:  # zipfile raises many types on a damaged directory (NotImplementedError for "version 6.4", ...)
        raise CorruptFile(
            path,
            "a torch zip checkpoint",
            escape(f"an unreadable zip ({exc})"),
            "the file is truncated or corrupt; download it again",
        ) from None
    pickles = [i for i in archive.infolist() if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
    if len(pickles) != 1:
        archive.close()
        raise AnatomyError(
            path,
            "a torch zip checkpoint with one <name>/data.pkl",
            f"{len(pickles)} data.pkl members",
            "the zip was not written by torch.save",
        )
    info = pickles[0]
    if info.compress_type not in READABLE_PICKLE_COMPRESSION:
        archive.close()
        raise AnatomyError(
            path,
            f"{escape(info.filename)} stored or deflated",
            f"compression method {info.compress_type}",
            "save it again with torch.save",
        )
    if info.file_size > MAX_PICKLE_BYTES or info.compress_size > source.size:
        archive.close()
        raise CorruptFile(
            path,
            f"{escape(info.filename)} of at most {MAX_PICKLE_BYTES} bytes",
            f"{info.file_size} bytes ({info.compress_size} stored)",
            CORRUPT_ZIP,
        )
    return archive, info, info.filename[: -len("data.pkl")]


def _read_member(path: str, archive: Any, name: str, limit: int) -> bytes:
    try:
        with archive.open(name) as member:
            data = member.read(limit + 1)
    except Exception as exc:  # as in _open_archive: CRC errors, unsupported or encrypted members, zlib errors, ...
        raise CorruptFile(
            path,
            f"a readable {escape(name)}",
            escape(f"{type(exc).__name__}: {exc}")[:200],
            "the file is corrupt; download it again",
        ) from None
    if len(data) > limit:
        raise CorruptFile(
            path, f"{escape(name)} of at most {limit} bytes", "more", "the file is corrupt or not a state dict"
        )
    return data


def _storage_span(
    source: ByteSource, archive: Any, member: str, where: str, starts: dict[str, int] | None
) -> tuple[int, int]:
    """(file offset of a storage's first byte, its byte count): the member's bytes as stored,
    where its local header says, or where starts says (see _starts_from_directory)."""
    info = archive.NameToInfo.get(member)
    if info is None:
        raise CorruptFile(
            where, f"storage member {escape(member)}", "no such member", "the file is truncated or corrupt"
        )
    if info.compress_type != 0:
        raise AnatomyError(
            where,
            "an uncompressed storage (torch.save writes them stored)",
            f"compression method {info.compress_type}",
            "the zip was recompressed; save it again with torch.save",
        )
    return (_data_offset(source, info) if starts is None else starts[member]), info.file_size


def _starts_from_directory(archive: Any, wanted: set[str]) -> dict[str, int] | None:
    """Where the wanted members' bytes start, from the central directory alone: each one's
    bytes, then its data descriptor (when its flags say so: 16 bytes, or 24 in zip64, 12 or
    20 without a signature) end where the next member's local header begins, or the
    directory; torch.save starts every member's bytes on a 64-byte boundary, which leaves
    one start. On the Hub that spares a view that reads no tensor byte the local headers,
    one small request each (78 for OPT-125m); _check_local_headers holds the starts to them
    before any tensor byte is read. None where no single start fits (then they are read)."""
    members = sorted(archive.infolist(), key=lambda info: info.header_offset)
    ends = [info.header_offset for info in members[1:]] + [archive.start_dir]
    starts = {}
    for info, end in zip(members, ends):
        if info.filename not in wanted:
            continue
        try:
            header_end = (
                info.header_offset
                + LOCAL_HEADER.size
                + len(info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"))
            )
        except UnicodeEncodeError:
            return None
        descriptors = DATA_DESCRIPTOR_BYTES if info.flag_bits & 0x08 else (0,)
        fits = [
            start
            for start in (end - info.compress_size - d for d in descriptors)
            if start % STORAGE_ALIGNMENT == 0 and 0 <= start - header_end <= 0xFFFF
        ]
        if len(fits) != 1:
            return None
        starts[info.filename] = fits[0]
    return starts


def _check_local_headers(source: ByteSource, infos: list[Any], starts: dict[str, int]) -> None:
    """The starts taken from the directory, against the members' local headers (all of them
    in parallel requests): bytes between members, which torch.save never writes, are refused."""
    source.prefetch({(info.header_offset, LOCAL_HEADER.size) for info in infos})
    for info in infos:
        start = _data_offset(source, info)
        if start != starts[info.filename]:
            found = f"its bytes at {start}, then {starts[info.filename] - start} bytes more"
            raise CorruptFile(
                source.name,
                f"{escape(info.filename)} followed by the next member (as torch.save writes a zip)",
                found,
                CORRUPT_ZIP,
            )


def _tensor(path: str, name: str, ref: Any, span: tuple[int, int]) -> TensorInfo | StridedTensor:
    """The tensor's place in its storage: one run of bytes when it is contiguous, else a
    StridedTensor (a view such as t.T saved as it is), read element by element as torch
    does, over the storage elements it reaches, all of which must be stored."""
    where = f"{path}: tensor {escape(name)}"
    start, member_bytes = span
    storage_bytes = min(
        member_bytes, ref.storage.numel * DTYPES[ref.storage.dtype].bits // 8
    )  # as stored, as the pickle declares
    itemsize = DTYPES[ref.dtype].bits // 8
    begin, nbytes = ref.offset * itemsize, prod(ref.shape) * itemsize
    if _is_contiguous(ref.shape, ref.stride):
        if begin + nbytes > storage_bytes:
            raise CorruptFile(
                where,
                f"{nbytes} bytes at byte {begin} of its storage",
                f"a storage of {storage_bytes} bytes",
                "the file is truncated or corrupt",
            )
        return TensorInfo(name, ref.dtype, ref.shape, path, start + begin, nbytes)
    if any(step < 0 for step in ref.stride):
        raise CorruptFile(
            where,
            "strides of 0 or more (as torch makes them)",
            f"strides {list(ref.stride)}",
            "the file is corrupt or hostile",
        )
    reach = 1 + sum(
        (size - 1) * step for size, step in zip(ref.shape, ref.stride)
    )  # elements from the first to the last it reads
    if begin + reach * itemsize > storage_bytes:
        raise CorruptFile(
            where,
            f"storage elements {ref.offset}..{ref.offset + reach - 1} (shape {list(ref.shape)}, strides {list(ref.stride)})",
            f"a storage of {storage_bytes // itemsize} elements",
            "the file is truncated or corrupt",
        )
    storage = TensorInfo(name, ref.dtype, (reach,), path, start + begin, reach * itemsize)
    return StridedTensor(name, ref.dtype, ref.shape, path, start + begin, nbytes, ref.stride, storage)


def read_tensors(path: str) -> tuple[list[TensorInfo], dict[str, str]]:
    """Tensors of one torch zip checkpoint, in the state dict's order, and its scalar entries.
    Tensors sharing a storage (tied weights, views) point into the same bytes."""
    with open_bytes(path) as source:
        _refuse_legacy(source)
        archive, pickle_info, prefix = _open_archive(source)
        with archive:
            tensors, metadata = _read_state(path, source, archive, pickle_info, prefix)
    return tensors, metadata


def _read_state(
    path: str, source: ByteSource, archive: Any, pickle_info: Any, prefix: str
) -> tuple[list[TensorInfo], dict[str, str]]:
    """The state dict of an opened archive: data.pkl through the restricted unpickler, then
    each storage's span. path: as given to read_tensors (a remote one carries its source)."""
    from . import restricted_pickle

    byteorder = prefix + "byteorder"
    if byteorder in archive.NameToInfo and _read_member(path, archive, byteorder, 16) != b"little":
        raise AnatomyError(
            path,
            "a little-endian torch checkpoint",
            "a big-endian one",
            "load and save it again on a little-endian machine",
        )
    state = restricted_pickle.load(path, _read_member(path, archive, pickle_info.filename, MAX_PICKLE_BYTES))
    refs, metadata = restricted_pickle.collect(path, state)
    if len(refs) > MAX_TENSORS:
        raise CorruptFile(path, f"at most {MAX_TENSORS} tensors", f"{len(refs)}", CORRUPT_ZIP)
    storages = [archive.NameToInfo.get(f"{prefix}data/{ref.storage.key}") for _, ref in refs]
    starts = (
        None
        if is_local(path)
        else _starts_from_directory(archive, {info.filename for info in storages if info is not None})
    )
    if starts is None:
        source.prefetch(
            {(info.header_offset, LOCAL_HEADER.size) for info in storages if info is not None}
        )  # one request each, in parallel, on the Hub
    spans: dict[str, tuple[int, int]] = {}
    tensors = []
    for name, ref in refs:
        check_tensor_name(path, name)
        key = ref.storage.key
        if key not in spans:
            spans[key] = _storage_span(source, archive, f"{prefix}data/{key}", f"{path}: tensor {escape(name)}", starts)
        tensors.append(_tensor(path, name, ref, spans[key]))
    if starts is not None:
        used = [archive.NameToInfo[f"{prefix}data/{key}"] for key in spans]
        source.check_before_data(lambda: _check_local_headers(source, used, starts))
    return tensors, metadata
