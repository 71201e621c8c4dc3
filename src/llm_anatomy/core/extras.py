"""The optional extras and the modules each brings: a plain `pip install llm-anatomy` has none
of them, so a command that needs one says in one line which extra to install instead of
failing on an import."""

from __future__ import annotations

import importlib.util

from .errors import MissingExtra

# extra -> the modules llm-anatomy imports from it (pyproject.toml's optional-dependencies).
EXTRAS = {
    "stats": ("numpy",),
    "gguf": ("gguf", "numpy"),
    "transformers": ("transformers", "torch"),
    "s3": ("obstore",),  # s3:// models (hub/s3.py)
    "parquet": ("pyarrow",),  # inventory --out FILE.parquet
    "ray": ("ray",),  # inventory --engine ray (analysis/inventory_ray.py)
    # transformers' own GGUF loader (trace --run on a GGUF) needs gguf and accelerate as well.
    "all": ("transformers", "torch", "accelerate", "gguf", "numpy"),
}


def require(extra: str, where: object, purpose: str) -> None:
    """Raise MissingExtra unless every module of `extra` can be imported; find_spec looks
    for them without importing them, so the check costs microseconds."""
    missing = [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]
    if missing:
        names = " and ".join(missing)
        found = f"{names} {'is' if len(missing) == 1 else 'are'} not installed"
        raise MissingExtra(where, f"{names} {purpose}", found, f"pip install 'llm-anatomy[{extra}]'")
