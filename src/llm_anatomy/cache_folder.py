"""The project's cache folder (skeletons, traces, the Hub's header cache), in a module of
its own: the Hub's header cache is read on calls that never import skeleton.py."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """LLM_ANATOMY_CACHE, else $XDG_CACHE_HOME/llm-anatomy, else ~/.cache/llm-anatomy.
    A relative XDG_CACHE_HOME is ignored, as the XDG spec asks (it would put the cache in
    whatever folder the command runs in, a model folder perhaps)."""
    if os.environ.get("LLM_ANATOMY_CACHE"):
        return os.environ["LLM_ANATOMY_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache")
    return os.path.join(base, "llm-anatomy")


def write_file(path: str, data: bytes) -> None:
    """Put data at path in the cache atomically: written under a new name beside it, then
    renamed over it, so a reader sees the old file or the new one. O_EXCL | O_NOFOLLOW: never
    written through a link, nor into a file planted at the temporary name. OSError says why
    it could not be written (each caller decides whether the command goes on without it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
