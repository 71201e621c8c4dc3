"""Where a model's parameters sit: by component, by layer and by dtype; tied weights
counted once; total and active-per-token parameters of mixtures of experts; and a
check of the tensors against what the config implies.

Counts come from the tensors. Each tensor's role comes from its name (ROLE_PATTERNS:
Llama/Mistral/Mixtral/Qwen/Gemma/Phi-3/GPT-2/BERT/DeepSeek and GGUF spellings). The
config's own count is computed from the config alone (ROLE_SHAPES and the plan of
roles per layer), so any disagreement between the two is reported as a finding."""

from __future__ import annotations

import re
from collections import Counter, defaultdict, namedtuple
from functools import lru_cache
from math import prod

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Sequence

from ..core.catalog import Catalog, TensorInfo
from ..core.text import escape
from .architecture import Architecture, Finding, LayerAttention, Phrase, derive
from .memory import Memory, estimate
from .roles import BUFFER, INDEX, LAYER_PREFIX
from ..quant import QuantView, view as quant_view
from ..quant.schemes import QUANT_METHODS

# Component names, in the order they are reported.
COMPONENTS = ("embeddings", "attention", "mlp", "experts", "shared experts", "router", "norms", "output head", "other")

# (name pattern, component, role); the first match wins, so specific patterns come first.
ROLE_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), component, role)
    for pattern, component, role in (
        (BUFFER.pattern, "buffers", "buffer"),  # saved beside the parameters, not parameters
        # FP8 checkpoints (DeepSeek-V3) store a scale per block of weights beside each weight.
        (r"\.(?:weight_scale_inv|weight_scale|input_scale)$", "quantization scales", "scale"),
        (r"norm|(?:^|\.)ln_(?:\d+|f)\.|LayerNorm", "norms", "norm"),
        (
            r"(?:embed_tokens|(?:^|\.)wte|word_embeddings|tok_embeddings|embed_in)\.|^token_embd\.",
            "embeddings",
            "embed",
        ),
        (r"(?:(?:^|\.)wpe|\.position_embeddings)\.|^position_embd\.", "embeddings", "pos_embed"),
        (r"token_type_embeddings\.|^token_types\.", "embeddings", "type_embed"),
        (r"^lm_head\.|^output\.|(?:^|\.)embed_out\.|^cls\.predictions\.(?:decoder\.|bias$)", "output head", "head"),
        (r"shared_expert_gate\.|ffn_gate_inp_shexp\.", "router", "shared_router"),
        (r"(?:block_sparse_moe|mlp|moe)\.gate\.(?:weight|bias)$|ffn_gate_inp\.|\.router\.", "router", "router"),
        (r"shared_experts?\.(?:gate_proj|w1)\.|ffn_gate_shexp\.", "shared experts", "shared_gate"),
        (r"shared_experts?\.(?:up_proj|w3)\.|ffn_up_shexp\.", "shared experts", "shared_up"),
        (r"shared_experts?\.(?:down_proj|w2)\.|ffn_down_shexp\.", "shared experts", "shared_down"),
        # gpt-oss: the fused experts' biases, [experts, out], routed with their experts
        (r"experts\.(?:gate_up_proj|down_proj)_bias$", "experts", "expert_bias"),
        (r"experts\.(?:\d+\.)?(?:gate_proj|w1)(?:\.|$)|ffn_gate_exps\.", "experts", "expert_gate"),
        (r"experts\.(?:\d+\.)?(?:up_proj|w3)(?:\.|$)|ffn_up_exps\.", "experts", "expert_up"),
        (r"experts\.(?:\d+\.)?(?:down_proj|w2)(?:\.|$)|ffn_down_exps\.", "experts", "expert_down"),
        (r"experts\.(?:\d+\.)?gate_up_proj(?:\.|$)|ffn_gate_up_exps\.", "experts", "expert_gate_up"),
        (r"(?:q_a_proj|attn_q_a)\.", "attention", "q_a"),
        (r"(?:q_b_proj|attn_q_b)\.", "attention", "q_b"),
        (r"(?:kv_a_proj_with_mqa|attn_kv_a_mqa)\.", "attention", "kv_a"),
        (r"(?:kv_b_proj|attn_kv_b)\.", "attention", "kv_b"),
        (r"(?:qkv_proj|query_key_value|attn\.c_attn|Wqkv|attn_qkv)\.", "attention", "qkv"),
        # gpt-oss: one learned logit per head that joins each softmax (attention sinks), [heads]
        (r"self_attn\.sinks$|attn_sinks\.", "attention", "sinks"),
        (r"(?:q_proj|attention\.self\.query|attention\.wq|attn_q)\.", "attention", "q"),
        (r"(?:k_proj|attention\.self\.key|attention\.wk|attn_k)\.", "attention", "k"),
        (r"(?:v_proj|attention\.self\.value|attention\.wv|attn_v)\.", "attention", "v"),
        (r"(?:o_proj|attention\.output\.dense|attn\.c_proj|attention\.wo|attn_output|out_proj)\.", "attention", "o"),
        (r"(?:gate_up_proj|ffn_gate_up)\.", "mlp", "gate_up"),
        (r"(?:mlp\.gate_proj|feed_forward\.w1|ffn_gate)\.", "mlp", "gate"),
        (
            r"(?:mlp\.up_proj|feed_forward\.w3|mlp\.c_fc|intermediate\.dense|(?:^|\.)fc1|dense_h_to_4h|ffn_up)\.",
            "mlp",
            "up",
        ),
        (
            r"(?:mlp\.down_proj|feed_forward\.w2|mlp\.c_proj|(?:^|\.)output\.dense|(?:^|\.)fc2|dense_4h_to_h|ffn_down)\.",
            "mlp",
            "down",
        ),
    )
)

# Role -> its weight matrix's shape (out, in) as products of quantities (see _quantities).
# Orientation is not checked (GPT-2's Conv1D and GGUF store the transpose).
ROLE_SHAPES: dict[str, tuple[tuple[str, ...], ...]] = {
    "embed": (("vocab_size",), ("hidden_size",)),
    "head": (("vocab_size",), ("hidden_size",)),
    "pos_embed": (("context_length",), ("hidden_size",)),
    "type_embed": (("type_vocab_size",), ("hidden_size",)),
    "q": (("num_heads", "q_head_dim"), ("hidden_size",)),
    "k": (("num_kv_heads", "head_dim"), ("hidden_size",)),
    "v": (("num_kv_heads", "head_dim"), ("hidden_size",)),
    "qkv": (("qkv_heads", "head_dim"), ("hidden_size",)),
    "o": (("hidden_size",), ("num_heads", "o_head_dim")),
    "q_a": (("q_lora_rank",), ("hidden_size",)),
    "q_b": (("num_heads", "q_head_dim"), ("q_lora_rank",)),
    "kv_a": (("kv_a_dim",), ("hidden_size",)),
    "kv_b": (("num_heads", "kv_b_dim"), ("kv_lora_rank",)),
    "gate": (("intermediate_size",), ("hidden_size",)),
    "up": (("intermediate_size",), ("hidden_size",)),
    "down": (("hidden_size",), ("intermediate_size",)),
    "gate_up": (("2", "intermediate_size"), ("hidden_size",)),
    "expert_gate": (("expert_size",), ("hidden_size",)),
    "expert_up": (("expert_size",), ("hidden_size",)),
    "expert_down": (("hidden_size",), ("expert_size",)),
    "expert_gate_up": (("2", "expert_size"), ("hidden_size",)),
    "shared_gate": (("shared_intermediate_size",), ("hidden_size",)),
    "shared_up": (("shared_intermediate_size",), ("hidden_size",)),
    "shared_down": (("hidden_size",), ("shared_intermediate_size",)),
    "router": (("num_experts",), ("hidden_size",)),
    "shared_router": (("1",), ("hidden_size",)),
}

INCOMPLETE = "some tensors may be missing (one shard of several?) or config.json may describe another model"

# Tensors stored beside the parameters that are not parameters of the model transformers
# builds: buffers, the scales of quantized weights, and DeepSeek-V3's multi-token-prediction
# layers (num_nextn_predict_layers), which transformers does not load.
NOT_COUNTED = ("buffers", "quantization scales", "multi-token prediction")

ROUTED_EXPERT_ROLES = frozenset({"expert_gate", "expert_up", "expert_down", "expert_gate_up", "expert_bias"})


# Results are namedtuples, not dataclasses, for import speed (see architecture.py).


class Count(namedtuple("Count", "name params nbytes tensors")):
    """Parameters, bytes and tensors in one group (a component, a layer or a dtype)."""

    __slots__ = ()


class LayerCount(namedtuple("LayerCount", "index params nbytes")):
    """One numbered layer; index None: the tensors outside the layers (embeddings, final norm, head)."""

    __slots__ = ()


class ImpliedCount(namedtuple("ImpliedCount", "component from_config from_tensors")):
    """Weight-matrix parameters of one component: from the config alone vs. the tensors."""

    __slots__ = ()


class MoeCount(namedtuple("MoeCount", "total active routed num_experts experts_per_token formula")):
    """Mixture of experts: total parameters; active per token (every shared parameter plus
    experts_per_token routed experts in each layer); routed: parameters in routed experts;
    formula: how active was computed, as a line."""

    __slots__ = ()


class QuantCount(
    namedtuple("QuantCount", "method description weights params nbytes bits_per_weight active_convention")
):
    """A quantized checkpoint: quant_method as config.json spells it, the scheme in words,
    how many weights are quantized, their parameters (as unquantized) and stored bytes
    (packed values, scales, zeros and indices), the effective bits per weight over them, and
    active_convention: for a quantized MoE, active parameters with the embedding table left
    out (the convention gpt-oss's model card uses), else None."""

    __slots__ = ()


# The field names spelled out in the call, where type checkers read them.
class Summary(
    namedtuple(
        "Summary",
        "model format total_params total_nbytes components layers dtypes not_counted tied moe implied architecture memory findings implied_by quant",
        defaults=(None, None),
    )
):
    """Where the parameters sit. total_params counts tied weights once and leaves out what
    not_counted lists; components: Count per component in COMPONENTS order (empty ones left
    out); layers: LayerCount; dtypes: Count per dtype, largest first; not_counted: Count per
    NOT_COUNTED group of tensors stored beside the parameters (buffers, quantization scales,
    multi-token-prediction layers); tied: how tied weights were counted;
    moe: MoeCount or None; implied: ImpliedCount per component; architecture: Architecture
    or None (no usable config); memory: Memory; findings: tuple of Finding; implied_by: None,
    or what the counts come from when the checkpoint holds no tensors ("its metadata", "its
    config"): the parameters of the model transformers builds from it, at the config's dtype;
    quant: QuantCount of a quantized checkpoint (its weights then counted as the unquantized
    model's, with the bytes stored), else None."""

    __slots__ = ()


class Placed(namedtuple("Placed", "tensor component role layer")):
    """A tensor with its component, role and layer index (None outside the layers)."""

    __slots__ = ()


def role_of(name: str) -> tuple[str, str]:
    """(component, role) of a tensor name; ("other", "other") when no pattern matches."""
    return _role_of_shape(INDEX.sub("0", name))  # layer and expert numbers do not change a role


@lru_cache(maxsize=None)
def _role_of_shape(name: str) -> tuple[str, str]:
    # Called once per distinct name with indices zeroed: a few dozen per model, not thousands.
    for pattern, component, role in ROLE_PATTERNS:
        if pattern.search(name):
            return component, role
    return "other", "other"


def layer_of(name: str) -> int | None:
    match = LAYER_PREFIX.match(name)
    return int(match.group(1)) if match else None


def _quantities(arch: Architecture) -> dict[str, tuple[int, str]]:
    """Each quantity a shape is built from: (value, how it reads in a message)."""
    f = arch.fields
    named = {
        q: (getattr(arch, q), f"{f.get(q, q)} {getattr(arch, q)}")
        for q in (
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "intermediate_size",
            "vocab_size",
            "context_length",
            "type_vocab_size",
            "num_experts",
            "q_lora_rank",
            "kv_lora_rank",
            "shared_intermediate_size",
        )
    }
    named["1"], named["2"] = (1, "1"), (2, "2")
    mla = arch.attention == "MLA"
    nope, rope, v = arch.qk_nope_head_dim, arch.qk_rope_head_dim, arch.v_head_dim
    if mla and nope and rope:
        named["q_head_dim"] = (nope + rope, f"(qk_nope_head_dim {nope} + qk_rope_head_dim {rope})")
    elif not mla:
        named["q_head_dim"] = named["head_dim"]
    named["o_head_dim"] = (v, f"v_head_dim {v}") if mla else named["head_dim"]
    if mla and arch.kv_lora_rank and rope:
        named["kv_a_dim"] = (arch.kv_lora_rank + rope, f"(kv_lora_rank {arch.kv_lora_rank} + qk_rope_head_dim {rope})")
    if mla and nope and v:
        named["kv_b_dim"] = (nope + v, f"(qk_nope_head_dim {nope} + v_head_dim {v})")
    if arch.num_heads and arch.num_kv_heads:
        named["qkv_heads"] = (
            arch.num_heads + 2 * arch.num_kv_heads,
            f"({f['num_heads']} {arch.num_heads} + 2 x {f['num_kv_heads']} {arch.num_kv_heads})",
        )
    expert_size = arch.moe_intermediate_size or arch.intermediate_size
    named["expert_size"] = (
        expert_size,
        named["intermediate_size"][1] if not arch.moe_intermediate_size else f"moe_intermediate_size {expert_size}",
    )
    return {q: (value, text) for q, (value, text) in named.items() if value}


class _Layer(namedtuple("_Layer", "attention mlp_size")):
    """What sets one layer's weight shapes where layers differ: its LayerAttention (None: the
    config's), and its dense MLP's inner size (None: no dense MLP)."""

    __slots__ = ()


def _layers(arch: Architecture) -> list[_Layer]:
    moe = set(arch.moe_layers)
    return [
        _Layer(
            arch.layer_attention[i] if arch.layer_attention else None,
            arch.dense_mlp_sizes[i] if arch.dense_mlp_sizes else (arch.intermediate_size if i not in moe else None),
        )
        for i in range(arch.num_layers or 0)
    ]


def _layer_quantities(
    arch: Architecture, quantities: dict[str, tuple[int, str]], layer: _Layer
) -> dict[str, tuple[int, str]]:
    """The quantities of one layer where layers differ (arch.layer_attention, arch.dense_mlp_sizes)."""
    f = arch.fields
    own = dict(quantities)
    attention = layer.attention
    if attention is not None and attention.head_dim != arch.head_dim:
        own["head_dim"] = own["q_head_dim"] = own["o_head_dim"] = (
            attention.head_dim,
            f"{f['global_head_dim']} {attention.head_dim}",
        )
    if attention is not None and attention.kv_heads != arch.num_kv_heads:
        own["num_kv_heads"] = (attention.kv_heads, f"{f['global_kv_heads']} {attention.kv_heads}")
    if layer.mlp_size is not None and layer.mlp_size != arch.intermediate_size:
        own["intermediate_size"] = (
            layer.mlp_size,
            f"2 x {f['intermediate_size']} {arch.intermediate_size} (use_double_wide_mlp)",
        )
    return own


def _attention_roles(attention: LayerAttention | None) -> tuple[str, ...]:
    """A layer reusing earlier layers' keys and values has no k and v; one whose keys are its values no v."""
    if attention is None:
        return ("q", "k", "v", "o")
    return ("q",) + ("k",) * attention.keys + ("v",) * attention.values + ("o",)


def expected_shape(role: str, quantities: dict[str, tuple[int, str]]) -> tuple[tuple[int, ...], str] | None:
    """The (out, in) shape a role's weight should have, and the config fields behind it."""
    dims = ROLE_SHAPES.get(role)
    if dims is None or any(q not in quantities for dim in dims for q in dim):
        return None
    shape = tuple(prod(quantities[q][0] for q in dim) for dim in dims)
    why = ", ".join(" x ".join(quantities[q][1] for q in dim) for dim in dims)
    return shape, why


def _plan(arch: Architecture) -> dict[str, list[tuple[str, int, dict[str, tuple[int, str]]]]]:
    """Component -> [(role, how many such matrices, the quantities their shape comes from)] that
    the config alone implies."""
    quantities = _quantities(arch)
    layers = arch.num_layers or 0
    moe_layers = len(arch.moe_layers)
    ffn_roles = ("gate", "up", "down") if arch.gated_ffn else ("up", "down")
    plan: dict[str, list[tuple[str, int, dict[str, tuple[int, str]]]]] = defaultdict(list)
    plan["embeddings"].append(("embed", 1, quantities))
    if arch.learned_positions:
        plan["embeddings"].append(("pos_embed", 1, quantities))
    if arch.type_vocab_size:
        plan["embeddings"].append(("type_embed", 1, quantities))
    if arch.num_layers is not None:  # without a (valid) layer count the config implies nothing per layer
        if arch.attention == "MLA":
            q_roles = ("q_a", "q_b") if arch.q_lora_rank else ("q",)
            plan["attention"] += [(r, layers, quantities) for r in (*q_roles, "kv_a", "kv_b", "o")]
            plan["mlp"] += [(r, layers - moe_layers, quantities) for r in ffn_roles]
        else:  # layers grouped by what sets their shapes (one group unless they differ, as Gemma 4's)
            for layer, count in Counter(_layers(arch)).items():
                own = _layer_quantities(arch, quantities, layer)
                plan["attention"] += [(r, count, own) for r in _attention_roles(layer.attention)]
                plan["mlp"] += [
                    (r, count if layer.mlp_size is not None else 0, own) for r in ffn_roles
                ]  # 0: an all-MoE model
        if moe_layers and arch.num_experts:
            plan["experts"] += [("expert_" + r, moe_layers * arch.num_experts, quantities) for r in ffn_roles]
            plan["router"].append(("router", moe_layers, quantities))
            if arch.shared_intermediate_size:
                plan["shared experts"] += [("shared_" + r, moe_layers, quantities) for r in ffn_roles]
            if arch.fields.get("shared_intermediate_size") == "shared_expert_intermediate_size":
                plan["router"].append(("shared_router", moe_layers, quantities))  # Qwen2-MoE gates its shared expert
    if arch.has_output_head and not arch.tied_embeddings:  # None (no architectures[]): a head is not assumed
        plan["output head"].append(("head", 1, quantities))
    return plan


def implied_by_config(arch: Architecture) -> dict[str, int]:
    """Weight-matrix parameters per component from the config alone; components whose
    shapes the config does not fully determine are left out."""
    implied = {}
    for component, roles in _plan(arch).items():
        shapes = [(expected_shape(role, quantities), count) for role, count, quantities in roles]
        if all(shape is not None for shape, _ in shapes):
            implied[component] = sum(prod(shape[0]) * count for shape, count in shapes if shape)
    return implied


def _shape_findings(placed: Sequence[Placed], arch: Architecture) -> list[Finding]:
    """Weights whose shape disagrees with the config; repeats folded into the first."""
    quantities = _quantities(arch)
    expected_by_role = {role: expected_shape(role, quantities) for role in ROLE_SHAPES}
    differ = arch.layer_attention or arch.dense_mlp_sizes
    by_layer = [
        {
            role: expected_shape(role, _layer_quantities(arch, quantities, layer))
            for role in ("q", "k", "v", "o", "gate", "up", "down")
        }
        for layer in (_layers(arch) if differ else ())
    ]
    groups: dict[tuple[str, tuple[int, ...], tuple[int, ...]], list[str]] = defaultdict(list)
    whys: dict[tuple[str, tuple[int, ...], tuple[int, ...]], str] = {}
    for tensor, _, role, layer in placed:
        own = by_layer[layer] if layer is not None and layer < len(by_layer) else {}
        expected = own[role] if role in own else expected_by_role.get(role)
        if expected is None or len(tensor.shape) < 2:
            continue
        shape, why = expected
        if role in ROUTED_EXPERT_ROLES and len(tensor.shape) == 3 and arch.num_experts:
            shape = (arch.num_experts, *shape)  # experts fused into one [experts, out, in] tensor
            why = f"{arch.fields['num_experts']} {arch.num_experts}, {why}"
        if sorted(shape) != sorted(tensor.shape):
            key = (role, shape, tensor.shape)
            groups[key].append(tensor.name)
            whys[key] = why
    findings = []
    for key, names in groups.items():
        more = f" (and {len(names) - 1} more like it)" if len(names) > 1 else ""
        args = {
            "where": escape(names[0]),
            "more": len(names) - 1,
            "shape": str(list(key[1])),
            "why": whys[key],
            "found": str(list(key[2])),
        }
        findings.append(
            Finding(
                escape(names[0]) + more,
                f"shape {args['shape']} ({args['why']}) from config.json",
                args["found"],
                kind="shape",
                args=args,
            )
        )
    return findings


def _moe(
    total: int, routed_by_layer: dict[int | None, int], arch: Architecture
) -> tuple[MoeCount | None, list[Finding]]:
    experts, per_token = arch.num_experts, arch.experts_per_token
    routed = sum(routed_by_layer.values())
    if not routed or not experts or not per_token:
        return None, []
    findings = [
        Finding(
            f"layer {layer} experts",
            f"{experts} equal experts ({arch.fields['num_experts']})",
            f"{count:,} parameters, not a multiple of {experts}",
            kind="experts_multiple",
            args={"layer": layer, "experts": experts, "field": arch.fields["num_experts"], "count": f"{count:,}"},
        )
        for layer, count in routed_by_layer.items()
        if count % experts
    ]
    active = total - routed + routed * per_token // experts
    formula = f"active = total {total:,} - routed experts {routed:,} + {per_token} of {experts} experts x {routed:,} / {experts} = {active:,}"
    return MoeCount(total, active, routed, experts, per_token, formula), findings


def _tied_duplicates(placed: list[Placed], arch: Architecture | None) -> tuple[set[str], list[Phrase]]:
    """Head tensors that repeat the tied embedding (counted once), and notes saying how."""
    embed = next((p.tensor for p in placed if p.role == "embed"), None)
    if arch is None or not arch.tied_embeddings or embed is None:
        return set(), []
    heads = [p.tensor for p in placed if p.role == "head" and p.tensor.shape == embed.shape]
    if heads and "tied_embeddings" in arch.fields:  # both stored: drop one only if config.json says tied
        return {t.name for t in heads}, [
            Phrase(
                f"{escape(t.name)} repeats the tied {escape(embed.name)} (tie_word_embeddings): counted once",
                "tied_repeat",
                {"head": escape(t.name), "embed": escape(embed.name)},
            )
            for t in heads
        ]
    if arch.has_output_head:
        return set(), [
            Phrase(
                f"the output head is tied to {escape(embed.name)} (tie_word_embeddings): stored and counted once",
                "tied",
                {"embed": escape(embed.name)},
            )
        ]
    return set(), []


def _mtp_tensors(placed: list[Placed], arch: Architecture | None) -> set[str]:
    """Tensors of the multi-token-prediction layers DeepSeek-V3 stores after its last layer
    (num_nextn_predict_layers): part of the release, not of the model transformers builds."""
    if arch is None or not arch.mtp_layers or not arch.num_layers:
        return set()
    return {p.tensor.name for p in placed if (p.layer or 0) >= arch.num_layers}


def _count(name: str, tensors: Sequence[TensorInfo]) -> Count:
    return Count(name, sum(t.numel for t in tensors), sum(t.nbytes for t in tensors), len(tensors))


def summarize(
    catalog: Catalog,
    contexts: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    kv_dtype: str | None = None,
) -> Summary:
    """Counts from the tensors, checked against the config; bad or missing config becomes
    a finding and the tensor-based parts are still reported."""
    findings: list[Finding] = []
    arch = None
    implied_by = catalog.implied_by
    if implied_by:
        catalog = catalog._replace(tensors=_implied_tensors(catalog, findings))
    if catalog.config_error is not None:
        error = catalog.config_error
        findings.append(
            Finding(
                error.where, error.expected, error.found, error.todo, kind="config_error", args={"where": error.where}
            )
        )
    elif catalog.config is None:
        findings.append(
            Finding(
                escape(catalog.weights_place),
                catalog.CONFIG_EXPECTED,
                "none",
                "the config check and KV cache need it",
                kind="no_config",
                args={"where": escape(catalog.weights_place)},
            )
        )
    else:
        arch = derive(catalog.config)
        findings += arch.findings

    qview = quant_view(catalog)
    if qview is not None:
        catalog = catalog._replace(tensors=qview.tensors())
        findings += _quant_findings(qview)

    placed = [Placed(t, *role_of(t.name), layer_of(t.name)) for t in catalog.tensors]
    duplicates, tied_notes = _tied_duplicates(placed, arch)
    mtp = _mtp_tensors(placed, arch)
    apart: dict[str, list[TensorInfo]] = defaultdict(list)
    params: list[Placed] = []
    for p in placed:
        group = "multi-token prediction" if p.tensor.name in mtp else p.component
        if group in NOT_COUNTED:
            apart[group].append(p.tensor)
        elif p.tensor.name not in duplicates:
            params.append(p)

    by_component: dict[str, list[TensorInfo]] = defaultdict(list)
    by_layer: dict[int | None, list[TensorInfo]] = defaultdict(list)
    by_dtype: dict[str, list[TensorInfo]] = defaultdict(list)
    routed_by_layer: dict[int | None, int] = defaultdict(int)
    for t, component, role, layer in params:
        by_component[component].append(t)
        by_layer[layer].append(t)
        by_dtype[t.dtype].append(t)
        if role in ROUTED_EXPERT_ROLES:
            routed_by_layer[layer] += t.numel
    total = sum(p.tensor.numel for p in params)
    total_nbytes = sum(p.tensor.nbytes for p in params)

    implied: list[ImpliedCount] = []
    moe = None
    # Tensors a config implied cannot be checked against that config: there are none to check.
    if arch is not None and not implied_by:
        findings += _shape_findings(params, arch)
        matrices: dict[str, int] = defaultdict(int)
        for t, component, role, _ in params:
            if len(t.shape) >= 2 and role != "expert_bias":
                matrices[component] += t.numel
        for component, count in implied_by_config(arch).items():
            if not count and not matrices.get(component):
                continue  # e.g. no dense MLP in an all-MoE model
            implied.append(ImpliedCount(component, count, matrices.get(component, 0)))
            if count != matrices.get(component, 0):
                found = f"{matrices.get(component, 0):,}"
                findings.append(
                    Finding(
                        component,
                        f"{count:,} parameters in weight matrices, as config.json implies",
                        f"{found} in the tensors",
                        INCOMPLETE,
                        kind="implied",
                        args={"component": component, "count": f"{count:,}", "found": found},
                    )
                )
    if arch is not None:
        moe, moe_findings = _moe(total, routed_by_layer, arch)
        findings += moe_findings

    qcount = None
    if qview is not None:
        quantized = [w for w in qview.quantized if w.name not in duplicates]
        qparams = sum(w.numel for w in quantized)
        qbytes = sum(w.nbytes for w in quantized)
        convention = None
        if moe is not None:
            convention = moe.active - sum(p.tensor.numel for p in params if p.role == "embed")
        qcount = QuantCount(
            qview.method,
            qview.description,
            len(quantized),
            qparams,
            qbytes,
            qbytes * 8 / qparams if qparams else 0.0,
            convention,
        )

    layer_keys = sorted(by_layer, key=lambda k: (k is None, k or 0))
    dtypes = tuple(_count(d, ts) for d, ts in sorted(by_dtype.items(), key=lambda kv: -sum(t.numel for t in kv[1])))
    memory = estimate(arch, total, total_nbytes, catalog, contexts, batches, kv_dtype)
    return Summary(
        model=catalog.name,
        format=catalog.format,
        total_params=total,
        total_nbytes=total_nbytes,
        components=tuple(_count(c, by_component[c]) for c in COMPONENTS if by_component.get(c)),
        layers=tuple(
            LayerCount(k, sum(t.numel for t in by_layer[k]), sum(t.nbytes for t in by_layer[k])) for k in layer_keys
        ),
        dtypes=dtypes,
        not_counted=tuple(_count(group, apart[group]) for group in NOT_COUNTED if apart.get(group)),
        tied=tuple(tied_notes),
        moe=moe,
        implied=tuple(implied),
        architecture=arch,
        memory=_without_stored(memory) if implied_by else memory,
        findings=tuple(findings),
        implied_by=implied_by,
        quant=qcount,
    )


def _without_stored(memory: Memory) -> Memory:
    """No stored row where nothing is stored (a vocab-only GGUF, config.json alone)."""
    return memory._replace(weights=tuple(row for row in memory.weights if row.label != "stored"))


def _quant_findings(qview: QuantView) -> list[Finding]:
    """Where the quantization config and the tensors disagree; an unknown method, said once."""
    findings = []
    first: dict[tuple[str, ...], tuple[str, str, str, str, tuple[str, ...]]] = {}
    more: dict[tuple[str, ...], int] = defaultdict(int)
    for (
        problem
    ) in qview.problems:  # one disagreement repeats in every layer: the first of each kind stands for the rest
        if problem[4] in first:
            more[problem[4]] += 1
        else:
            first[problem[4]] = problem
    for like, (where, expected, found, todo, _) in first.items():
        label = escape(where) + (f" (and {more[like]} more like it)" if more[like] else "")
        findings.append(
            Finding(
                label, expected, found, todo, kind="quant_mismatch", args={"where": escape(where), "more": more[like]}
            )
        )
    if qview.scheme is None and not qview.problems:  # a method read, but with unreadable settings, is the problem above
        findings.append(
            Finding(
                "config.json",
                f"a quant_method llm-anatomy reads ({', '.join(QUANT_METHODS)}, or MLX's quantization)",
                f"quant_method {escape(qview.method)!r}",
                "parameters are counted as stored elements: packed values count as one each",
                kind="quant_unknown",
                args={"method": escape(qview.method)},
            )
        )
    return findings


def _implied_tensors(catalog: Catalog, findings: list[Finding]) -> tuple[TensorInfo, ...]:
    """The parameters of the model transformers builds from the config, as tensors of the
    config's dtype (float32 when it names none, as transformers loads it); none without transformers."""
    from ..core.dtypes import CONFIG_DTYPE_NAMES, DTYPES
    from ..hf.skeleton import SkeletonUnavailable, load_skeleton

    try:
        skeleton = load_skeleton(catalog)
    except SkeletonUnavailable as exc:
        findings.append(
            Finding(
                exc.where,
                exc.expected,
                exc.found,
                "the parameters it implies are counted by the model transformers builds",
            )
        )
        return ()
    config = catalog.config or {}
    name = config.get("dtype") or config.get("torch_dtype")
    dtype = CONFIG_DTYPE_NAMES.get(name, "F32") if isinstance(name, str) else "F32"
    return tuple(
        TensorInfo(p.name, dtype, p.shape, "", 0, DTYPES[dtype].nbytes(prod(p.shape))) for p in skeleton.parameters
    )
