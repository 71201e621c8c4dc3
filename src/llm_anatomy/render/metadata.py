"""Render a checkpoint's format-level key/values: GGUF metadata (arrays summarized by the
reader in the table, whole in JSON), safetensors __metadata__, scalars saved beside a
torch state dict."""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring  # json.dumps's own string escaping, ensure_ascii=False

from ..core.catalog import Catalog, compile_filter
from .text import table

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Iterator

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


def _item(value: object, indent: str) -> str:
    """One value as json.dumps(indent=2) lays it out at this depth."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + indent)


def _array_item(item: object) -> str:
    """json.dumps(item) for the items of a GGUF array, without its per-call cost (a
    vocabulary has 150,000 strings, some arrays millions of numbers)."""
    kind = type(item)
    if kind is str:
        return encode_basestring(item)
    if kind is int or kind is float and math.isfinite(item):
        return repr(item)
    return _item(item, "      ")  # bool, nan, inf, arrays inside the array


BATCH = 8192  # items joined into one piece


def _array(items: Iterator[object]) -> Iterator[str]:
    """A JSON array written a batch of items at a time, laid out as json.dumps(indent=2)
    would at depth 2."""
    batch, opened = [], False
    for item in items:
        batch.append(_array_item(item))
        if len(batch) == BATCH:
            yield (",\n      " if opened else "[\n      ") + ",\n      ".join(batch)
            batch, opened = [], True
    if batch:
        yield (",\n      " if opened else "[\n      ") + ",\n      ".join(batch)
        opened = True
    yield "\n    ]" if opened else "[]"


def json_pieces(catalog: Catalog, pattern: str | None = None) -> Iterator[str]:
    """The key/values as one JSON document, in pieces to write one after another: numbers,
    booleans and strings as such, GGUF arrays whole (every item, streamed from the file, so
    a vocabulary is never held in memory at once), anything else as its text."""
    metadata = _selected(catalog, pattern)
    yield f'{{\n  "model": {_item(catalog.name, "")},\n  "format": {_item(catalog.format, "")},\n  "metadata": '
    if not metadata:
        yield "{}\n}\n"
        return
    for number, (key, value) in enumerate(metadata.items()):
        yield ("," if number else "{") + f"\n    {_item(key, '')}: "
        if hasattr(value, "iter_items"):
            yield from _array(value.iter_items())
        else:
            yield _item(value if isinstance(value, (bool, int, float, str)) else str(value), "    ")
    yield "\n  }\n}\n"
