"""Memory a model needs: its weights in each precision, and the KV cache per token and
for a table of context lengths and batch sizes, with the formula that produced them."""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Callable, Sequence

    from ..core.catalog import Catalog

from ..core.dtypes import DTYPES
from .architecture import Architecture

# Precisions the weight table always shows: (label, bits per weight).
WEIGHT_PRECISIONS: tuple[tuple[str, float], ...] = (("fp32", 32), ("bf16/fp16", 16), ("int8", 8), ("int4", 4))

# GGML quant types also shown, their bits per weight from DTYPES (per-block scales included).
GGUF_PRECISIONS = ("Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q4_0", "Q3_K", "Q2_K")

# --kv-dtype choices: bytes per cached element.
KV_DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}

# Stored/config dtype -> the KV cache dtype a runtime uses by default (the compute dtype).
KV_DTYPE_FOR = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}

DEFAULT_CONTEXTS = (1024, 4096, 8192, 32768, 131072)
DEFAULT_BATCHES = (1,)


# Results are namedtuples, not dataclasses, for import speed (see architecture.py).


class WeightMemory(namedtuple("WeightMemory", "label bits_per_weight nbytes")):
    """Weights at one precision: label ("stored", "fp32", "int4", "Q4_K", ...), bits per weight, bytes."""

    __slots__ = ()


class KVCacheRow(namedtuple("KVCacheRow", "context batch nbytes beyond_context")):
    """KV cache bytes for `batch` sequences of `context` tokens; beyond_context: longer than
    the model's context (see ContextLimit)."""

    __slots__ = ()


class KVCache(namedtuple("KVCache", "dtype bytes_per_token rows formula")):
    """Bytes the attention cache holds: dtype (a KV_DTYPE_BYTES key), bytes per token over all
    layers before any sliding-window cap, KVCacheRow rows, and the formula as lines a reader
    can check the numbers with."""

    __slots__ = ()


class ContextLimit(namedtuple("ContextLimit", "tokens source beyond")):
    """The longest context the model was made for (after RoPE scaling), the config fields it
    comes from ("max_position_embeddings 4096"), and the asked-for contexts beyond it."""

    __slots__ = ()


class Memory(namedtuple("Memory", "params stored_nbytes weights kv_cache kv_cache_note context_limit")):
    """Weights memory ("stored" first, then each precision) and the KV cache: None when the
    config lacks what its size needs, or when the model keeps none (kv_cache_note says why:
    an encoder). context_limit: ContextLimit, or None when the config names no context."""

    __slots__ = ()


def weight_table(params: int, stored_nbytes: int) -> tuple[WeightMemory, ...]:
    stored_bits = stored_nbytes * 8 / params if params else 0.0
    precisions = WEIGHT_PRECISIONS + tuple((name, DTYPES[name].bits_per_weight) for name in GGUF_PRECISIONS)
    return (WeightMemory("stored", stored_bits, stored_nbytes),) + tuple(
        WeightMemory(label, bits, round(params * bits / 8)) for label, bits in precisions
    )


def _per_layer(arch: Architecture, element_bytes: int, dtype: str) -> tuple[int, str] | None:
    """Bytes one layer caches per token, and how: MLA caches one latent, others K and V."""
    f = arch.fields
    if arch.attention == "MLA" and arch.kv_lora_rank and arch.qk_rope_head_dim:
        return (
            (arch.kv_lora_rank + arch.qk_rope_head_dim) * element_bytes,
            f"(kv_lora_rank {arch.kv_lora_rank} + qk_rope_head_dim {arch.qk_rope_head_dim}) x {element_bytes} bytes ({dtype})",
        )
    if arch.num_kv_heads and arch.head_dim:
        return (
            2 * arch.num_kv_heads * arch.head_dim * element_bytes,
            f"2 (K and V) x {f['num_kv_heads']} {arch.num_kv_heads} x head_dim {arch.head_dim} x {element_bytes} bytes ({dtype})",
        )
    return None


def _layered_kv_cache(arch: Architecture, dtype: str, contexts: Sequence[int], batches: Sequence[int]) -> KVCache:
    """The KV cache when layers differ (arch.layer_attention, Gemma 4): each layer with its own
    keys and values caches 2 x its KV heads x its head_dim; the layers that reuse earlier
    layers' keys and values cache nothing."""
    element_bytes = KV_DTYPE_BYTES[dtype]
    f = arch.fields
    full_bytes = window_bytes = 0
    terms: dict[tuple[int, int], int] = {}
    for i, layer in enumerate(arch.layer_attention):
        if not layer.keys:
            continue
        nbytes = 2 * layer.kv_heads * layer.head_dim * element_bytes
        if i in arch.sliding_layers:
            window_bytes += nbytes
        else:
            full_bytes += nbytes
        terms[layer.kv_heads, layer.head_dim] = terms.get((layer.kv_heads, layer.head_dim), 0) + 1
    per_token = full_bytes + window_bytes
    caching = sum(terms.values())
    sum_text = " + ".join(f"{n} x {heads} KV heads x head_dim {dim}" for (heads, dim), n in terms.items())
    formula = [f"per token = 2 (K and V) x {element_bytes} bytes ({dtype}) x ({sum_text}) = {per_token:,} bytes"]
    if caching < len(arch.layer_attention):
        formula.append(
            f"{len(arch.layer_attention) - caching} of {len(arch.layer_attention)} layers reuse earlier layers' keys and values (num_kv_shared_layers) and cache none"
        )
    window = arch.sliding_window or 0
    if window_bytes:
        formula.append(
            f"cache = ({full_bytes:,} bytes x context + {window_bytes:,} bytes x min(context, {f.get('sliding_window', 'sliding_window')} {window})) x batch"
        )
    else:
        formula.append("cache = per token x context x batch")
    return KVCache(dtype, per_token, _rows(arch, full_bytes, window_bytes, contexts, batches), tuple(formula))


def kv_cache(arch: Architecture, dtype: str, contexts: Sequence[int], batches: Sequence[int]) -> KVCache | None:
    if arch.layer_attention:
        return _layered_kv_cache(arch, dtype, contexts, batches)
    element_bytes = KV_DTYPE_BYTES[dtype]
    per_layer = _per_layer(arch, element_bytes, dtype)
    if per_layer is None or not arch.num_layers:
        return None
    layer_bytes, how = per_layer
    layers = arch.num_layers
    per_token = layer_bytes * layers
    formula = [f"per token = {arch.fields['num_layers']} {layers} x {how} = {per_token:,} bytes"]
    sliding = len(arch.sliding_layers)
    window = arch.sliding_window or 0
    if sliding:
        formula.append(f"{sliding} of {layers} layers use sliding_window {window} and keep at most {window} tokens")
        formula.append(
            f"cache = {layer_bytes:,} bytes x ({layers - sliding} x context + {sliding} x min(context, {window})) x batch"
        )
    else:
        formula.append("cache = per token x context x batch")
    return KVCache(
        dtype,
        per_token,
        _rows(arch, layer_bytes * (layers - sliding), layer_bytes * sliding, contexts, batches),
        tuple(formula),
    )


def _rows(
    arch: Architecture, full_bytes: int, window_bytes: int, contexts: Sequence[int], batches: Sequence[int]
) -> tuple[KVCacheRow, ...]:
    """The cache at each context and batch: full_bytes (the full-attention layers' bytes per
    token) for every token, window_bytes (the sliding layers') for at most the window."""
    window = arch.sliding_window or 0
    return tuple(
        KVCacheRow(
            context,
            batch,
            (full_bytes * context + window_bytes * min(context, window)) * batch,
            context > _longest(arch),
        )
        for context in contexts
        for batch in batches
    )


def _longest(arch: Architecture | None) -> float:
    """The model's context in tokens (after RoPE scaling); infinite when the config names none."""
    return (arch and (arch.effective_context or arch.context_length)) or float("inf")


def context_limit(arch: Architecture | None, contexts: Sequence[int]) -> ContextLimit | None:
    longest = _longest(arch)
    if arch is None or longest == float("inf"):
        return None
    scaled = arch.effective_context and arch.effective_context != arch.context_length
    source = arch.effective_context_source if scaled else f"{arch.fields['context_length']} {arch.context_length}"
    return ContextLimit(int(longest), source, tuple(c for c in contexts if c > longest))


def default_contexts(arch: Architecture | None) -> tuple[int, ...]:
    """The usual lengths below the model's context, then the context itself."""
    longest = arch and (arch.effective_context or arch.context_length)
    if not longest:
        return DEFAULT_CONTEXTS[:2]
    return tuple(c for c in DEFAULT_CONTEXTS if c < longest) + (longest,)


def default_kv_dtype(arch: Architecture | None, loaded_dtype: Callable[[], str | None]) -> str:
    """The KV cache holds keys and values in the dtype the model computes in, as transformers
    loads the checkpoint by default (docs/kv-cache.md): config.json's dtype, else loaded_dtype()
    (asked for only then: the weights' dtype as from_pretrained(dtype="auto") settles on it,
    float32 for a GGUF), else torch's default, fp32."""
    if arch is not None and arch.dtype in KV_DTYPE_FOR:
        return KV_DTYPE_FOR[arch.dtype]
    return KV_DTYPE_FOR.get(loaded_dtype() or "", "fp32")


def loaded_dtype(catalog: Catalog | None) -> str | None:
    """The float dtype (F32, F16, BF16) from_pretrained(dtype="auto") loads this checkpoint in;
    None without one (a config alone)."""
    from .values import load_dtype

    return load_dtype(catalog) if catalog is not None else None


def kv_cache_of(
    arch: Architecture,
    catalog: Catalog | None,
    contexts: Sequence[int],
    batches: Sequence[int] | None = None,
    kv_dtype: str | None = None,
) -> tuple[KVCache | None, str | None]:
    """The KV cache `summary` shows (for `trace` too, so the two cannot disagree), or None and
    why there is none (an encoder; None when the config lacks what its size needs); its dtype:
    kv_dtype, else default_kv_dtype."""
    if arch.encoder_only:
        return (
            None,
            f"model_type {arch.model_type} is an encoder: it reads the whole input in one pass and caches no keys or values",
        )
    return kv_cache(
        arch, kv_dtype or default_kv_dtype(arch, lambda: loaded_dtype(catalog)), contexts, batches or DEFAULT_BATCHES
    ), None


def estimate(
    arch: Architecture | None,
    params: int,
    stored_nbytes: int,
    catalog: Catalog | None,
    contexts: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    kv_dtype: str | None = None,
) -> Memory:
    """Weights memory from the parameter count; KV cache from the architecture."""
    contexts = contexts or default_contexts(arch)
    cache, note = kv_cache_of(arch, catalog, contexts, batches, kv_dtype) if arch is not None else (None, None)
    return Memory(
        params, stored_nbytes, weight_table(params, stored_nbytes), cache, note, context_limit(arch, contexts)
    )
