"""Byte sources: every reader asks one for ranges (a local file here, or HTTP ranges from
hub.py), so no reader knows where the bytes come from, and no offset or length taken from
a (possibly hostile) header can reach past the end of the file."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable, Protocol

    class ByteSource(Protocol):
        name: str  # what to call the file in messages, and TensorInfo.file
        size: int

        def read(self, offset: int, length: int, what: str) -> bytes: ...
        def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None: ...  # (offset, length) read soon
        def fileobj(self) -> BinaryIO: ...  # seekable, for zipfile
        def close(self) -> None: ...

from .errors import AnatomyError

# Byte sources that are not local files, by name: hub.py registers a model's remote weight
# files here, under names no local path has, before any reader runs.
_REGISTERED: dict[str, "ByteSource"] = {}


def register(source: ByteSource) -> None:
    _REGISTERED[source.name] = source


def file_size(path: str) -> int:
    source = _REGISTERED.get(path)
    if source is not None:
        return source.size
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise AnatomyError(path, "a readable file", exc.strerror or type(exc).__name__) from None


def is_file(path: str) -> bool:
    return path in _REGISTERED or os.path.isfile(path)


def is_local(path: str) -> bool:
    return path not in _REGISTERED


def check_range(name: str, offset: int, length: int, size: int, what: str) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise AnatomyError(
            name,
            f"{what} at bytes {offset}..{offset + length}",
            f"a file of {size} bytes",
            "the file is truncated or corrupt; download it again",
        )


class LocalFile:
    """A file on disk, opened on the first read and kept open until close()."""

    __slots__ = ("name", "size", "_handle")

    def __init__(self, path: str) -> None:
        self.name, self.size, self._handle = path, file_size(path), None

    def read(self, offset: int, length: int, what: str) -> bytes:
        """Exactly length bytes at offset, after checking the range lies inside the file."""
        check_range(self.name, offset, length, self.size, what)
        handle = self.fileobj()
        handle.seek(offset)
        data = handle.read(length)
        if len(data) != length:
            raise AnatomyError(self.name, f"{length} bytes of {what}", f"{len(data)} bytes", "the file changed while it was read")
        return data

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Nothing to do: a local read costs no more than a cached one (remote sources fetch here)."""

    def fileobj(self) -> BinaryIO:
        if self._handle is None:
            try:
                self._handle = open(self.name, "rb", buffering=0)
            except OSError as exc:
                raise AnatomyError(self.name, "a readable file", exc.strerror or type(exc).__name__) from None
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> "LocalFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_bytes(path: str) -> ByteSource:
    """The byte source of a weight file: a registered remote one, or the local file. Use it
    with `with`: a local file is closed at the end, a remote one stays (it holds its cache)."""
    source = _REGISTERED.get(path)
    return source if source is not None else LocalFile(path)
