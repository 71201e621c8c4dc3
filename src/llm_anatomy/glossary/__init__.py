"""The config-field glossary (fields.json): English and Chinese explanations as data.

Read with a plain open() next to this file (importlib.resources costs more to import
than the lookup takes)."""

from __future__ import annotations

import json
import os
from functools import lru_cache

LANGUAGES = ("en", "zh")
SENTENCE_GAP = {"en": " ", "zh": ""}  # Chinese runs sentences together
GLOSSARY_FILE = os.path.join(os.path.dirname(__file__), "fields.json")


@lru_cache(maxsize=1)
def load() -> dict:
    with open(GLOSSARY_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def _candidates(path: str) -> list[str]:
    """path itself, then the same path under each alias prefix ('rope_parameters.factor' ->
    'rope_scaling.factor'), then with per-layer-type levels dropped
    ('rope_parameters.full_attention.rope_type' -> 'rope_scaling.rope_type')."""
    paths = [path]
    parts = path.split(".")
    if len(parts) > 2:
        paths.append(f"{parts[0]}.{parts[-1]}")
    aliases = load()["aliases"]
    expanded = []
    for candidate in paths:
        expanded.append(candidate)
        for prefix, target in aliases.items():
            if candidate == prefix or candidate.startswith(prefix) and prefix.endswith("."):
                expanded.append(target + candidate[len(prefix) :])
    return expanded


def entry(path: str) -> dict | None:
    """The glossary entry of a field path ('hidden_size', 'rope_scaling.factor'), or None."""
    fields = load()["fields"]
    for candidate in _candidates(path):
        if candidate in fields:
            return fields[candidate]
    return None


def child_path(parent: str, key: str) -> str:
    """The placeholder path that explains a key under parent with no entry of its own: a key
    naming a module (config field names never hold a dot) reads as `<module>`, others as `<name>`."""
    return f"{parent}.<module>" if "." in key else f"{parent}.<name>"


def explain(path: str, value: object, lang: str, parent: str | None = None, key: str | None = None) -> str | None:
    """The explanation of a field in `lang`, plus the explanation of its value when the
    glossary has one (torch_dtype float16); None when the field has no entry. parent and key:
    where path comes from, for the placeholder entries of keys that are names, not fields."""
    found = entry(path)
    if found is None and parent:
        found = entry(child_path(parent, key or ""))
    if found is None:
        return None
    text = found[lang]
    value_entry = found.get("values", {}).get(value) if isinstance(value, str) else None
    return text + SENTENCE_GAP[lang] + value_entry[lang] if value_entry else text
