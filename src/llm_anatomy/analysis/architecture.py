"""Facts derived from a config: head size, attention kind, KV heads, FFN kind, context.

Families spell the same quantity differently (GPT-2's n_embd is Llama's hidden_size and
T5's d_model); FIELD_ALIASES maps each quantity to its spellings, and small tables hold
the few family rules (which layers slide, which are mixture-of-experts, how a RoPE
scaling type changes the context), so no family has its own code path. Nothing here
raises on bad input: config_schema first leaves out every field of the wrong type or out
of range, and what cannot be derived is None, plus a Finding naming the field."""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Callable

from ..core.config_schema import Finding, validate
from ..core.dtypes import CONFIG_DTYPE_NAMES
from ..core.text import escape

# Quantity -> config field names that hold it, most common first.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim", "model_dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"),
    "head_dim": ("head_dim", "head_size", "kv_channels"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "ffn_hidden_size"),
    "vocab_size": ("vocab_size", "n_vocab", "padded_vocab_size"),
    "context_length": ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"),
    "num_experts": ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "moe_top_k", "num_experts_per_token", "top_k_experts"),
    "num_shared_experts": ("n_shared_experts", "num_shared_experts"),
    "moe_intermediate_size": ("moe_intermediate_size",),
    "shared_intermediate_size": ("shared_expert_intermediate_size",),
    "kv_lora_rank": ("kv_lora_rank",),
    "q_lora_rank": ("q_lora_rank",),
    "qk_rope_head_dim": ("qk_rope_head_dim",),
    "qk_nope_head_dim": ("qk_nope_head_dim",),
    "v_head_dim": ("v_head_dim",),
    "sliding_window": ("sliding_window",),
    "type_vocab_size": ("type_vocab_size",),
    "mtp_layers": ("num_nextn_predict_layers",),
}

# Quantities a config may set to 0 to mean "none" (Qwen2-MoE writes sliding_window 0):
# exactly those whose fields config_schema lets be 0.
ZERO_MEANS_NONE = frozenset(
    {
        "mtp_layers",
        "sliding_window",
        "num_experts",
        "experts_per_token",
        "num_shared_experts",
        "q_lora_rank",
        "kv_lora_rank",
        "shared_intermediate_size",
        "moe_intermediate_size",
        "type_vocab_size",
        "head_dim",
        "qk_rope_head_dim",
        "qk_nope_head_dim",
        "v_head_dim",
    }
)

# Families whose feed-forward block is up -> activation -> down (two matrices) rather
# than the gated SwiGLU/GeGLU form (gate, up, down: three matrices).
UNGATED_FFN_MODEL_TYPES = frozenset(
    {
        "gpt2",
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "electra",
        "gpt_neox",
        "gptj",
        "gpt_neo",
        "opt",
        "phi",
        "falcon",
        "starcoder2",
        "bloom",
    }
)

# Families that learn a position-embedding table (max positions x hidden) instead of RoPE.
LEARNED_POSITION_MODEL_TYPES = frozenset(
    {"gpt2", "bert", "roberta", "xlm-roberta", "distilbert", "electra", "gpt_neo", "opt"}
)

# Families of encoders: every token attends to the whole input in one pass, so nothing is
# cached between steps (no KV cache), unless config.json sets is_decoder (BertLMHeadModel).
ENCODER_MODEL_TYPES = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "electra",
        "albert",
        "camembert",
        "deberta",
        "deberta-v2",
        "mpnet",
        "ernie",
        "modernbert",
        "nomic_bert",
        "xlm",
        "flaubert",
        "megatron-bert",
        "roformer",
        "data2vec-text",
        "xlm-roberta-xl",
        "nezha",
        "mobilebert",
        "squeezebert",
        "layoutlm",
        "canine",
        "funnel",
        "ibert",
        "esm",
    }
)

# tie_word_embeddings when config.json leaves it out: transformers' PretrainedConfig
# default is True; these families' config classes default to False.
UNTIED_BY_DEFAULT = frozenset(
    {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "deepseek_v2", "deepseek_v3"}
)

# architectures[] suffixes of models that end in an output head over the vocabulary.
HEAD_ARCHITECTURE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForMaskedLM")


def _every_other(config: dict[str, Any], layers: int) -> list[int]:
    return [i for i in range(layers) if (i + 1) % 2]


def _pattern(config: dict[str, Any], layers: int) -> list[int]:
    period = config.get("sliding_window_pattern") or 6
    return [i for i in range(layers) if (i + 1) % period]


def _from_max_window_layers(config: dict[str, Any], layers: int) -> list[int]:
    if not config.get("use_sliding_window"):
        return []
    return [i for i in range(layers) if i >= (config.get("max_window_layers") or 0)]


# model_type -> which layers use the sliding window (as transformers builds layer_types
# for configs that do not list them). Other families: every layer, when sliding_window is set.
SLIDING_LAYER_RULES: dict[str, Callable[[dict[str, Any], int], list[int]]] = {
    "gemma2": _every_other,
    "gemma3": _pattern,
    "gemma3_text": _pattern,
    "cohere2": _pattern,
    "qwen2": _from_max_window_layers,
    "qwen2_moe": _from_max_window_layers,
    "qwen3": _from_max_window_layers,
    "qwen3_moe": _from_max_window_layers,
}


def _deepseek_moe_layers(config: dict[str, Any], layers: int) -> list[int]:
    first = config.get("first_k_dense_replace") or 0
    every = config.get("moe_layer_freq") or 1
    return [i for i in range(layers) if i >= first and i % every == 0]


def _qwen_moe_layers(config: dict[str, Any], layers: int) -> list[int]:
    dense = set(config.get("mlp_only_layers") or ())
    step = config.get("decoder_sparse_step") or 1
    return [i for i in range(layers) if i not in dense and (i + 1) % step == 0]


# The first of these fields present in a MoE config says which layers hold experts;
# when none is present (Mixtral), every layer does.
MOE_LAYER_RULES: tuple[tuple[str, Callable[[dict[str, Any], int], list[int]]], ...] = (
    ("first_k_dense_replace", _deepseek_moe_layers),
    ("decoder_sparse_step", _qwen_moe_layers),
    ("mlp_only_layers", _qwen_moe_layers),
)


def _scaled_original(rope: dict[str, Any], context: int | None) -> tuple[int | None, str]:
    factor = rope.get("factor")
    original = rope.get("original_max_position_embeddings")
    if isinstance(factor, (int, float)) and isinstance(original, int):
        return int(original * factor), f"original_max_position_embeddings {original} x factor {factor:g}"
    return _scaled_context(rope, context)


def _scaled_context(rope: dict[str, Any], context: int | None) -> tuple[int | None, str]:
    factor = rope.get("factor")
    if isinstance(factor, (int, float)) and context:
        return int(context * factor), f"max_position_embeddings {context} x factor {factor:g}"
    return _configured_context(rope, context)


def _configured_context(rope: dict[str, Any], context: int | None) -> tuple[int | None, str]:
    return context, f"max_position_embeddings {context}"


# RoPE scaling type -> (effective context, the fields and numbers it comes from).
# linear: positions divided by factor, the config keeps the trained length. yarn: the
# original length x factor (Qwen2.5, DeepSeek-V3). llama3, longrope: max_position_embeddings
# already is the extended length (Llama 3.1, Phi-3). dynamic: NTK scaling raises the RoPE
# base past max_position_embeddings with no fixed limit, so the configured length is reported.
# proportional (Gemma 4's full layers): partial rotation, no scaling.
ROPE_CONTEXT_RULES: dict[str, Callable[[dict[str, Any], int | None], tuple[int | None, str]]] = {
    "default": _configured_context,
    "linear": _scaled_context,
    "dynamic": _configured_context,
    "yarn": _scaled_original,
    "llama3": _configured_context,
    "longrope": _configured_context,
    "su": _configured_context,
    "proportional": _configured_context,
}


# Results are namedtuples, not dataclasses: importing dataclasses and decorating classes
# costs more than these header-only commands may spend (see catalog.py). Fields are
# documented in each class's docstring; _asdict() gives them as a dict.


class Phrase(str):
    """An English note that also carries its kind and values (as Finding does), so the report
    can word it in another language; text and JSON see a plain string."""

    def __new__(cls, text: str, kind: str, args: dict[str, Any]) -> "Phrase":
        phrase = super().__new__(cls, text)
        phrase.kind, phrase.args = kind, args
        return phrase


_ARCHITECTURE_FIELDS = (
    "model_type hidden_size num_layers num_heads num_kv_heads head_dim head_dim_source attention query_group_size "
    "kv_lora_rank q_lora_rank qk_rope_head_dim qk_nope_head_dim v_head_dim "
    "ffn gated_ffn intermediate_size num_experts experts_per_token num_shared_experts moe_intermediate_size shared_intermediate_size moe_layers "
    "vocab_size type_vocab_size learned_positions context_length rope_type effective_context effective_context_source "
    "tied_embeddings has_output_head encoder_only sliding_window sliding_layers layer_attention dense_mlp_sizes mtp_layers dtype fields findings"
)


class Architecture(namedtuple("Architecture", _ARCHITECTURE_FIELDS)):
    """What a config says about the model's shape. None means the config does not say
    (a Finding explains why). Counts are ints; besides the self-explaining ones:

    num_kv_heads: None for MLA (keys and values come from one latent)
    head_dim: per query/key head; MLA: qk_nope_head_dim + qk_rope_head_dim
    head_dim_source: the config field, or how it was computed ("hidden_size / num_attention_heads")
    attention: "MHA", "GQA", "MQA" or "MLA"; query_group_size: query heads per KV head
    ffn: "dense" or "MoE"; gated_ffn: gate, up, down (SwiGLU) rather than up, down
    moe_layers: indices of the layers that hold experts
    shared_intermediate_size: inner size of the whole shared-expert block
    learned_positions: a position-embedding table (GPT-2, BERT) rather than RoPE
    effective_context: context after RoPE scaling; effective_context_source: the fields behind it
    tied_embeddings: output head shares the embedding matrix (config value or family default)
    has_output_head: from architectures[]; None when config.json names none
    encoder_only: an encoder (BERT): attends over the whole input at once and caches nothing
    sliding_window: window size when some layer uses it; sliding_layers: those layers
    layer_attention: one LayerAttention per layer when layers differ in their attention (Gemma 4:
        full layers with their own head size and KV heads, layers reusing earlier layers' KV), else ()
    dense_mlp_sizes: each layer's dense MLP inner size when that is not simply intermediate_size
        in the layers without experts (Gemma 4: a dense MLP beside the experts in every layer,
        twice as wide in the KV-sharing layers with use_double_wide_mlp), else ()
    mtp_layers: multi-token-prediction layers stored after the last layer (DeepSeek-V3), or None
    dtype: torch_dtype as a dtypes-table name ("F16")
    fields: quantity -> the config field it was read from ("hidden_size" -> "n_embd")
    findings: tuple of Finding
    """

    __slots__ = ()


class LayerAttention(namedtuple("LayerAttention", "head_dim kv_heads keys values")):
    """One layer's attention: its head size and KV heads; keys, values: whether the layer has
    its own key and value projections (and so its own KV cache)."""

    __slots__ = ()


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _layer_attention(
    config: dict[str, Any], layers: int | None, head_dim: int | None, kv_heads: int | None
) -> tuple[LayerAttention, ...]:
    """Gemma 4's per-layer attention, as Gemma4TextConfig builds it: full-attention layers use
    global_head_dim (and num_global_key_value_heads when their keys are also their values, with
    no value projection); the last num_kv_shared_layers layers reuse earlier layers' keys and
    values. per_layer_config (how transformers saves it) gives the same per layer."""
    if not layers or head_dim is None or kv_heads is None or not isinstance(config.get("layer_types"), list):
        return ()
    full = [kind == "full_attention" for kind in config["layer_types"][:layers]] + [False] * layers
    k_eq_v = config.get("attention_k_eq_v") is True
    global_dim = _positive(config.get("global_head_dim"))
    global_kv = _positive(config.get("num_global_key_value_heads")) if k_eq_v else None
    saved = config.get("per_layer_config")  # keys are layer numbers as strings, zero-padded ("05")
    per_layer = (
        {int(k): v for k, v in saved.items() if isinstance(k, str) and k.isdigit() and isinstance(v, dict)}
        if isinstance(saved, dict)
        else {}
    )
    shared = _positive(config.get("num_kv_shared_layers")) or 0
    result = []
    for i in range(layers):
        own = per_layer.get(i, {})
        dim = _positive(own.get("head_dim")) or (global_dim if full[i] else None) or head_dim
        heads = _positive(own.get("num_key_value_heads")) or (global_kv if full[i] else None) or kv_heads
        keys = i < layers - shared
        result.append(LayerAttention(dim, heads, keys, keys and not (k_eq_v and full[i])))
    return tuple(result) if len(set(result)) > 1 or result[0] != LayerAttention(head_dim, kv_heads, True, True) else ()


def _dense_mlp_sizes(config: dict[str, Any], layers: int | None, intermediate: int | None) -> tuple[int, ...]:
    """Gemma 4's dense MLPs: in every layer, beside the MoE block (enable_moe_block), and twice
    as wide in the last num_kv_shared_layers layers (use_double_wide_mlp)."""
    double = config.get("use_double_wide_mlp") is True
    if not layers or intermediate is None or not (double or config.get("enable_moe_block") is True):
        return ()
    first_shared = layers - (_positive(config.get("num_kv_shared_layers")) or 0)
    return tuple(intermediate * (2 if double and i >= first_shared else 1) for i in range(layers))


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs (Gemma 3, Llava) nest the language model under text_config."""
    nested = config.get("text_config")
    if isinstance(nested, dict) and not any(name in config for name in FIELD_ALIASES["hidden_size"]):
        return nested
    return config


class _Reader:
    """Reads quantities by alias from a validated config, recording which field each came
    from and what was missing. invalid: the fields validation left out (already findings)."""

    def __init__(self, config: dict[str, Any], invalid: set[str], findings: tuple[Finding, ...]) -> None:
        self.config = config
        self.invalid = invalid
        self.fields: dict[str, str] = {}
        self.findings: list[Finding] = list(findings)

    def integer(self, quantity: str, needed_for: str | None = None) -> int | None:
        """The quantity (a positive int, validated); None (plus a finding if needed_for) otherwise."""
        for name in FIELD_ALIASES[quantity]:
            if name in self.invalid:
                return None
            value = self.config.get(name)
            if value is None or value == 0 and quantity in ZERO_MEANS_NONE:
                continue
            self.fields[quantity] = name
            return value
        if needed_for:
            names = FIELD_ALIASES[quantity]
            spelled = names[0] + (f" (or {', '.join(names[1:])})" if len(names) > 1 else "")
            self.findings.append(
                Finding(
                    "config.json",
                    f"{spelled} for {needed_for}",
                    "no such field",
                    kind="missing_field",
                    args={"field": names[0], "others": ", ".join(names[1:]), "need": needed_for},
                )
            )
        return None


def _rope(config: dict[str, Any]) -> dict[str, Any]:
    """rope_scaling (transformers 4) or rope_parameters (5; per layer type in Gemma 3)."""
    for name in ("rope_scaling", "rope_parameters"):
        rope = config.get(name)
        if isinstance(rope, dict) and isinstance(rope.get("full_attention"), dict):
            rope = rope["full_attention"]
        if isinstance(rope, dict):
            return rope
    return {}


def _attention(read: _Reader, heads: int | None, kv_heads: int | None) -> tuple[str | None, int | None]:
    if read.config.get("kv_lora_rank"):
        return "MLA", None
    if heads is None or kv_heads is None:
        return None, None
    if heads % kv_heads:
        read.findings.append(
            Finding(
                "config.json",
                f"{read.fields['num_heads']} {heads} to be a multiple of {read.fields['num_kv_heads']}",
                str(kv_heads),
                kind="heads_multiple",
                args={
                    "heads_field": read.fields["num_heads"],
                    "heads": heads,
                    "kv_field": read.fields["num_kv_heads"],
                    "kv": kv_heads,
                },
            )
        )
        return None, None
    if kv_heads == heads:
        return "MHA", 1
    return ("MQA" if kv_heads == 1 else "GQA"), heads // kv_heads


def _head_dim(read: _Reader, hidden: int | None, heads: int | None) -> tuple[int | None, str]:
    explicit = read.integer("head_dim")
    if explicit is not None:
        return explicit, read.fields["head_dim"]
    if hidden is None or heads is None:
        return None, "unknown"
    if hidden % heads:
        read.findings.append(
            Finding(
                "config.json",
                f"{read.fields['hidden_size']} {hidden} divisible by {read.fields['num_heads']} {heads}, or a head_dim field",
                "neither",
                kind="head_dim_divisible",
                args={
                    "hidden_field": read.fields["hidden_size"],
                    "hidden": hidden,
                    "heads_field": read.fields["num_heads"],
                    "heads": heads,
                },
            )
        )
        return None, "unknown"
    return hidden // heads, f"{read.fields['hidden_size']} / {read.fields['num_heads']}"


def _sliding_layers(
    config: dict[str, Any], model_type: str | None, layers: int | None, window: int | None
) -> tuple[int, ...]:
    if window is None or not layers:
        return ()
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list):
        return tuple(i for i, kind in enumerate(layer_types[:layers]) if kind == "sliding_attention")
    rule = SLIDING_LAYER_RULES.get(model_type or "")
    return tuple(rule(config, layers)) if rule else tuple(range(layers))


def _moe_layers(config: dict[str, Any], layers: int | None) -> tuple[int, ...]:
    for name, rule in MOE_LAYER_RULES:
        if name in config:
            return tuple(rule(config, layers or 0))
    return tuple(range(layers or 0))


def _tied(read: _Reader, model_type: str | None) -> bool:
    value = read.config.get("tie_word_embeddings")
    if isinstance(value, bool):
        read.fields["tied_embeddings"] = "tie_word_embeddings"  # said, not assumed
        return value
    return model_type not in UNTIED_BY_DEFAULT


def _has_output_head(config: dict[str, Any]) -> bool | None:
    names = config.get("architectures")
    if not isinstance(names, list) or not names:
        return None
    return any(isinstance(n, str) and n.endswith(HEAD_ARCHITECTURE_SUFFIXES) for n in names)


def _intermediate(read: _Reader, hidden: int | None) -> int | None:
    value = read.integer("intermediate_size")
    if value is None and "n_inner" in read.config and read.config["n_inner"] is None and hidden:
        # GPT-2 writes n_inner: null and means 4 x n_embd.
        read.fields["intermediate_size"] = "4 x n_embd (n_inner is null)"
        return 4 * hidden
    return value


def derive(config: dict[str, Any]) -> Architecture:
    """Everything the config implies about the model's shape; invalid fields and gaps become findings."""
    nested = _text_config(config) is not config
    checked = validate(config)
    raw, config = (config["text_config"], checked.config["text_config"]) if nested else (config, checked.config)
    model_type = config.get("model_type")
    read = _Reader(config, {name for name in raw if name not in config}, checked.findings)
    hidden = read.integer("hidden_size", "the model width")
    layers = read.integer("num_layers", "the layer count")
    heads = read.integer("num_heads", "the attention heads")
    kv_heads = read.integer("num_kv_heads")
    if kv_heads is None and heads is not None and not config.get("kv_lora_rank"):
        kv_heads = heads  # no KV-head field: every query head has its own keys and values
        read.fields["num_kv_heads"] = read.fields["num_heads"]
    attention, group = _attention(read, heads, kv_heads)
    rope_dim = read.integer("qk_rope_head_dim", "the MLA key cache") if attention == "MLA" else None
    nope_dim = read.integer("qk_nope_head_dim")
    if attention == "MLA":
        kv_heads = None
        # MLA heads are not hidden_size / heads wide: queries and keys have a no-position and a RoPE part.
        head_dim, head_dim_source = (
            (nope_dim + rope_dim, "qk_nope_head_dim + qk_rope_head_dim") if nope_dim and rope_dim else (None, "unknown")
        )
    else:
        head_dim, head_dim_source = _head_dim(read, hidden, heads)
    num_experts = read.integer("num_experts")
    experts_per_token = read.integer("experts_per_token", "the experts used per token") if num_experts else None
    if experts_per_token and experts_per_token > num_experts:
        fields = {
            "per_token_field": read.fields["experts_per_token"],
            "experts_field": read.fields["num_experts"],
            "experts": num_experts,
            "value": experts_per_token,
        }
        read.findings.append(
            Finding(
                "config.json",
                f"{read.fields['experts_per_token']} at most {read.fields['num_experts']} {num_experts}",
                str(experts_per_token),
                kind="too_many_experts",
                args=fields,
            )
        )
        experts_per_token = None
    window = read.integer("sliding_window")
    sliding = _sliding_layers(config, model_type, layers, window)
    rope = _rope(config)
    rope_type = rope.get("rope_type") or rope.get("type") if rope else None
    context = read.integer("context_length")
    rule = ROPE_CONTEXT_RULES.get(rope_type or "default")
    if rule is None:
        read.findings.append(
            Finding(
                "config.json",
                f"a RoPE scaling type this tool knows ({', '.join(ROPE_CONTEXT_RULES)})",
                escape(repr(rope_type)),
                kind="rope_type",
                args={"known": ", ".join(ROPE_CONTEXT_RULES), "value": escape(repr(rope_type))},
            )
        )
        rule = _configured_context
    effective, effective_source = rule(rope, context)
    torch_dtype = config.get("torch_dtype") or config.get("dtype")
    shared = read.integer("shared_intermediate_size")
    moe_inter = read.integer("moe_intermediate_size")
    num_shared = read.integer("num_shared_experts")
    if shared is None and num_shared and moe_inter:
        shared = num_shared * moe_inter
    intermediate = _intermediate(read, hidden)
    layer_attention = _layer_attention(config, layers, head_dim, kv_heads) if attention != "MLA" else ()
    if layer_attention:  # where the full layers' sizes were read, for messages
        read.fields["global_head_dim"] = (
            "global_head_dim" if "global_head_dim" in config else "per_layer_config head_dim"
        )
        read.fields["global_kv_heads"] = (
            "num_global_key_value_heads"
            if "num_global_key_value_heads" in config
            else "per_layer_config num_key_value_heads"
        )
    return Architecture(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        head_dim_source=head_dim_source,
        attention=attention,
        query_group_size=group,
        kv_lora_rank=read.integer("kv_lora_rank"),
        q_lora_rank=read.integer("q_lora_rank"),
        qk_rope_head_dim=rope_dim,
        qk_nope_head_dim=nope_dim,
        v_head_dim=read.integer("v_head_dim"),
        ffn="MoE" if num_experts else "dense",
        gated_ffn=model_type not in UNGATED_FFN_MODEL_TYPES,
        intermediate_size=intermediate,
        num_experts=num_experts,
        experts_per_token=experts_per_token,
        num_shared_experts=num_shared,
        moe_intermediate_size=moe_inter,
        shared_intermediate_size=shared,
        moe_layers=_moe_layers(config, layers) if num_experts else (),
        vocab_size=read.integer("vocab_size", "the vocabulary"),
        type_vocab_size=read.integer("type_vocab_size"),
        learned_positions=model_type in LEARNED_POSITION_MODEL_TYPES,
        context_length=context,
        rope_type=rope_type,
        effective_context=effective,
        effective_context_source=effective_source,
        tied_embeddings=_tied(read, model_type),
        has_output_head=_has_output_head(config),
        encoder_only=model_type in ENCODER_MODEL_TYPES and config.get("is_decoder") is not True,
        sliding_window=window if sliding else None,  # Qwen2 sets a window but disables it
        sliding_layers=sliding,
        layer_attention=layer_attention,
        dense_mlp_sizes=_dense_mlp_sizes(config, layers, intermediate),
        mtp_layers=read.integer("mtp_layers"),
        dtype=CONFIG_DTYPE_NAMES.get(torch_dtype) if isinstance(torch_dtype, str) else None,
        fields=dict(read.fields),
        findings=tuple(read.findings),
    )
