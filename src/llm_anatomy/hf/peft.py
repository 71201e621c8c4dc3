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
    ("base_layer", None),
    ("lora_dropout", "ModuleDict"),
    ("lora_A", "ModuleDict"),
    ("lora_B", "ModuleDict"),
    ("lora_embedding_A", "ParameterDict"),
    ("lora_embedding_B", "ParameterDict"),
    ("lora_magnitude_vector", "ModuleDict"),
)
ADAPTER_NAME = "default"  # the name PeftModel.from_pretrained gives the adapter it loads


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
