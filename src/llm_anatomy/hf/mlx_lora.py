"""mlx-lm's conventions for a LoRA adapter (`mlx_lm.lora --train`, mlx_lm/tuner/lora.py): a
folder with adapters.safetensors and adapter_config.json (the training arguments, saved whole).

Its tensors are named `<module>.lora_a` and `<module>.lora_b`, <module> the MLX model's module
(for transformers' families the same as transformers' names: model.layers.0.self_attn.q_proj).
Unlike PEFT, a linear layer's lora_a is [in, r] and lora_b [r, out]; the update is
`scale * (x @ lora_a) @ lora_b`, so the merged weight is W + scale * lora_b.T @ lora_a.T, with
`scale` taken as it is from lora_parameters (no alpha / r). An embedding's lora_a is [vocab, r]
and lora_b [r, width]; DoRA (fine_tune_type dora) adds a magnitude vector `m`."""

from __future__ import annotations

WEIGHTS = "adapters.safetensors"
FINE_TUNE_TYPES = frozenset({"lora", "dora"})  # "full" saves whole weights: no adapter to describe
# The last part of a stored name -> its role (as hf.peft.PART_ROLES names them).
PART_ROLES = {"lora_a": "A", "lora_b": "B", "m": "magnitude"}
EMBEDDING_MODULES = frozenset({"embed_tokens", "wte", "tok_embeddings"})


def is_adapter_config(config: object) -> bool:
    """mlx-lm's adapter_config.json: the training arguments with fine_tune_type and lora_parameters
    (no peft_type: that is PEFT's)."""
    return (
        isinstance(config, dict)
        and "peft_type" not in config
        and isinstance(config.get("fine_tune_type"), str)
        and isinstance(config.get("lora_parameters"), dict)
    )


def split_name(stored: str) -> tuple[str, str]:
    """'model.layers.0.self_attn.q_proj.lora_a' -> ('model.layers.0.self_attn.q_proj', 'A'); any
    other name -> (the name, 'saved')."""
    module, _, part = stored.rpartition(".")
    role = PART_ROLES.get(part)
    return (module, role) if role is not None and module else (stored, "saved")


def is_embedding(module: str) -> bool:
    return module.rpartition(".")[2] in EMBEDDING_MODULES
