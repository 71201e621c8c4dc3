"""Tensor names in Hugging Face form: llama.cpp's GGUF names (`blk.0.attn_q.weight`) and
Meta's original ones (`layers.0.attention.wq.weight`) -> `model.layers.0.self_attn.q_proj.weight`.

The tables are gguf.TensorNameMap read backwards for the architectures derived_config
knows; tests/test_gguf.py checks every row against gguf. Only names change: the
converters reorder the rows of q and k within each head (rotary layout), so those two
tensors' values differ in row order between the formats."""

from __future__ import annotations

import re
from ..catalog import Catalog

# {bid} is the block (layer) number.
GGUF_TO_HF = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "blk.{bid}.attn_norm": "model.layers.{bid}.input_layernorm",
    "blk.{bid}.attn_q": "model.layers.{bid}.self_attn.q_proj",
    "blk.{bid}.attn_k": "model.layers.{bid}.self_attn.k_proj",
    "blk.{bid}.attn_v": "model.layers.{bid}.self_attn.v_proj",
    "blk.{bid}.attn_output": "model.layers.{bid}.self_attn.o_proj",
    "blk.{bid}.attn_q_norm": "model.layers.{bid}.self_attn.q_norm",
    "blk.{bid}.attn_k_norm": "model.layers.{bid}.self_attn.k_norm",
    "blk.{bid}.ffn_norm": "model.layers.{bid}.post_attention_layernorm",
    "blk.{bid}.ffn_gate": "model.layers.{bid}.mlp.gate_proj",
    "blk.{bid}.ffn_up": "model.layers.{bid}.mlp.up_proj",
    "blk.{bid}.ffn_down": "model.layers.{bid}.mlp.down_proj",
}

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

# Catalog.format -> the table for its names (HF's own .bin files match no row).
NAME_MAPS = {"gguf": GGUF_TO_HF, "torch": META_TO_HF}

BLOCK = re.compile(r"^(blk|layers)\.(\d+)\.")


def hf_name(name: str, table: dict[str, str]) -> str:
    """The Hugging Face name of one tensor, or the name itself when no row matches."""
    base, dot, suffix = name.rpartition(".")  # suffix: weight / bias
    block = BLOCK.match(base)
    key = BLOCK.sub(r"\1.{bid}.", base, count=1) if block else base
    target = table.get(key) if dot else None
    if target is None:
        return name
    return target.format(bid=block.group(2) if block else "") + dot + suffix


def with_hf_names(catalog: Catalog) -> Catalog:
    """The same catalog with tensors renamed to their Hugging Face names."""
    table = NAME_MAPS.get(catalog.format)
    if table is None:
        return catalog
    return catalog._replace(tensors=tuple(t._replace(name=hf_name(t.name, table)) for t in catalog.tensors))
