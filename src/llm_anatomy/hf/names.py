"""Tensor names in Hugging Face form: llama.cpp's GGUF names (`blk.0.attn_q.weight`) and
Meta's original ones (`layers.0.attention.wq.weight`) -> `model.layers.0.self_attn.q_proj.weight`.

GGUF names go through their architecture's own table (gguf_names.json): for each
architecture transformers' GGUF loader maps, the GGUF name of each parameter of the model
transformers builds, as that loader finds it (gguf's TensorNameMap for the architecture,
applied to transformers' names). The table is data, so header-only commands import neither
gguf nor numpy; tests/formats/test_gguf_archs.py regenerates it with transformers and gguf and
checks it is equal. GGUF tensors that transformers fuses into one parameter (stacked
experts' gate and up) keep their GGUF names, as do architectures without a table.

Only names change here: the values of some tensors differ between the formats (see
formats/gguf_transforms.py)."""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache, partial

from ..core.catalog import Catalog
from ..core.ggml_types import KEY_ARCHITECTURE
from .peft import gguf_peft_name, is_lora_gguf, split_gguf_name

GGUF_NAMES = os.path.join(os.path.dirname(__file__), "gguf_names.json")
# general.architecture -> the architecture whose table names its tensors (same modules).
SAME_NAMES = {"t5encoder": "t5"}

META_TO_HF = {
    "tok_embeddings": "model.embed_tokens",
    "norm": "model.norm",
    "output": "lm_head",
    "layers.{bid}.attention_norm": "model.layers.{bid}.input_layernorm",
    "layers.{bid}.attention.wq": "model.layers.{bid}.self_attn.q_proj",
    "layers.{bid}.attention.wk": "model.layers.{bid}.self_attn.k_proj",
    "layers.{bid}.attention.wv": "model.layers.{bid}.self_attn.v_proj",
    "layers.{bid}.attention.wo": "model.layers.{bid}.self_attn.o_proj",
    "layers.{bid}.ffn_norm": "model.layers.{bid}.post_attention_layernorm",
    "layers.{bid}.feed_forward.w1": "model.layers.{bid}.mlp.gate_proj",
    "layers.{bid}.feed_forward.w3": "model.layers.{bid}.mlp.up_proj",
    "layers.{bid}.feed_forward.w2": "model.layers.{bid}.mlp.down_proj",
}

# The block number of a GGUF name (T5 has enc.blk.N and dec.blk.N) and of a Meta name.
GGUF_BLOCK = re.compile(r"^((?:enc\.|dec\.)?blk)\.(\d+)\.")
META_BLOCK = re.compile(r"^(layers)\.(\d+)\.")


@lru_cache(maxsize=1)
def gguf_tables() -> dict[str, dict[str, str]]:
    """general.architecture -> {GGUF name with {bid}: transformers name with {bid}}."""
    with open(GGUF_NAMES, encoding="utf-8") as handle:
        return json.load(handle)


# Tensors llama.cpp's converter writes under names transformers' loader does not look for:
# Gemma-4's converter appends `.weight` to the layer scalar and the stacked experts (the loader
# looks for blk.N.layer_output_scale and blk.N.ffn_gate_up_exps) and writes the router's scales
# as ffn_gate_inp.scale and ffn_down_exps.scale (the loader maps no name to them). transformers
# leaves these parameters as initialised; their names here are those of the tensors they hold.
CONVERTER_NAMES = {
    "gemma4": {
        "blk.{bid}.layer_output_scale.weight": "model.layers.{bid}.layer_scalar",
        "blk.{bid}.ffn_gate_up_exps.weight": "model.layers.{bid}.experts.gate_up_proj",
        "blk.{bid}.ffn_down_exps.weight": "model.layers.{bid}.experts.down_proj",
        "blk.{bid}.ffn_gate_inp.scale": "model.layers.{bid}.router.scale",
        "blk.{bid}.ffn_down_exps.scale": "model.layers.{bid}.router.per_expert_scale",
    },
}


def gguf_table(metadata) -> dict[str, str] | None:
    arch = metadata.get(KEY_ARCHITECTURE)
    if not isinstance(arch, str):
        return None
    arch = SAME_NAMES.get(arch, arch)
    table = gguf_tables().get(arch)
    return table if table is None or arch not in CONVERTER_NAMES else {**table, **CONVERTER_NAMES[arch]}


def _renamed(name: str, table: dict[str, str], block: re.Pattern[str], whole_names: bool) -> str:
    match = block.match(name)
    key = block.sub(r"\1.{bid}.", name, count=1) if match else name
    if whole_names:
        target = table.get(key)
        suffix = ""
    else:  # Meta's table names modules: the suffix (weight) is kept
        key, dot, suffix = key.rpartition(".")
        target = table.get(key) if dot else None
        suffix = dot + suffix
    if target is None:
        return name
    return target.format(bid=match.group(2) if match else "") + suffix


def hf_name(name: str, table: dict[str, str]) -> str:
    """The transformers name of one GGUF tensor, or the name itself when no row matches."""
    return _renamed(name, table, GGUF_BLOCK, True)


def lora_hf_name(name: str, table: dict[str, str]) -> str:
    """PEFT's name of one tensor of a LoRA GGUF (hf.peft), or the name itself when no row matches:
    a LoRA GGUF pairs with the PEFT adapter it was converted from."""
    split = split_gguf_name(name)
    if split is None:
        return name
    weight = hf_name(split[0], table)
    return name if weight == split[0] else gguf_peft_name(name, weight)


def meta_hf_name(name: str) -> str:
    """The transformers name of one tensor of Meta's original Llama checkpoints."""
    return _renamed(name, META_TO_HF, META_BLOCK, False)


def with_hf_names(catalog: Catalog) -> Catalog:
    """The same catalog with tensors renamed to their Hugging Face names."""
    if catalog.format == "gguf":
        table = gguf_table(catalog.metadata)
        if table is None:
            return catalog
        rename = partial(lora_hf_name if is_lora_gguf(catalog.metadata) else hf_name, table=table)
    elif catalog.format == "torch":
        rename = meta_hf_name
    else:
        return catalog
    return catalog._replace(tensors=tuple(t._replace(name=rename(t.name)) for t in catalog.tensors))
