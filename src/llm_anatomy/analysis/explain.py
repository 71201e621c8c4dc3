"""The config explained: every field of config.json with its value and its glossary
explanation (English or Chinese), plus the facts derived from it."""

from __future__ import annotations

import re
from collections import namedtuple

from .. import glossary
from ..core.catalog import Catalog
from ..hf import mlx_lora
from ..hf.peft import is_adapter_config, is_lora_gguf
from .architecture import derive

# Where the glossary explains the fields of a PEFT adapter_config.json: they are no model's
# fields (r, bias, revision mean other things there).
ADAPTER_GLOSSARY = "peft."
# ...of mlx-lm's adapter_config.json (its training arguments)...
MLX_GLOSSARY = "mlx."
# ...and the key/values of a LoRA GGUF, an index in a key (general.base_model.0.name) read as {n}.
GGUF_GLOSSARY = "gguf."
INDEX = re.compile(r"\.\d+(?=\.)")

# Object-valued fields shown as one value rather than field by field: their keys are
# labels, task names or layer indices, not config fields.
OPAQUE_OBJECTS = frozenset(
    {"id2label", "label2id", "task_specific_params", "pruned_heads", "auto_map", "per_layer_config"}
)


class FieldExplanation(namedtuple("FieldExplanation", "path depth value text")):
    """One config field: its path ("hidden_size", or "rope_scaling.factor" inside an object),
    depth (0 at the top level), value as parsed from config.json, and its explanation
    (None: the glossary has no entry for it)."""

    __slots__ = ()


class Explanation(namedtuple("Explanation", "model config_file lang fields architecture")):
    """The explained config: lang is one of glossary.LANGUAGES; fields in config.json's order,
    nested fields after their parent; architecture: the facts derived from the config (None for
    a PEFT adapter's adapter_config.json, which describes no model)."""

    __slots__ = ()

    @property
    def unexplained(self) -> tuple[FieldExplanation, ...]:
        return tuple(f for f in self.fields if f.text is None)


def _walk(config: dict, lang: str, prefix: str = "", depth: int = 0, under: str = ""):
    """under: the glossary's prefix for these fields ("peft." for an adapter's)."""
    for key, value in config.items():
        path = prefix + key
        yield FieldExplanation(
            path, depth, value, glossary.explain(under + path, value, lang, (under + prefix)[:-1], key)
        )
        if isinstance(value, dict) and key not in OPAQUE_OBJECTS:
            yield from _walk(value, lang, path + ".", depth + 1, under)


def explain_config(catalog: Catalog, lang: str) -> Explanation:
    """Raises the catalog's config error (bad JSON, no config.json): nothing to explain then. A
    LoRA GGUF has no config: its key/values are explained (its derived config would be a guess)."""
    if catalog.format == "gguf" and is_lora_gguf(catalog.metadata):
        fields = tuple(
            FieldExplanation(key, 0, value, glossary.explain(GGUF_GLOSSARY + INDEX.sub(".{n}", key), value, lang))
            for key, value in catalog.metadata.items()
        )
        return Explanation(catalog.name, None, lang, fields, None)
    config = catalog.require_config()
    if is_adapter_config(config) or mlx_lora.is_adapter_config(config):
        under = ADAPTER_GLOSSARY if is_adapter_config(config) else MLX_GLOSSARY
        return Explanation(catalog.name, catalog.config_file, lang, tuple(_walk(config, lang, under=under)), None)
    return Explanation(catalog.name, catalog.config_file, lang, tuple(_walk(config, lang)), derive(config))
