"""Render a checkpoint's format-level key/values: GGUF metadata (arrays already summarized
by the reader), safetensors __metadata__, scalars saved beside a torch state dict."""

from __future__ import annotations

from ..catalog import Catalog, compile_filter
from .text import table, to_json

MAX_VALUE_CHARS = 120  # a chat template or tokenizer JSON runs to kilobytes; --json has it whole


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else f"{text[:MAX_VALUE_CHARS]}... ({len(text):,} characters)"


def _selected(catalog: Catalog, pattern: str | None) -> dict:
    regex = compile_filter(pattern)
    return {key: value for key, value in catalog.metadata.items() if regex is None or regex.match(key)}


def text(catalog: Catalog, pattern: str | None = None) -> str:
    """key / value table, values escaped by table() and cut at MAX_VALUE_CHARS."""
    metadata = _selected(catalog, pattern)
    lines = table(("key", "value"), [(key, _shown(value)) for key, value in metadata.items()]) if metadata else []
    keys = f"{len(metadata)} metadata key" + ("" if len(metadata) == 1 else "s")
    return "\n".join(lines + [f"{keys} in {catalog.format}"]) + "\n"


def json_text(catalog: Catalog, pattern: str | None = None) -> str:
    """Numbers and booleans as such, everything else (arrays' summaries included) as strings."""
    metadata = {key: value if isinstance(value, (bool, int, float)) else str(value) for key, value in _selected(catalog, pattern).items()}
    return to_json({"model": catalog.name, "format": catalog.format, "metadata": metadata}) + "\n"
