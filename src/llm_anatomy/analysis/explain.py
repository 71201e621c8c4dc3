"""The config explained: every field of config.json with its value and its glossary
explanation (English or Chinese), plus the facts derived from it."""

from __future__ import annotations

from dataclasses import dataclass

from .. import glossary
from ..catalog import Catalog
from .architecture import Architecture, derive

# Object-valued fields shown as one value rather than field by field: their keys are
# labels or task names, not config fields.
OPAQUE_OBJECTS = frozenset({"id2label", "label2id", "task_specific_params", "pruned_heads", "auto_map"})


@dataclass(frozen=True)
class FieldExplanation:
    path: str  # "hidden_size", or "rope_scaling.factor" for a field inside an object
    depth: int  # 0 for top-level fields
    value: object  # as parsed from config.json
    text: str | None  # None: the glossary has no entry for this field


@dataclass(frozen=True)
class Explanation:
    model: str
    config_file: str | None
    lang: str  # one of glossary.LANGUAGES
    fields: tuple[FieldExplanation, ...]  # in config.json's order, nested fields after their parent
    architecture: Architecture

    @property
    def unexplained(self) -> tuple[FieldExplanation, ...]:
        return tuple(f for f in self.fields if f.text is None)


def _walk(config: dict, lang: str, prefix: str = "", depth: int = 0):
    for key, value in config.items():
        path = prefix + key
        yield FieldExplanation(path, depth, value, glossary.explain(path, value, lang))
        if isinstance(value, dict) and key not in OPAQUE_OBJECTS:
            yield from _walk(value, lang, path + ".", depth + 1)


def explain_config(catalog: Catalog, lang: str) -> Explanation:
    """Raises the catalog's config error (bad JSON, no config.json): nothing to explain then."""
    config = catalog.require_config()
    return Explanation(catalog.name, catalog.config_file, lang, tuple(_walk(config, lang)), derive(config))
