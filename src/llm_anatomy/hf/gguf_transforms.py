"""What transformers' GGUF loader does to a tensor's values to undo llama.cpp's converter, per
architecture (TENSOR_PROCESSORS in transformers/modeling_gguf_pytorch_utils.py), as data:
`values --style torch` applies the same, so it prints the parameters from_pretrained(gguf_file=)
would hold.

The converters reorder the rows of Llama's q and k within each head (rotary layout) and of
Bloom's fused qkv (by head, then q/k/v, to q/k/v, then head), store Gemma's and Nemotron's
norm weights as 1 + w, store GPT-2's Conv1D weights transposed, and drop unit dimensions
(Mamba's and LFM2's convolutions, Qwen-MoE's shared-expert gate), and store Mamba's A_log
as A = -exp(A_log), which transformers loads as log(-A) computed by numpy in float32. Falcon's fused qkv rows, which llama.cpp's converter
reorders for Falcon-40B's grouped heads, transformers loads as stored; so do we."""

from __future__ import annotations

import re
from collections import namedtuple

# Transform kinds: unpermute (args: the config field with the head count), bloom_qkv,
# elementwise (args: the analysis.values.ELEMENTWISE key), transpose, unsqueeze (args: the dimension).
Transform = namedtuple("Transform", "kind arg")

# general.architecture -> ((pattern searched in the GGUF tensor name, Transform), ...), first match wins.
NORM_PLUS_ONE = ((r"norm\.weight", Transform("elementwise", "minus_one")),)
SHARED_EXPERT_GATE = ((r"ffn_gate_inp_shexp", Transform("unsqueeze", 0)),)
TRANSFORMS = {
    "llama": (
        (r"\.attn_q\.", Transform("unpermute", "num_attention_heads")),
        (r"\.attn_k\.", Transform("unpermute", "num_key_value_heads")),
    ),
    "gemma2": NORM_PLUS_ONE,
    "gemma3": NORM_PLUS_ONE,
    "nemotron": NORM_PLUS_ONE,
    "gpt2": ((r"attn_qkv\.weight|ffn_down\.weight|ffn_up\.weight|attn_output\.weight", Transform("transpose", None)),),
    "bloom": ((r"attn_qkv", Transform("bloom_qkv", None)),),
    "mamba": (
        (r"ssm_conv1d\.weight", Transform("unsqueeze", 1)),
        (r"ssm_a", Transform("elementwise", "log_of_negated")),
    ),
    "lfm2": ((r"shortconv\.conv\.weight", Transform("unsqueeze", 1)),),
    "qwen2moe": SHARED_EXPERT_GATE,
    "qwen3moe": SHARED_EXPERT_GATE,
}


# A LoRA GGUF's A matrices load as stored: the converter reorders the rows of B @ A by reordering
# B's rows (lora_b), whose transform is its base weight's; A's rows are the rank's (hf.peft).
AS_STORED_SUFFIXES = (".lora_a",)


# Meta's original Llama checkpoints (consolidated.00.pth) hold q and k in the same rotary layout
# as llama.cpp's (both interleave each head's rotary pairs); transformers' convert_llama_weights_to_hf.py
# permutes them from it, with params.json's head counts (n_kv_heads for k: grouped-query attention).
META_TRANSFORMS = (
    (r"layers\.\d+\.attention\.wq\.weight", Transform("unpermute", "num_attention_heads")),
    (r"layers\.\d+\.attention\.wk\.weight", Transform("unpermute", "num_key_value_heads")),
)


def meta_transform_of(name: str) -> Transform | None:
    """The transform of one tensor of Meta's original checkpoints, by its stored name."""
    return next((transform for pattern, transform in META_TRANSFORMS if re.fullmatch(pattern, name)), None)


def transform_of(arch: str | None, gguf_name: str) -> Transform | None:
    if gguf_name.endswith(AS_STORED_SUFFIXES):
        return None
    for pattern, transform in TRANSFORMS.get(arch or "", ()):
        if re.search(pattern, gguf_name):
            return transform
    return None


def unpermuted_rows(rows: int, heads: int) -> tuple[int, ...]:
    """Stored row of each loaded row of Llama's q or k: transformers reshapes the rows to
    (heads, rows_per_head / 2, 2) and swaps the last two axes."""
    half = rows // heads // 2
    return tuple(h * 2 * half + i * 2 + a for h in range(heads) for a in range(2) for i in range(half))


def bloom_qkv_rows(rows: int, heads: int) -> tuple[int, ...]:
    """Stored row of each loaded row of Bloom's fused qkv: stored q rows, then k, then v (each
    by head); loaded by head, then q, k, v."""
    part = rows // 3
    head_dim = part // heads
    return tuple(j * part + h * head_dim + i for h in range(heads) for j in range(3) for i in range(head_dim))


# The conventions that reorder q/k's rows for rotary embeddings (verify recognises their misuse).
ROTARY_CONVENTIONS = frozenset({"unpermute", "unpermute_meta"})

# What each transform undoes, in words (diff and verify name it beside each tensor): the
# Transform kind, or for an elementwise one its ELEMENTWISE key.
CONVENTIONS = {
    "unpermute": "rotary row permutation of q/k undone (llama.cpp's layout)",
    "unpermute_meta": "rotary row permutation of q/k undone (Meta's layout)",
    "bloom_qkv": "fused qkv rows reordered (llama.cpp's Bloom layout)",
    "minus_one": "norm weight stored as 1 + w: 1 subtracted",
    "log_of_negated": "A stored as -exp(A_log): log(-A) taken",
    "experts_stacked": "experts stacked in one tensor: this expert's slice read",
    "transpose": "transposed back (GGUF stores Conv1D weights transposed)",
    "unsqueeze": "unit dimension restored (GGUF drops it)",
}
