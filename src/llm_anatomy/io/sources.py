"""Byte sources: every reader asks one for ranges (a local file here, or HTTP ranges from
hub.py), so no reader knows where the bytes come from, and no offset or length taken from
a (possibly hostile) header can reach past the end of the file, and no path given by the
user or a cache (a fifo, a device, a file that cannot be read) gets further than one line
naming it."""

from __future__ import annotations

import errno
import os
import stat

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
        def settle(self) -> None: ...  # run what waits for the first read


from ..core.errors import AnatomyError


class SourcedPath(str):
    """The name of a file whose bytes come from a byte source that is not a local file (a
    weight file on the Hub, named by its place in the header cache): it prints, compares and
    hashes as that name, and carries its source. So the source travels with every Source,
    Catalog and TensorInfo that names the file, and goes when they go: nothing is registered
    in the process, and two models opened one after the other share nothing."""

    def __new__(cls, source: ByteSource) -> "SourcedPath":
        self = super().__new__(cls, source.name)
        self.source = source
        return self

    def __reduce__(self) -> tuple:  # pickled (a result sent back by a worker), it is only a name
        return (str, (str(self),))


def settle(items: Iterable[object]) -> None:
    """Before forking workers: what the byte sources of these items' files (a TensorInfo, or
    a tuple of them) would do on their first read, done once here (torch_zip's check of
    local headers) rather than in every worker."""
    settled: set[int] = set()
    for item in items:
        for each in item if isinstance(item, tuple) else (item,):
            path = getattr(each, "file", None)
            if isinstance(path, SourcedPath) and id(path.source) not in settled:
                settled.add(id(path.source))
                path.source.settle()


# What a path is when it is not a regular file, for the error line.
FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    return next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")


def what_is_at(path: str) -> str | None:
    """None when path is a regular file (a remote one counts); else what is there,
    for an error line: "no such file", "a fifo", "a folder", "a symlink loop", "a broken
    symlink", "permission denied". Asks only stat: a fifo or a device is never opened."""
    if isinstance(path, SourcedPath):
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if isinstance(exc, FileNotFoundError):
            return "a broken symlink" if os.path.islink(path) else "no such file"
        return (exc.strerror or type(exc).__name__).lower()
    return None if stat.S_ISREG(mode) else kind_of(mode)


class Unreadable(AnatomyError):
    """An OSError on a path (no such file, permission denied, an I/O error) as its one line: a
    cache reader tells a miss from an entry that is there but is not one it wrote."""


def os_error(path: str, exc: OSError, expected: str = "a readable file") -> Unreadable:
    """One line for an OSError (permission denied, vanished, I/O error) on path."""
    todo = "check its permissions" if isinstance(exc, PermissionError) else "check the path"
    return Unreadable(path, expected, (exc.strerror or type(exc).__name__).lower(), todo)


def file_size(path: str) -> int:
    if isinstance(path, SourcedPath):
        return path.source.size
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise os_error(path, exc) from None


def open_regular_descriptor(path: str, flags: int = 0) -> int:
    """A descriptor of a local regular file, opened for reading with extra flags. O_NONBLOCK
    so that a fifo put where a file should be is refused at once instead of blocking until a
    writer comes."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | flags)
    except OSError as exc:
        raise os_error(path, exc) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise AnatomyError(path, "a regular file", kind_of(mode), "pass a model folder or a weights file")
        os.set_blocking(descriptor, True)
        return descriptor
    except BaseException:
        os.close(descriptor)
        raise


def open_regular(path: str) -> BinaryIO:
    """Open a local regular file for reading, unbuffered (see open_regular_descriptor)."""
    descriptor = open_regular_descriptor(path)
    try:
        return os.fdopen(descriptor, "rb", buffering=0)
    except BaseException:
        os.close(descriptor)
        raise


def read_capped(path: str, limit: int, what: str, todo: str) -> bytes:
    """The whole of a small local file (an index, a config, a cache ref), refused beyond
    limit bytes before any of it is read: a 3 GB sparse file costs nothing to refuse. A
    SourcedPath (a config or an index in an object store) is read through its source."""
    if isinstance(path, SourcedPath):
        size = path.source.size
        if size > limit:
            raise AnatomyError(path, f"{what} of at most {limit} bytes", f"{size} bytes", todo)
        return path.source.read(0, size, what)
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise AnatomyError(path, f"{what} of at most {limit} bytes", f"{size} bytes", todo)
        try:
            data = _read_up_to(handle, limit + 1)
        except OSError as exc:
            raise os_error(path, exc) from None
    if len(data) > limit:  # grew while read
        raise AnatomyError(path, f"{what} of at most {limit} bytes", "more", todo)
    return data


def read_prefix(path: str, limit: int) -> bytes:
    """The first limit bytes of a local regular file (fewer when it is shorter): what a check
    that looks at a file's start, or reads a bounded part of it, needs. Opened as
    open_regular does, so a fifo or device swapped in after a walk is refused, not waited on."""
    with open_regular(path) as handle:
        try:
            return _read_up_to(handle, limit)
        except OSError as exc:
            raise os_error(path, exc) from None


def _read_up_to(handle: BinaryIO, limit: int) -> bytes:
    """Up to limit bytes (an unbuffered read may return fewer than asked)."""
    chunks, left = [], limit
    while left > 0:
        chunk = handle.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def is_local(path: str) -> bool:
    return not isinstance(path, SourcedPath)


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
        try:
            handle.seek(offset)
            data = _read_up_to(handle, length)
        except OSError as exc:
            raise os_error(self.name, exc) from None
        if len(data) != length:
            raise AnatomyError(
                self.name, f"{length} bytes of {what}", f"{len(data)} bytes", "the file changed while it was read"
            )
        return data

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Nothing to do: a local read costs no more than a cached one (remote sources fetch here)."""

    def settle(self) -> None:
        """Nothing waits for a local file's first read."""

    def fileobj(self) -> BinaryIO:
        if self._handle is None:
            self._handle = open_regular(self.name)
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
    """The byte source of a weight file: the one a SourcedPath carries, or the local file. Use
    it with `with`: a local file is closed at the end, a remote one stays (it holds its cache)."""
    return path.source if isinstance(path, SourcedPath) else LocalFile(path)
