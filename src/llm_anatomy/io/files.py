"""Write one output file (a report, an export) without ever harming a model.

The path the user gives is hostile too: it may be, or pass through, a symbolic link into the
model folder or onto a weights file, a hard link to a shard, a hub-cache blob, a fifo. So:
resolve every link first, refuse a target inside a guarded folder or on a guarded file
(compared by device and inode, never by spelling), replace only a regular file that we wrote
before (it carries our marker near its start), and write through a temporary file created
with O_EXCL | O_NOFOLLOW beside the real target, renamed over it only when complete
(cache_folder.replace_in_folder, the one atomic writer)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections import namedtuple

from ..core.errors import AnatomyError, UsageError
from ..core.text import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

# How far into an existing file our marker must appear for us to replace it.
MARKER_WINDOW = 1024

# errno -> what to do, for failures of the file system rather than of the path chosen.
OS_ERROR_TODO = {
    errno.ENOSPC: "free some space or pass -o with another folder",
    errno.EDQUOT: "free some space or pass -o with another folder",
    errno.EACCES: "pass -o with a folder you can write to",
    errno.EPERM: "pass -o with a folder you can write to",
    errno.EROFS: "pass -o with a folder on a writable file system",
}

# File types (stat.S_IFMT) a target must never be, as the refusal names them.
NOT_A_FILE = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a fifo",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class Guard(namedtuple("Guard", "folders files")):
    """What an output must never touch. folders: (st_dev, st_ino) -> the folder's name, for
    the model folder (and its whole hub-cache repository); files: (st_dev, st_ino) -> what
    to call the file, for every file the model is made of."""

    __slots__ = ()


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _add_file(files: dict, path: str, label: str) -> None:
    try:
        files.setdefault(_identity(os.stat(path)), f"{label} {path}")
    except OSError:
        pass  # a file that cannot be reached cannot be written through either


def _hub_repository(folder: str) -> str | None:
    """The models--org--name folder holding a hub-cache snapshot folder, if this is one: its
    blobs (where snapshot links point) belong to the model as much as the snapshot does."""
    snapshots = os.path.dirname(os.path.realpath(folder))
    repo = os.path.dirname(snapshots)
    if os.path.basename(snapshots) == "snapshots" and os.path.basename(repo).startswith(
        ("models--", "datasets--", "spaces--")
    ):
        return repo
    return None


def guard_model(
    root: str | None, weight_files: tuple[str, ...], other_files: tuple[str, ...] = (), whole_folder: bool = True
) -> Guard:
    """The guard for one model: its weight files and other files (by inode, so hard links and
    the blobs behind hub-cache links count), and, when whole_folder, its folder and every
    file in it (index, config, tokenizer...). A single weights file guards itself only
    (and its hub-cache repository, if it is in one)."""
    folders: dict[tuple[int, int], str] = {}
    files: dict[tuple[int, int], str] = {}
    for path in weight_files:
        _add_file(files, path, "the weights file")
    for path in other_files:
        _add_file(files, path, "the model file")
    # A hub-cache repository is guarded whole, even for one of its files: its blobs are the model.
    guarded = (root if whole_folder else None, _hub_repository(root) if root is not None else None)
    for folder in filter(None, guarded):
        try:
            folders[_identity(os.stat(folder))] = folder
        except OSError:
            continue
    if whole_folder and root is not None:
        try:
            names = os.listdir(root)
        except OSError:
            names = []
        for name in names:
            _add_file(files, os.path.join(root, name), "the model file")
    return Guard(folders, files)


def _ancestors(real_folder: str) -> list[str]:
    """The folder and each folder above it, up to /: the path is already free of links."""
    chain = [real_folder]
    while os.path.dirname(chain[-1]) != chain[-1]:
        chain.append(os.path.dirname(chain[-1]))
    return chain


def _os_error(path: str, exc: OSError, what: str) -> AnatomyError:
    reason = exc.strerror.lower() if exc.strerror else type(exc).__name__
    code = errno.errorcode.get(exc.errno or 0)
    found = f"{reason} ({code})" if code else reason
    return AnatomyError(
        path, f"to write the {what}", found, OS_ERROR_TODO.get(exc.errno or 0, "pass -o with another path")
    )


def _resolve(path: str, guard: Guard, what: str) -> tuple[str, str]:
    """(real folder, file name) of where path leads; refuse links to nothing, a missing
    folder, and any target inside a guarded folder."""
    if os.path.islink(path) and not os.path.exists(path):
        raise UsageError(
            path,
            f"a file name for the {what}",
            "a symbolic link that leads nowhere",
            "remove the link or pass -o with another path",
        )
    real = os.path.realpath(path)
    folder, name = os.path.split(real)
    if not name or path.endswith(os.sep):  # realpath drops the slash of "out/": a folder was meant
        raise UsageError(path, f"a file name for the {what}", "a folder", f"pass -o FOLDER/{what}.html")
    if not os.path.isdir(folder):
        raise AnatomyError(
            path,
            f"an existing folder for the {what}",
            f"no folder {escape(folder)}",
            "create it or pass -o with another path",
        )
    for ancestor in _ancestors(folder) + [real]:
        try:
            identity = _identity(os.stat(ancestor))
        except OSError:
            continue  # the target itself may not exist yet
        if identity in guard.folders:
            raise UsageError(
                path,
                "an output path outside the model folder",
                f"a path inside {escape(guard.folders[identity])}",
                "pass -o with another folder; llm-anatomy never writes into a model folder",
            )
    return folder, name


def _check_replaceable(folder_fd: int, name: str, path: str, guard: Guard, marker: bytes, what: str) -> None:
    """An existing target must be a regular file, not the model's, and one we wrote."""
    try:
        info = os.lstat(name, dir_fd=folder_fd)
    except FileNotFoundError:
        return
    if _identity(info) in guard.files:
        raise UsageError(
            path,
            "an output path outside the model folder",
            f"{escape(guard.files[_identity(info)])}",
            "pass -o with another folder; llm-anatomy never writes into a model folder",
        )
    kind = stat.S_IFMT(info.st_mode)
    if kind != stat.S_IFREG:
        found = NOT_A_FILE.get(kind, "a symbolic link")
        todo = f"pass -o FOLDER/{what}.html" if kind == stat.S_IFDIR else "pass -o with another path"
        raise UsageError(path, f"a file name for the {what}", found, todo)
    # O_NONBLOCK: should a fifo be swapped in after the lstat, opening it must not wait.
    handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    try:
        again = os.fstat(handle)
        head = (
            os.read(handle, MARKER_WINDOW)
            if stat.S_ISREG(again.st_mode) and _identity(again) == _identity(info)
            else b""
        )
    finally:
        os.close(handle)
    if marker not in head:
        raise UsageError(
            path,
            f"a new file or a previous llm-anatomy {what}",
            "a file llm-anatomy did not write",
            "remove it or pass -o with another path",
        )


def _open_folder(path: str, folder: str, what: str) -> int:
    """The target's folder, opened: every later step works relative to this descriptor."""
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error(path, exc, what) from None
    try:
        identity = _identity(os.fstat(folder_fd))
        if identity != _identity(os.stat(folder)):  # swapped for a link since it was resolved
            raise AnatomyError(path, f"a folder that stays put while the {what} is written", "it changed", "try again")
    except BaseException:
        os.close(folder_fd)
        raise
    return folder_fd


def check_output(path: str, guard: Guard, marker: bytes, what: str = "report") -> None:
    """Refuse a path now, before the work of making what goes there (write_output checks again)."""
    folder, name = _resolve(path, guard, what)
    folder_fd = _open_folder(path, folder, what)
    try:
        _check_replaceable(folder_fd, name, path, guard, marker, what)
    except OSError as exc:
        raise _os_error(path, exc, what) from None
    finally:
        os.close(folder_fd)


def write_output(path: str, data: bytes, guard: Guard, marker: bytes, what: str = "report") -> None:
    """Write data to path (atomically, never through a link, never onto the model); raise
    AnatomyError (exit 1) for a failing file system, UsageError (exit 2) for a path refused."""
    from .cache_dir import TEMPORARY_TRIES, replace_in_folder

    folder, name = _resolve(path, guard, what)
    folder_fd = _open_folder(path, folder, what)
    try:
        _check_replaceable(folder_fd, name, path, guard, marker, what)
        replace_in_folder(folder_fd, name, data, sync=True)
    except FileExistsError:  # the rename cannot raise it: _check_replaceable refused folders
        raise AnatomyError(
            path, "a free temporary name beside it", f"{TEMPORARY_TRIES} taken", "remove the *.partial files beside it"
        ) from None
    except OSError as exc:
        raise _os_error(path, exc, what) from None
    finally:
        os.close(folder_fd)


def new_folder(path: str, fill: Callable[[str], object], option: str = "--keep") -> None:
    """Make path a folder holding what fill(folder) writes: path must be new or an empty
    folder, never a link. fill writes into a private temporary folder beside it (nothing
    there to follow), which is then renamed onto path; it is removed on any failure."""
    refusal = (path, f"a new or empty folder for {option}")
    if os.path.islink(path):
        raise UsageError(*refusal, "a symbolic link", "name a new folder")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise UsageError(*refusal, "an existing file or a folder with files in it", "name a new folder")
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    final = os.path.join(parent, os.path.basename(os.path.abspath(path)))
    staging = None
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", suffix=".partial", dir=parent)
        fill(staging)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp's 0700 kept it private while it was filled
        os.rename(staging, final)  # replaces an empty folder; fails, never follows, on anything else
        staging = None
    except OSError as exc:
        raise _os_error(path, exc, "folder") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
