"""A Hugging Face style config.json derived from a checkpoint that carries none: GGUF
metadata (`llama.block_count`, ...) or Meta's params.json (`dim`, `n_layers`, ...).

With it, config, summary and tree work on GGUF files and Meta releases as on a
transformers folder. Fields are named and valued as transformers' own converters
(convert_llama_weights_to_hf.py, gguf loading in transformers) would write them."""

from __future__ import annotations

import os
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Sequence

from ..catalog import TensorInfo
from ..errors import AnatomyError
from ..safe_text import escape
from ..ggml_types import KEY_ARCHITECTURE, KEY_TOKENS
from . import read_json_object

# general.architecture -> (model_type, transformers class). Each of these names its
# hyper-parameters with the same GGUF keys and the same config fields below.
GGUF_ARCHITECTURES = {
    "llama": ("llama", "LlamaForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
}

# GGUF key (after "{arch}.") -> config field.
GGUF_FIELDS = (
    ("block_count", "num_hidden_layers"),
    ("embedding_length", "hidden_size"),
    ("feed_forward_length", "intermediate_size"),
    ("attention.head_count", "num_attention_heads"),
    ("attention.head_count_kv", "num_key_value_heads"),
    ("attention.key_length", "head_dim"),
    ("context_length", "max_position_embeddings"),
    ("rope.freq_base", "rope_theta"),
    ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
)
GGUF_TOKEN_FIELDS = (
    ("tokenizer.ggml.bos_token_id", "bos_token_id"),
    ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ("tokenizer.ggml.padding_token_id", "pad_token_id"),
)
GGUF_EMBEDDING, GGUF_OUTPUT = "token_embd.weight", "output.weight"

# Meta's params.json (the original Llama releases) -> config field.
META_PARAMS = "params.json"
META_FIELDS = (
    ("dim", "hidden_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("n_kv_heads", "num_key_value_heads"),
    ("norm_eps", "rms_norm_eps"),
    ("rope_theta", "rope_theta"),
    ("max_seq_len", "max_position_embeddings"),
)
META_EMBEDDING, META_OUTPUT, META_GATE = "tok_embeddings.weight", "output.weight", "layers.0.feed_forward.w1.weight"


def _first_dim(tensors: dict[str, TensorInfo], name: str) -> int | None:
    tensor = tensors.get(name)
    return tensor.shape[0] if tensor is not None and tensor.shape else None


def from_gguf(path: str, metadata: dict[str, Any], tensors: dict[str, TensorInfo]) -> dict[str, Any]:
    arch = metadata.get(KEY_ARCHITECTURE)
    if arch not in GGUF_ARCHITECTURES:
        known = ", ".join(GGUF_ARCHITECTURES)
        raise AnatomyError(path, f"a GGUF architecture that maps to a transformers config ({known})", escape(repr(arch)), "params and values work; config, summary and tree need a config.json")
    model_type, class_name = GGUF_ARCHITECTURES[arch]
    config: dict[str, Any] = {"architectures": [class_name], "model_type": model_type}
    for key, field in GGUF_FIELDS:
        value = metadata.get(f"{arch}.{key}")
        if value is not None:
            config[field] = value
    for key, field in GGUF_TOKEN_FIELDS:
        if key in metadata:
            config[field] = metadata[key]
    tokens = metadata.get(KEY_TOKENS)
    vocab = _first_dim(tensors, GGUF_EMBEDDING) or getattr(tokens, "item_count", None) or metadata.get(f"{arch}.vocab_size")
    if vocab is not None:
        config["vocab_size"] = vocab
    config["tie_word_embeddings"] = GGUF_OUTPUT not in tensors
    return config


def _meta_intermediate_size(params: dict[str, Any]) -> int | None:
    """Meta's FeedForward: 2/3 of 4*dim, times ffn_dim_multiplier, rounded up to multiple_of."""
    dim, multiple_of = params.get("dim"), params.get("multiple_of")
    if not isinstance(dim, int) or not isinstance(multiple_of, int) or multiple_of <= 0:
        return None
    hidden = int(2 * (4 * dim) / 3)
    if isinstance(params.get("ffn_dim_multiplier"), (int, float)):
        hidden = int(params["ffn_dim_multiplier"] * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def from_meta_params(path: str, tensors: dict[str, TensorInfo]) -> dict[str, Any]:
    params, error = read_json_object(path, "Meta's params.json")
    if error is not None:
        raise error
    config: dict[str, Any] = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    for key, field in META_FIELDS:
        if params.get(key) is not None:
            config[field] = params[key]
    intermediate = _first_dim(tensors, META_GATE) or _meta_intermediate_size(params)
    if intermediate is not None:
        config["intermediate_size"] = intermediate
    vocab = params.get("vocab_size")
    config["vocab_size"] = vocab if isinstance(vocab, int) and vocab > 0 else _first_dim(tensors, META_EMBEDDING)
    config["tie_word_embeddings"] = META_OUTPUT not in tensors
    return config


def derive(root: str, files: Sequence[str], tensors: Sequence[TensorInfo], metadata: dict[str, Any], formats: set[str]) -> tuple[dict[str, Any] | None, AnatomyError | None]:
    """(config, None), or (None, why not) for GGUF files and Meta releases; (None, None) otherwise."""
    by_name = {t.name: t for t in tensors}
    try:
        if "gguf" in formats:
            return from_gguf(files[0], metadata, by_name), None
        params = os.path.join(root, META_PARAMS)
        if "torch" in formats and os.path.isfile(params):
            return from_meta_params(params, by_name), None
    except AnatomyError as exc:
        return None, exc
    return None, None
