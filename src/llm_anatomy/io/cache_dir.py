"""The project's cache folder (skeletons, traces, the Hub's header cache), and the one way a
file is written atomically (cache files and the output files of output_file.py), in a module
of its own: the Hub's header cache is read on calls that never import skeleton.py.

The cache may be shared (LLM_ANATOMY_CACHE on a group's folder), so whoever else can write
there may have put a symbolic link where a folder of the cache should be, to make the next
write land in a model folder: below the cache root every folder is opened without following
links, one component at a time, and the file is created and renamed relative to the last."""

from __future__ import annotations

import errno
import os

TEMPORARY_TRIES = 100  # random temporary names tried beside a target before giving up


def cache_dir() -> str:
    """LLM_ANATOMY_CACHE, else $XDG_CACHE_HOME/llm-anatomy, else ~/.cache/llm-anatomy.
    A relative XDG_CACHE_HOME is ignored, as the XDG spec asks (it would put the cache in
    whatever folder the command runs in, a model folder perhaps)."""
    if os.environ.get("LLM_ANATOMY_CACHE"):
        return os.environ["LLM_ANATOMY_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache")
    return os.path.join(base, "llm-anatomy")


def repo_folder(repo: str) -> str:
    """The folder name of a model repository in a cache of the Hub's layout (the Hugging Face
    cache, and the header cache under cache_dir()/hub), as huggingface_hub's
    repo_folder_name spells it: models--ORG--NAME."""
    return "models--" + repo.replace("/", "--")


class LinkInCache(OSError):
    """A folder below the cache root is a symbolic link: nothing is written through it."""

    def __init__(self, link: str) -> None:
        super().__init__(errno.ELOOP, "a symbolic link", link)
        self.link = link


def _open_below_root(folder: str) -> int:
    """A descriptor of folder, a folder at or below cache_dir(), each component below the root
    opened with O_NOFOLLOW (and made if missing). LinkInCache names a component that is a link."""
    root = cache_dir()
    parts = [] if os.path.normpath(folder) == os.path.normpath(root) else os.path.relpath(folder, root).split(os.sep)
    if os.pardir in parts:
        raise OSError(errno.EINVAL, "a path outside the cache folder", folder)
    # The root itself may be a link (~/.cache on another disk): the user's choice, followed.
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.makedirs(root, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    shown = root
    try:
        for part in parts:
            shown = os.path.join(shown, part)
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(shown):
                    raise LinkInCache(shown) from None
                raise OSError(exc.errno, exc.strerror, shown) from None
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def replace_in_folder(folder_fd: int, name: str, data: bytes, sync: bool = False) -> None:
    """Put data at name in the open folder atomically: written under a new random name beside
    it, then renamed over it, so a reader sees the old file or the new one. O_EXCL | O_NOFOLLOW:
    never written through a link, nor into a file planted at the temporary name; the rename
    replaces a link at name, never what it points to. sync: fsync first (a full disk shows
    there on file systems that allocate late). OSError says why not (FileExistsError: every
    temporary name tried was taken)."""
    for _ in range(TEMPORARY_TRIES):
        # Part of the name only: the whole one plus a suffix may exceed the file system's limit.
        partial = f".{name[:64]}.{os.urandom(6).hex()}.partial"
        try:
            handle = os.open(
                partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=folder_fd
            )
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, f"{TEMPORARY_TRIES} temporary names taken", name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            if sync:
                os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(partial, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        try:
            os.unlink(partial, dir_fd=folder_fd)
        except OSError:
            pass
        raise


def write_file(path: str, data: bytes) -> None:
    """Put data at path, a file below cache_dir(), atomically and through no link below the
    cache root (see replace_in_folder). OSError says why it could not be written, LinkInCache
    naming a link (each caller decides whether the command goes on without it)."""
    folder_fd = _open_below_root(os.path.dirname(path))
    try:
        replace_in_folder(folder_fd, os.path.basename(path), data)
    finally:
        os.close(folder_fd)
