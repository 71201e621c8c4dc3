"""Group tensor names by layer and by role, from the names alone.

A role is what a tensor does inside its layer, spelled as the checkpoint spells it: the
name with its layer prefix and every index removed, so `model.layers.7.self_attn.q_proj.weight`
has role `self_attn.q_proj.weight` and `model.layers.3.block_sparse_moe.experts.5.w1.weight`
has role `block_sparse_moe.experts.*.w1.weight`. That rule needs no per-architecture table,
keeps q_proj, input_layernorm and post_attention_layernorm apart, and keeps weights and
biases apart; tensors outside the layers (embeddings, final norm, head) are their own role."""

from __future__ import annotations

import re

from ..core.catalog import natural_key

# Tensors some writers save beside the parameters that are buffers of the model, not
# parameters: RoPE's inv_freq, position ids, GPT-2's attention masks, DeepSeek-V3's router
# bias (e_score_correction_bias; GGUF exp_probs_b), BatchNorm's running statistics, Gemma-4's
# layer scalar (GGUF layer_output_scale).
BUFFER = re.compile(
    r"(?:\.running_mean|\.running_var|\.num_batches_tracked|rotary_emb\.inv_freq|\.position_ids|\.attn\.(?:masked_)?bias|^rope_freqs\.weight|e_score_correction_bias|exp_probs_b\.\w+|\.layer_scalar|\.layer_output_scale\.weight)$"
)

LAYER_PREFIX = re.compile(r"^(?:.*?\.)?(?:layers|h|layer|blk|blocks?)\.(\d+)\.")
INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")


def layer_key(name: str) -> str:
    """`model.layers.7` for a tensor of layer 7; the tensor's own name otherwise."""
    match = LAYER_PREFIX.match(name)
    return match.group(0)[:-1] if match else name


def role_key(name: str) -> str:
    match = LAYER_PREFIX.match(name)
    inner = name[match.end() :] if match else name
    return INDEX.sub("*", inner)


# The groupings `stats --by` offers: grouping -> key of one tensor name.
KEYS = {"layer": layer_key, "role": role_key}
GROUPINGS = tuple(KEYS)


def group_names(names: list[str], by: str) -> dict[str, list[str]]:
    """key -> names, keys in natural order (layers.2 before layers.10), names in given order."""
    key_of = KEYS[by]
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(key_of(name), []).append(name)
    return {key: groups[key] for key in sorted(groups, key=natural_key)}
