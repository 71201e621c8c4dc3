"""PEFT's conventions for a LoRA adapter: how save_pretrained names its tensors, and how
rank_pattern / alpha_pattern keys pick a module (peft.utils.other.get_pattern_key).

A PEFT folder holds adapter_config.json and adapter_model.safetensors (older:
adapter_model.bin). Its tensors are named `base_model.model.<module>.<part>`, <module> the
base model's module as named_modules() names it, and <part> one of PART_ROLES below; any
other name is a whole weight of a module in `modules_to_save`, saved under the base's name."""

from __future__ import annotations

import re

ADAPTER_CONFIG = "adapter_config.json"
PREFIX = "base_model.model."

# The last one or two parts of a stored name -> what that tensor is to the module it adapts.
# lora_embedding_A/B have no `.weight`: PEFT keeps them as bare parameters of an Embedding's
# LoRA; DoRA's magnitude vector is saved bare too (older PEFT: `.weight`). A targeted
# embedding is saved whole too (`base_layer.weight`, save_embedding_layers): a copy of the
# base's weight, not trained.
PART_ROLES = {
    ("lora_A", "weight"): "A",
    ("lora_B", "weight"): "B",
    ("lora_B", "bias"): "bias",
    ("lora_magnitude_vector", "weight"): "magnitude",
    ("base_layer", "weight"): "base_copy",
    ("lora_embedding_A",): "embedding_A",
    ("lora_embedding_B",): "embedding_B",
    ("lora_magnitude_vector",): "magnitude",
}
TRAINED_ROLES = frozenset({"A", "B", "bias", "embedding_A", "embedding_B", "magnitude"})


def is_adapter_config(config: object) -> bool:
    """A PEFT adapter_config.json (every one carries peft_type), not a model's config."""
    return isinstance(config, dict) and isinstance(config.get("peft_type"), str)


def is_lora_config(config: object) -> bool:
    """A LoRA adapter's config: the adapters llm-anatomy reads as adapters (others: their tensors)."""
    return is_adapter_config(config) and config["peft_type"] == "LORA"  # type: ignore[index]


def split_name(stored: str) -> tuple[str, str]:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' ->
    ('model.layers.0.self_attn.q_proj', 'A'); a modules_to_save weight -> (its base name, 'saved')."""
    name = stored[len(PREFIX) :] if stored.startswith(PREFIX) else stored
    rest, _, last = name.rpartition(".")
    if (last,) in PART_ROLES:
        return rest, PART_ROLES[(last,)]
    module, _, part = rest.rpartition(".")
    role = PART_ROLES.get((part, last))
    return (module, role) if role is not None else (name, "saved")


def pattern_key(keys: list[str], module: str) -> str | None:
    """The first rank_pattern / alpha_pattern key that matches module as PEFT matches it: the key
    is a regular expression that must match the whole name or a tail of it after a dot."""
    for key in keys:
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return key
        except re.error:
            continue  # PEFT would raise on it; a bad key matches nothing here
    return None


# ---------------------------------------------------------------- LoRA GGUF (llama.cpp's convert_lora_to_gguf.py)
#
# The converter writes general.type = "adapter", adapter.type = "lora" and adapter.lora.alpha (one
# float32 for every module: rank_pattern and alpha_pattern are not carried over), and each module's
# pair under the base weight's GGUF name plus `.lora_a` / `.lora_b`: lora_a [r, in] and lora_b
# [out, r] as PEFT stores them, except the token embedding's lora_a, stored transposed [vocab, r]
# (llama.cpp's llm_build_inp_embd), and Llama's q and k, whose lora_b rows are in llama.cpp's
# rotary order (the converter permutes B @ A's rows by permuting B's).
GGUF_TYPE = "general.type"
GGUF_ADAPTER_TYPE = "adapter.type"
GGUF_ALPHA = "adapter.lora.alpha"
# The suffix of a LoRA GGUF tensor -> (its role, PEFT's part for a linear module, for an embedding).
GGUF_PARTS = {
    ".lora_a": ("A", "lora_A.weight", "lora_embedding_A"),
    ".lora_b": ("B", "lora_B.weight", "lora_embedding_B"),
}
EMBEDDING_MODULES = frozenset({"token_embd"})  # GGUF modules whose LoRA is an embedding's


def is_lora_gguf(metadata: object) -> bool:
    """A LoRA adapter written by convert_lora_to_gguf.py (not a model, not another adapter)."""
    return (
        isinstance(metadata, dict)
        and metadata.get(GGUF_TYPE) == "adapter"
        and metadata.get(GGUF_ADAPTER_TYPE) == "lora"
    )


def split_gguf_name(name: str) -> tuple[str, str] | None:
    """'blk.0.attn_q.weight.lora_a' -> ('blk.0.attn_q.weight', '.lora_a'); None for another name."""
    base, dot, part = name.rpartition(".")
    return (base, dot + part) if dot + part in GGUF_PARTS and base else None


def gguf_peft_name(name: str, hf_weight: str) -> str:
    """PEFT's name of LoRA GGUF tensor `name` whose base weight transformers names `hf_weight`
    ('model.layers.0.self_attn.q_proj.weight'): 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'."""
    base, suffix = split_gguf_name(name) or (name, "")
    _, linear, embedding = GGUF_PARTS[suffix]
    module = hf_weight.removesuffix(".weight")
    part = embedding if base.split(".")[-2] in EMBEDDING_MODULES else linear
    return PREFIX + module + "." + part


# ---------------------------------------------------------------- the model PEFT builds
#
# get_peft_model() / PeftModel.from_pretrained() wrap the base as base_model.model.<base's name>;
# an adapted layer keeps the base's parameters under base_layer, then holds its LoRA parameters
# per adapter name ("default"), in the order its LoraLayer registers them; a modules_to_save
# layer holds the base's as original_module and the saved copy as modules_to_save.<adapter>.
ADAPTER_NAME = "default"  # the name PeftModel.from_pretrained gives the adapter it loads
BASE_LAYER = "base_layer"
# role (PART_ROLES) -> the parameter's name within the adapted layer, in named_parameters() order.
LAYER_PARAMETERS = {
    "A": "lora_A.{adapter}.weight",
    "B": "lora_B.{adapter}.weight",
    "bias": "lora_B.{adapter}.bias",
    "embedding_A": "lora_embedding_A.{adapter}",
    "embedding_B": "lora_embedding_B.{adapter}",
    "magnitude": "lora_magnitude_vector.{adapter}.weight",
}
SAVED_ORIGINAL = "original_module"
SAVED_COPY = "modules_to_save.{adapter}"
# The class PeftModel.from_pretrained wraps the base in, by the config's task_type
# (peft.auto.MODEL_TYPE_TO_PEFT_MODEL_MAPPING); no task_type: PeftModel itself.
PEFT_MODEL_CLASSES = {
    "SEQ_CLS": "PeftModelForSequenceClassification",
    "SEQ_2_SEQ_LM": "PeftModelForSeq2SeqLM",
    "CAUSAL_LM": "PeftModelForCausalLM",
    "TOKEN_CLS": "PeftModelForTokenClassification",
    "QUESTION_ANS": "PeftModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "PeftModelForFeatureExtraction",
}
# What a LoRA layer registers, in order, whatever it adapts (peft.tuners.lora.layer.LoraLayer):
# its base layer, then one container per part, keyed by the adapter's name.
LORA_LAYER_CHILDREN = (
    (BASE_LAYER, None),
    ("lora_dropout", "ModuleDict"),
    ("lora_A", "ModuleDict"),
    ("lora_B", "ModuleDict"),
    ("lora_embedding_A", "ParameterDict"),
    ("lora_embedding_B", "ParameterDict"),
    ("lora_magnitude_vector", "ModuleDict"),
)
