"""A Hugging Face style config.json derived from a checkpoint that carries none: GGUF
metadata (`llama.block_count`, ...) or Meta's params.json (`dim`, `n_layers`, ...).

With it, config, summary and tree work on GGUF files and Meta releases as on a
transformers folder. Fields are named and valued as transformers' own converters
(convert_llama_weights_to_hf.py, gguf loading in transformers) would write them."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

from ..core.catalog import TensorInfo
from ..core.config_schema import check_meta_params
from ..core.errors import AnatomyError, ConfigUnavailable
from ..core.text import escape
from ..core.ggml_types import KEY_ARCHITECTURE, KEY_TOKENS
from ..io.bounded_json import read_json_object
from .gguf_archs import ARCHITECTURES, RENAMED, RENAMED_ROWS, TOKEN_FIELDS, VALUE_NAMES, Arch

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


def gguf_architecture(metadata: dict[str, Any]) -> tuple[str, Arch] | tuple[Any, None]:
    """(the metadata key prefix, its table row), or (general.architecture, None) when transformers maps no config for it."""
    arch = metadata.get(KEY_ARCHITECTURE)
    name = metadata.get("general.name")
    row = next(
        (row for renamed, test, row in RENAMED if arch == renamed and isinstance(name, str) and test(name)), arch
    )
    return arch, ARCHITECTURES.get(row) if isinstance(row, str) else None


def _per_layer(value: Any) -> Any:
    """A per-layer array (LFM2's head_count_kv: 0 for convolution layers): its largest entry, as transformers takes it."""
    items = getattr(value, "items", None)
    return max(items) if items else value


def _named(field: str, value: Any) -> Any:
    """A number GGUF stores for a setting transformers names (VALUE_NAMES), as its name."""
    if field not in VALUE_NAMES or not isinstance(value, int):
        return value
    names, default = VALUE_NAMES[field]
    return names.get(value, default)


def from_gguf(path: str, metadata: dict[str, Any], tensors: dict[str, TensorInfo]) -> dict[str, Any]:
    arch, row = gguf_architecture(metadata)
    if row is None:
        known = ", ".join(a for a in ARCHITECTURES if a not in RENAMED_ROWS)
        raise ConfigUnavailable(
            path,
            f"a GGUF architecture that maps to a transformers config ({known})",
            escape(repr(arch)),
            "params, values and tree (by tensor names) work; config needs a config.json",
        )
    config: dict[str, Any] = {"architectures": [row.class_name], "model_type": row.model_type}
    for key, field in row.fields:
        value = metadata.get(f"{arch}.{key}")
        if value is not None and field not in config:
            config[field] = _named(field, _per_layer(value))
    for key, field in TOKEN_FIELDS:
        if key in metadata:
            config[field] = metadata[key]
    tokens = metadata.get(KEY_TOKENS)
    vocab = _first_dim(tensors, GGUF_EMBEDDING) or config.get("vocab_size") or getattr(tokens, "item_count", None)
    if vocab is not None:
        config["vocab_size"] = vocab
    if tensors:  # a vocabulary-only file says nothing about them: the class defaults stand
        config["tie_word_embeddings"] = GGUF_OUTPUT not in tensors
        for field, tensor, value in row.tensor_flags:
            config[field] = value if tensor in tensors else not value
    config.update(row.constants)
    layout = LAYOUTS.get(row.model_type)
    if layout is not None:
        layout(lambda key: metadata.get(f"{arch}.{key}"), tensors, config)
    return config


def _items(value: Any) -> tuple | None:
    """The items of a per-layer array, None for a scalar or a missing key."""
    return getattr(value, "items", None)


def _lfm2_layout(get: Callable[[str], Any], tensors: dict[str, TensorInfo], config: dict[str, Any]) -> None:
    """LFM2's head_count_kv is 0 for its convolution layers."""
    kv_heads = _items(get("attention.head_count_kv"))
    if kv_heads:
        config["layer_types"] = ["full_attention" if n > 0 else "conv" for n in kv_heads]


def _gemma4_layout(get: Callable[[str], Any], tensors: dict[str, TensorInfo], config: dict[str, Any]) -> None:
    """Gemma-4's per-layer settings, as llama.cpp's Gemma4Model writes them: the sliding/full
    pattern, KV heads and feed-forward sizes as per-layer arrays (the full layers' KV heads differ
    when the model has global KV heads; the KV-sharing layers' MLPs are twice as wide when it has
    double-wide MLPs); the full and sliding rope bases; experts, when it has a MoE block; keys
    that are also the values on full layers (attention_k_eq_v) only as a missing attn_v tensor."""
    sliding = _items(get("attention.sliding_window_pattern"))
    if sliding:
        config["layer_types"] = ["sliding_attention" if s else "full_attention" for s in sliding]
    kv_heads = _items(get("attention.head_count_kv"))
    if kv_heads and sliding and len(kv_heads) == len(sliding):
        by_type: dict[bool, int] = {}  # the first layer of each type
        for is_sliding, heads in zip(sliding, kv_heads):
            by_type.setdefault(bool(is_sliding), heads)
        config["num_key_value_heads"] = by_type.get(True, max(kv_heads))
        if False in by_type:
            config["num_global_key_value_heads"] = by_type[False]
    widths = _items(get("feed_forward_length"))
    if widths:
        config["intermediate_size"] = widths[0]
        config["use_double_wide_mlp"] = any(w != widths[0] for w in widths)
    full, local = get("rope.freq_base"), get("rope.freq_base_swa")
    if full is not None or local is not None:
        # The full layers' partial rotary factor is written only as rope_freqs' values (1e30
        # for unrotated pairs); every Gemma-4 has 0.25, the class default.
        config["rope_parameters"] = {
            "sliding_attention": {
                "rope_type": "default",
                "rope_theta": local if local is not None else GEMMA4_ROPE_THETA["sliding_attention"],
            },
            "full_attention": {
                "rope_type": "proportional",
                "partial_rotary_factor": 0.25,
                "rope_theta": full if full is not None else GEMMA4_ROPE_THETA["full_attention"],
            },
        }
    if config.get("num_experts"):
        config["enable_moe_block"] = True
    if config.get("hidden_size_per_layer_input"):
        config["vocab_size_per_layer_input"] = _first_dim(tensors, "per_layer_token_embd.weight") or config.get(
            "vocab_size"
        )
    first_full = next((i for i, s in enumerate(sliding or ()) if not s), None)
    if first_full is not None and f"blk.{first_full}.attn_k.weight" in tensors:
        config["attention_k_eq_v"] = f"blk.{first_full}.attn_v.weight" not in tensors


GEMMA4_ROPE_THETA = {"sliding_attention": 10_000.0, "full_attention": 1_000_000.0}  # Gemma4TextConfig's defaults
# model_type -> what the per-layer arrays and tensors of its GGUF set beyond the table's fields.
LAYOUTS = {"lfm2": _lfm2_layout, "gemma4_text": _gemma4_layout}


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
    check_meta_params(path, params)
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


def derive(
    root: str, files: Sequence[str], tensors: Sequence[TensorInfo], metadata: dict[str, Any], formats: set[str]
) -> tuple[dict[str, Any] | None, AnatomyError | None]:
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
