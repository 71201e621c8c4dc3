"""Bounded reads: every read of a checkpoint goes through here, so no offset or length
taken from a (possibly hostile) header can reach past the end of the file."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import BinaryIO

from .errors import AnatomyError


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError as exc:
        raise AnatomyError(path, "a readable file", exc.strerror or type(exc).__name__) from None


def read_exact(handle: BinaryIO, path: str, offset: int, length: int, size: int, what: str) -> bytes:
    """Read exactly length bytes at offset, after checking the range lies inside the file."""
    if offset < 0 or length < 0 or offset + length > size:
        raise AnatomyError(
            path,
            f"{what} at bytes {offset}..{offset + length}",
            f"a file of {size} bytes",
            "the file is truncated or corrupt; download it again",
        )
    handle.seek(offset)
    data = handle.read(length)
    if len(data) != length:
        raise AnatomyError(path, f"{length} bytes of {what}", f"{len(data)} bytes", "the file changed while it was read")
    return data
