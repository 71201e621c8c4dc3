"""A LoRA adapter read as what it does to its base model: which modules it adapts, with what
rank, alpha and scaling, how many parameters it trains, and whether a base model fits it.
From the headers and adapter_config.json alone, as PEFT's LoraModel would build it."""

from __future__ import annotations

import math
from collections import namedtuple

from ..core.catalog import Catalog, natural_key
from ..core.errors import AnatomyError
from ..core.text import escape
from ..hf import peft

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..core.catalog import TensorInfo


class AdaptedModule(namedtuple("AdaptedModule", "name kind rank alpha scaling in_features out_features params dora tensors")):
    """One module of the base the adapter changes: name (the base's module name), kind ("linear"
    or "embedding"), rank, alpha and scaling as PEFT's layer holds them (scaling = alpha / r,
    alpha / sqrt(r) with use_rslora), in_features and out_features of the base's layer (for an
    embedding: vocabulary and width), params (the adapter's trained elements for it), dora (a
    magnitude vector is stored), tensors: role -> TensorInfo (hf.peft.PART_ROLES)."""

    __slots__ = ()

    @property
    def base_shape(self) -> tuple[int, int]:
        """The shape of the base weight this module's delta B @ A is added to (before fan_in_fan_out)."""
        return (self.in_features, self.out_features) if self.kind == "embedding" else (self.out_features, self.in_features)


class Adapter(namedtuple("Adapter", "name config_file weights_file base_model base_class use_rslora use_dora fan_in_fan_out modules saved copies trainable lora_params nbytes dtypes")):
    """A PEFT LoRA adapter: name, its config and weights files, base_model (the config's
    base_model_name_or_path), base_class (auto_mapping's base_model_class, or None), the flags,
    modules (AdaptedModule, in natural name order), saved: the whole weights of modules_to_save
    (TensorInfo under the base's names), copies: base weights saved beside the LoRA of a targeted
    embedding (not trained), trainable: the count get_nb_trainable_parameters() gives first,
    lora_params: its LoRA part, nbytes: all stored bytes, dtypes: the stored dtypes."""

    __slots__ = ()


def is_adapter(catalog: Catalog) -> bool:
    return peft.is_adapter_config(catalog.config)


def _number(config: dict, key: str, where: str, whole: bool) -> float:
    value = config.get(key)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise AnatomyError(where, f"{key} a positive {'whole ' if whole else ''}number", escape(repr(value)), "the adapter config is damaged")
    return value


def _pattern(config: dict, key: str, where: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise AnatomyError(where, f"{key} an object of module patterns", type(value).__name__, "the adapter config is damaged")
    return value


def _module(name: str, parts: dict[str, TensorInfo], config: dict, where: str, weights: str) -> AdaptedModule:
    embedding = "embedding_A" in parts or "embedding_B" in parts
    a_role, b_role = ("embedding_A", "embedding_B") if embedding else ("A", "B")
    for role in (a_role, b_role):
        if role not in parts:
            raise AnatomyError(weights, f"lora_{role} of {escape(name)}", "none", "the adapter is incomplete; save it again")
    a, b = parts[a_role], parts[b_role]
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != b.shape[1]:
        raise AnatomyError(weights, f"lora_A [r, in] and lora_B [out, r] of {escape(name)}", f"{list(a.shape)} and {list(b.shape)}", "the adapter is corrupt")
    rank = a.shape[0]
    rank_key = peft.pattern_key(list(_pattern(config, "rank_pattern", where)), name)
    alpha_key = peft.pattern_key(list(_pattern(config, "alpha_pattern", where)), name)
    configured = config["rank_pattern"][rank_key] if rank_key is not None else config["r"]
    if configured != rank:
        said = f"rank_pattern {rank_key!r}" if rank_key is not None else "r"
        raise AnatomyError(weights, f"rank {configured} for {escape(name)} ({escape(said)} in {peft.ADAPTER_CONFIG})", f"lora_A {list(a.shape)}", "the adapter config does not belong to these weights")
    alpha = config["alpha_pattern"][alpha_key] if alpha_key is not None else config["lora_alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise AnatomyError(where, f"a number as alpha of {escape(name)}", escape(repr(alpha)), "the adapter config is damaged")
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    in_features, out_features = (a.shape[1], b.shape[0])
    params = sum(t.numel for role, t in parts.items() if role in peft.TRAINED_ROLES)
    return AdaptedModule(name, "embedding" if embedding else "linear", rank, alpha, scaling, in_features, out_features, params, "magnitude" in parts, dict(parts))


def describe(catalog: Catalog) -> Adapter:
    """The adapter in catalog (a PEFT folder: adapter_config.json and its weights)."""
    config = catalog.require_config()
    where = catalog.config_file or catalog.root
    weights = catalog.weights_place
    if not peft.is_adapter_config(config):
        raise AnatomyError(where, "a PEFT adapter_config.json (with peft_type)", "a model's config", "pass an adapter folder")
    if config["peft_type"] != "LORA":
        raise AnatomyError(where, "a LoRA adapter (peft_type LORA)", f"peft_type {escape(config['peft_type'])}", "only LoRA adapters are read so far")
    _number(config, "r", where, True)
    _number(config, "lora_alpha", where, False)
    config = {**config, "rank_pattern": _pattern(config, "rank_pattern", where), "alpha_pattern": _pattern(config, "alpha_pattern", where)}
    grouped: dict[str, dict[str, TensorInfo]] = {}
    saved, copies = [], []
    for t in catalog.tensors:
        module, role = peft.split_name(t.name)
        if role == "saved":
            saved.append(t._replace(name=module))
        elif role == "base_copy":
            copies.append(t._replace(name=module + ".weight"))
        else:
            grouped.setdefault(module, {})[role] = t
    modules = tuple(_module(name, grouped[name], config, where, weights) for name in sorted(grouped, key=natural_key))
    lora = sum(m.params for m in modules)
    auto = config.get("auto_mapping")
    base_class = auto.get("base_model_class") if isinstance(auto, dict) and isinstance(auto.get("base_model_class"), str) else None
    base_model = config.get("base_model_name_or_path")
    return Adapter(
        name=catalog.name,
        config_file=catalog.config_file,
        weights_file=weights,
        base_model=base_model if isinstance(base_model, str) and base_model else None,
        base_class=base_class,
        use_rslora=bool(config.get("use_rslora")),
        use_dora=bool(config.get("use_dora")),
        fan_in_fan_out=bool(config.get("fan_in_fan_out")),
        modules=modules,
        saved=tuple(saved),
        copies=tuple(copies),
        trainable=lora + sum(t.numel for t in saved),
        lora_params=lora,
        nbytes=catalog.total_nbytes,
        dtypes=tuple(sorted({t.dtype for t in catalog.tensors})),
    )


# A tied base stores its output head once, as the input embedding: a modules_to_save copy of the
# head is checked against that. The head's name -> the embedding's names in transformers' families.
TIED_HEADS = {"lm_head.weight": ("model.embed_tokens.weight", "transformer.wte.weight", "model.decoder.embed_tokens.weight", "gpt_neox.embed_in.weight")}


def _base_weight(base: Catalog, name: str) -> TensorInfo | None:
    found = base.by_name.get(name)
    if found is None and name in TIED_HEADS and base.config is not None and not peft.is_adapter_config(base.config):
        from .architecture import derive

        if derive(base.config).tied_embeddings:
            found = next((base.by_name[n] for n in TIED_HEADS[name] if n in base.by_name), None)
    return found


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_base(adapter: Adapter, base: Catalog) -> list[AnatomyError]:
    """Every way the base model does not fit the adapter, from the headers (PEFT finds them only
    when it loads the weights): a targeted module or saved weight the base lacks, a LoRA whose
    in_features or out_features differ from the base weight's, a saved weight or vocabulary of
    another size. base: the base's tensors under transformers' names."""
    found = []
    todo = f"use the base model the adapter was trained on ({escape(adapter.base_model)})" if adapter.base_model else "use the base model the adapter was trained on"
    where = adapter.weights_file
    for m in adapter.modules:
        weight = base.by_name.get(m.name + ".weight")
        if weight is None:
            found.append(AnatomyError(where, f"module {escape(m.name)} in the base {escape(base.name)}", "no such weight", todo))
            continue
        expected = m.base_shape[::-1] if adapter.fan_in_fan_out and m.kind == "linear" else m.base_shape
        if tuple(weight.shape) == expected:
            continue
        if m.kind == "embedding":
            what = f"{escape(m.name)}.weight {_shape(expected)} (a vocabulary of {m.in_features:,} tokens of width {m.out_features})"
        else:
            what = f"{escape(m.name)}.weight {_shape(expected)} (in_features {m.in_features}, out_features {m.out_features})"
        found.append(AnatomyError(where, what, f"{_shape(weight.shape)} in {escape(base.name)}", todo))
    for t in adapter.saved:  # (the copies of targeted embeddings: checked with their module above)
        weight = _base_weight(base, t.name)
        if weight is None:
            found.append(AnatomyError(where, f"{escape(t.name)} (modules_to_save) in the base {escape(base.name)}", "no such weight", todo))
        elif tuple(weight.shape) != tuple(t.shape):
            found.append(AnatomyError(where, f"{escape(t.name)} {_shape(t.shape)} as saved", f"{_shape(weight.shape)} in {escape(base.name)}", todo))
    return found
