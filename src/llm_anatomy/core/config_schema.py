"""The config fields the analyses and the skeleton builder read, each with the type and
range it must have: one table, checked once wherever a config is used.

A config is hostile input like any file: a string where a layer count belongs, a NaN RoPE
factor, 2**64-1 layers from a GGUF block_count. `validate` returns the config with every
invalid field left out plus a Finding for each, so the analyses see only sane values and
say what they dropped; `refuse_to_build` turns the first finding into the one-line error
of a command that must build the model from the config (tree, config, --style torch)."""

from __future__ import annotations

from collections import namedtuple
from math import isfinite

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from .errors import AnatomyError
from .text import escape


class Finding(namedtuple("Finding", "where expected found todo kind args", defaults=("", None, None))):
    """A gap or contradiction in the input, shaped like an AnatomyError line: where
    ("config.json" or a tensor name), what was expected, what was found, what to do.
    kind and args (a dict) name the sentence and its values, for renderers that word it in
    another language (the report's FINDINGS table); line() is the English."""

    __slots__ = ()

    line = AnatomyError.line  # the one spelling of "where: expected X, found Y; todo"


class Rule(namedtuple("Rule", "kind low high per_layer", defaults=(False,))):
    """kind: "int" (an integral float counts), "number" (int or finite float), "bool", "str",
    "object", or a list of one of them ("ints", "numbers", "strs", at most MAX_ITEMS long);
    low..high bound the numbers (inclusive). null always passes: the field is not set.
    per_layer: some real models give a list (per layer or stage: Gemma 3n's intermediate_size,
    Swin's num_heads) or an object (LXMERT's num_hidden_layers) of such numbers instead;
    transformers builds them, while the analyses, which need one number, report them."""

    __slots__ = ()


# The ranges are generous for any real model (DeepSeek-V3: 61 layers, 256 experts;
# Llama 3.1 405B: 126 layers, width 16,384; Llama 4: a 10M-token context) and small
# enough that no product of them overflows a float or a range().
MAX_LAYERS = 100_000
MAX_WIDTH = 2**20  # hidden size, FFN and LoRA ranks, head dims
MAX_HEADS = 2**16
MAX_VOCAB = 2**24
MAX_CONTEXT = 2**32
MAX_EXPERTS = 2**16
MAX_FACTOR = 10_000.0  # RoPE scaling factors and their companions
MAX_ITEMS = MAX_LAYERS  # list fields: layer lists, per-dimension RoPE factors, architectures

# Building the model on the meta device costs ~1 ms and ~0.1 MB per decoder layer
# (transformers 5, Llama): 2,048 layers take ~2 s. A config with more is refused before
# transformers is imported (a config with 10**8 layers took minutes and 1.8 GB).
MAX_BUILD_LAYERS = 2_048

INT, NUMBER, BOOL, STR, OBJECT = "int", "number", "bool", "str", "object"


def _ints(low: int, high: int) -> Rule:
    return Rule(INT, low, high)


def _per_layer(low: int, high: int) -> Rule:
    return Rule(INT, low, high, True)


# Top-level fields (and the same fields inside text_config and other *_config objects).
FIELDS: dict[str, Rule] = {
    # widths: hidden size under each family's spelling (Meta's params.json: dim)
    **dict.fromkeys(("hidden_size", "n_embd", "d_model", "dim", "model_dim"), _ints(1, MAX_WIDTH)),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers", "n_layers"), _per_layer(1, MAX_LAYERS)),
    **dict.fromkeys(("num_attention_heads", "n_head", "num_heads", "n_heads"), _per_layer(1, MAX_HEADS)),
    **dict.fromkeys(
        ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "multi_query_group_num"), _per_layer(1, MAX_HEADS)
    ),
    **dict.fromkeys(("head_dim", "head_size", "kv_channels"), _per_layer(0, MAX_WIDTH)),  # GLM-5 writes 0: not set
    **dict.fromkeys(
        ("intermediate_size", "n_inner", "ffn_dim", "d_ff", "ffn_hidden_size"), _per_layer(1, MAX_WIDTH * 16)
    ),
    **dict.fromkeys(("vocab_size", "n_vocab", "padded_vocab_size"), _ints(1, MAX_VOCAB)),
    **dict.fromkeys(
        ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"), _ints(1, MAX_CONTEXT)
    ),
    # mixtures of experts: 0 means none
    **dict.fromkeys(("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"), _ints(0, MAX_EXPERTS)),
    **dict.fromkeys(
        ("num_experts_per_tok", "moe_top_k", "num_experts_per_token", "top_k_experts"), _ints(0, MAX_EXPERTS)
    ),
    **dict.fromkeys(("n_shared_experts", "num_shared_experts"), _ints(0, MAX_EXPERTS)),
    **dict.fromkeys(("moe_intermediate_size", "shared_expert_intermediate_size"), _per_layer(0, MAX_WIDTH * 16)),
    "first_k_dense_replace": _ints(0, MAX_LAYERS),
    "moe_layer_freq": _ints(1, MAX_LAYERS),
    "decoder_sparse_step": _ints(1, MAX_LAYERS),
    "mlp_only_layers": Rule("ints", 0, MAX_LAYERS - 1),
    "num_nextn_predict_layers": _ints(0, MAX_LAYERS),
    # multi-head latent attention (DeepSeek-V2/V3)
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank"), _ints(0, MAX_WIDTH)),
    **dict.fromkeys(("qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"), _ints(0, MAX_WIDTH)),
    # sliding-window attention
    "sliding_window": _ints(0, MAX_CONTEXT),
    "sliding_window_pattern": _ints(1, MAX_LAYERS),
    "use_sliding_window": Rule(BOOL, None, None),
    "max_window_layers": _ints(0, MAX_LAYERS),
    "layer_types": Rule("strs", None, None),
    "type_vocab_size": _ints(0, MAX_VOCAB),  # DeBERTa: 0, no token types
    "tie_word_embeddings": Rule(BOOL, None, None),
    "architectures": Rule("strs", None, None),
    "model_type": Rule(STR, None, None),
    "torch_dtype": Rule(STR, None, None),
    "dtype": Rule(STR, None, None),
    "rope_scaling": Rule(OBJECT, None, None),
    "rope_parameters": Rule(OBJECT, None, None),
    "rope_theta": Rule(NUMBER, 0, 1e15),
    # Meta's params.json: the FFN width is 2/3 x 4 x dim x ffn_dim_multiplier, rounded up to multiple_of
    "ffn_dim_multiplier": Rule(NUMBER, 0.01, 100),
    "multiple_of": _ints(1, MAX_WIDTH),
    "norm_eps": Rule(NUMBER, 0, 1),
}

# Fields of rope_scaling / rope_parameters (and of their per-layer-type objects, Gemma 3).
ROPE_FIELDS: dict[str, Rule] = {
    "rope_type": Rule(STR, None, None),
    "type": Rule(STR, None, None),
    "factor": Rule(NUMBER, 0.001, MAX_FACTOR),
    "original_max_position_embeddings": _ints(1, MAX_CONTEXT),
    **dict.fromkeys(
        (
            "low_freq_factor",
            "high_freq_factor",
            "beta_fast",
            "beta_slow",
            "mscale",
            "mscale_all_dim",
            "attention_factor",
            "short_mscale",
            "long_mscale",
        ),
        Rule(NUMBER, 0, MAX_FACTOR),
    ),
    **dict.fromkeys(("short_factor", "long_factor"), Rule("numbers", 0, MAX_FACTOR)),
    "partial_rotary_factor": Rule(NUMBER, 0, MAX_FACTOR),
    "rope_theta": Rule(NUMBER, 0, 1e15),
}
ROPE_OBJECTS = ("rope_scaling", "rope_parameters")

# Meta's params.json writes vocab_size -1 for "from the tokenizer".
META_FIELDS: dict[str, Rule] = {**FIELDS, "vocab_size": _ints(-1, MAX_VOCAB)}

# Fields that count decoder layers, for the build limit.
LAYER_COUNTS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")

ITEM_KINDS = {"ints": INT, "numbers": NUMBER, "strs": STR}
KIND_TEXT = {INT: "an integer", NUMBER: "a finite number", BOOL: "true or false", STR: "a string", OBJECT: "an object"}
FOUND_WIDTH = 60  # characters of a found value shown in a finding


def _number_text(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) or not value.is_integer() else f"{int(value):,}"


def expected_text(name: str, rule: Rule) -> str:
    """'num_hidden_layers to be an integer in 1..100,000'."""
    item = ITEM_KINDS.get(rule.kind)
    what = f"a list of at most {MAX_ITEMS:,} items, each {KIND_TEXT[item]}" if item else KIND_TEXT[rule.kind]
    if rule.low is not None:
        what += f" in {_number_text(rule.low)}..{_number_text(rule.high)}"
    return f"{name} to be {what}"


# What a rule accepts in JSON's own notation, for sentences in other languages.
NOTATION = {BOOL: "true | false", STR: '"…"', OBJECT: "{…}"}


def accepted_notation(rule: Rule) -> str:
    """'1..100,000', 'true | false', '[0..99,999, …]': language-neutral."""
    item = ITEM_KINDS.get(rule.kind, rule.kind)
    one = f"{_number_text(rule.low)}..{_number_text(rule.high)}" if rule.low is not None else NOTATION[item]
    return f"[{one}, …]" if rule.kind in ITEM_KINDS else one


def found_text(value: object) -> str:
    """A value as config.json spells it, escaped and cut short; never str() of a huge int
    (past 4,300 digits that raises) and never a walk into a nested value."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        # str() of more than 4,300 digits raises; 13,000 bits are about 3,900 digits
        text = (
            str(value)
            if value.bit_length() <= 192
            else f"an integer of {len(str(value)) if value.bit_length() < 13_000 else 'over 3,900'} digits"
        )
    elif isinstance(value, float):
        text = (
            "NaN"
            if value != value
            else ("Infinity" if value == float("inf") else "-Infinity" if value == float("-inf") else repr(value))
        )
    elif isinstance(value, str):
        text = '"' + value[:FOUND_WIDTH] + '"'
    elif isinstance(value, dict):
        text = f"an object of {len(value):,} field{'' if len(value) == 1 else 's'}"
    elif isinstance(value, list):
        text = f"a list of {len(value):,} item{'' if len(value) == 1 else 's'}"
    else:
        text = type(value).__name__
    text = escape(text)
    return text if len(text) <= FOUND_WIDTH else text[: FOUND_WIDTH - 3] + "..."


def _scalar_ok(kind: str, rule: Rule, value: object) -> bool:
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str)
    if kind == OBJECT:
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and (not isfinite(value) or kind == INT and not value.is_integer()):
        return False
    return rule.low is None or rule.low <= value <= rule.high


def problem(rule: Rule, value: object, per_layer: bool = False) -> str | None:
    """Why value breaks rule (the found text), or None when it is fine. per_layer: a list or
    object of valid numbers passes too, where the rule allows it."""
    if value is None:
        return None
    item_kind = ITEM_KINDS.get(rule.kind)
    if per_layer and rule.per_layer and isinstance(value, (list, dict)):
        return problem(Rule("ints", rule.low, rule.high), list(value.values()) if isinstance(value, dict) else value)
    if item_kind is None:
        return None if _scalar_ok(rule.kind, rule, value) else found_text(value)
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        return found_text(value)
    for index, item in enumerate(value):
        if not _scalar_ok(item_kind, rule, item):
            return f"{found_text(item)} at index {index}"
    return None


class Checked(namedtuple("Checked", "config findings")):
    """config: a copy without the invalid fields (nested objects copied where they changed);
    findings: one Finding per invalid field, named by its path ("rope_scaling.factor")."""

    __slots__ = ()


class _Check(namedtuple("_Check", "rules where per_layer findings")):
    __slots__ = ()


def _check_object(config: dict[str, Any], check: _Check, prefix: str, rules: dict[str, Rule]) -> dict[str, Any]:
    clean = dict(config)
    for name, value in config.items():
        path = prefix + name
        rule = rules.get(name)
        if rule is not None:
            found = problem(rule, value, check.per_layer)
            if found is not None:
                check.findings.append(
                    Finding(
                        check.where,
                        expected_text(path, rule),
                        found,
                        kind="invalid_field",
                        args={"field": path, "value": found, "accepted": accepted_notation(rule)},
                    )
                )
                del clean[name]
                continue
            if rule.kind == INT and isinstance(value, float):
                clean[name] = int(value)  # 1200.0 layers are 1200 layers, and range() wants an int
        if not isinstance(value, dict):
            continue
        if name in ROPE_OBJECTS and rules is not ROPE_FIELDS:
            clean[name] = _check_rope(value, check, path + ".")
        elif name.endswith("_config") and rules is not ROPE_FIELDS and (check.per_layer or name == "text_config"):
            # The analyses read text_config; the builder builds vision_config, audio_config... too.
            clean[name] = _check_object(value, check, path + ".", rules)
    return clean


def _check_rope(rope: dict[str, Any], check: _Check, prefix: str) -> dict[str, Any]:
    """One set of RoPE fields, or one per layer type ({"full_attention": {...}, ...})."""
    if rope and all(isinstance(value, dict) for value in rope.values()):
        return {kind: _check_object(value, check, f"{prefix}{kind}.", ROPE_FIELDS) for kind, value in rope.items()}
    return _check_object(rope, check, prefix, ROPE_FIELDS)


def validate(
    config: dict[str, Any], where: str = "config.json", rules: dict[str, Rule] = FIELDS, per_layer: bool = False
) -> Checked:
    """The config without its invalid fields, and a finding for each one left out.
    per_layer: accept per-layer lists where a rule allows them (the builder's view)."""
    check = _Check(rules, where, per_layer, [])
    clean = _check_object(config, check, "", rules)
    return Checked(clean, tuple(check.findings))


def _layer_counts(config: dict[str, Any], prefix: str = ""):
    """(path, layer count) of a validated config and of each nested *_config; per part for
    a count given per part (LXMERT)."""
    for name, value in config.items():
        if name in LAYER_COUNTS and isinstance(value, int):
            yield prefix + name, value
        elif name in LAYER_COUNTS and isinstance(value, dict):
            yield from ((f"{prefix}{name}.{part}", count) for part, count in value.items())
        elif name.endswith("_config") and isinstance(value, dict):
            yield from _layer_counts(value, f"{prefix}{name}.")


def refuse_to_build(config: dict[str, Any], where: str) -> None:
    """Raise the one-line error of a command that would build the model from a config with
    an invalid field, or with more layers than MAX_BUILD_LAYERS; return if it is sane."""
    checked = validate(config, where, per_layer=True)
    todo = "fix the config; `llm-anatomy config --explain` lists every field out of range"
    if checked.findings:
        first = checked.findings[0]
        raise AnatomyError(where, first.expected, first.found, todo)
    for path, layers in _layer_counts(checked.config):
        if layers > MAX_BUILD_LAYERS:
            raise AnatomyError(
                where,
                f"{path} at most {MAX_BUILD_LAYERS:,} to build the model's skeleton",
                f"{layers:,}",
                "summary, and params and values in their default style, work without it",
            )


def check_meta_params(path: str, params: dict[str, Any]) -> None:
    """Meta's params.json: raise on the first field a config cannot be derived from."""
    findings = validate(params, path, META_FIELDS).findings
    if findings:
        raise AnatomyError(path, findings[0].expected, findings[0].found, "fix or re-download params.json")
