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
