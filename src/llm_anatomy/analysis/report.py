"""Everything the HTML report shows, gathered into one dataclass: the overview, the
decoder-layer diagram with the real tensor shapes, the tensor listing, and the results of
the other analyses (architecture facts, parameter summary, explained config, statistics)."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..io.sources import file_size
from ..core.catalog import Catalog, TensorInfo, natural_key
from ..core.ggml_types import KEY_ARCHITECTURE
from .explain import Explanation, explain_config
from .params import ParamListing, list_tensors
from .roles import LAYER_PREFIX, role_key
from .summary import Summary, role_of, summarize

if TYPE_CHECKING:  # stats is imported only when the report includes statistics
    from .stats import Stats, StatsReport
    from .trace import Trace
    from .trace_run import RunTrace
    from .verify import TensorCheck, TypeSummary, Verification

# Where a tensor outside the layers sits in the diagram, by its summary component.
OUTER_PLACES = {"embeddings": "embedding", "norms": "final_norm", "output head": "head"}

# Where a layer's direct submodule sits in a decoder layer: before/inside/after attention
# or the feed-forward network. Norm names are ordered by where the architecture applies them.
LAYER_PLACES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "pre_attention_norm",
        re.compile(r"^(input_layernorm|ln_1|attention_norm|attn_norm|norm1|pre_attention_layernorm)$"),
    ),
    ("post_attention_norm", re.compile(r"^(post_attention_layernorm|post_attention_norm)$")),
    ("pre_ffn_norm", re.compile(r"^(pre_feedforward_layernorm|ffn_norm|ln_2|norm2)$")),
    ("post_ffn_norm", re.compile(r"^(post_feedforward_layernorm|post_ffw_norm)$")),
    # GGUF (llama.cpp) names each projection as a module of the block: attn_q, ffn_up...
    ("attention", re.compile(r"^(self_attn|attn|attention|self_attention|attn_(q|k|v|qkv|output|q_norm|k_norm))$")),
    (
        "ffn",
        re.compile(
            r"^(mlp|block_sparse_moe|feed_forward|ffn|moe|intermediate|output|ffn_(gate|up|down)(_exps|_shexp)?|ffn_gate_inp)$"
        ),
    ),
)

# Norms applied after a residual sum (post-norm: BERT, RoBERTa, DistilBERT), matched on the
# path inside the layer: BERT's sits inside its attention and output submodules.
POST_NORM_PLACES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("attention_residual_norm", re.compile(r"^(attention\.output\.LayerNorm|sa_layer_norm)$")),
    ("ffn_residual_norm", re.compile(r"^(output\.LayerNorm|output_layer_norm)$")),
)

# Only expert numbers fold in the diagram: roles.role_key would also merge a Sequential's
# differently-shaped mlp.0 and mlp.2 into one "mlp.*" name.
EXPERT_INDEX = re.compile(r"(^|\.)experts\.\d+\.")

# Inside a block, tensors are listed in the order the computation uses them (files store
# them sorted by name: k, o, q, v). Names not listed follow, in natural order.
COMPUTE_ORDER = (
    "embed_tokens",
    "wte",
    "word_embeddings",
    "wpe",
    "position_embeddings",
    "token_type_embeddings",
    "q_a_proj",
    "q_a_layernorm",
    "q_b_proj",
    "q_proj",
    "q_norm",
    "query",
    "wq",
    "attn_q",
    "attn_q_norm",
    "kv_a_proj_with_mqa",
    "kv_a_layernorm",
    "kv_b_proj",
    "k_proj",
    "k_norm",
    "key",
    "wk",
    "attn_k",
    "attn_k_norm",
    "v_proj",
    "value",
    "wv",
    "attn_v",
    "qkv_proj",
    "query_key_value",
    "c_attn",
    "attn_qkv",
    "o_proj",
    "dense",
    "out_proj",
    "wo",
    "attn_output",
    "gate",
    "router",
    "ffn_gate_inp",
    "shared_expert_gate",
    "gate_proj",
    "w1",
    "ffn_gate",
    "ffn_gate_exps",
    "up_proj",
    "w3",
    "ffn_up",
    "ffn_up_exps",
    "gate_up_proj",
    "c_fc",
    "fc1",
    "down_proj",
    "w2",
    "ffn_down",
    "ffn_down_exps",
    "fc2",
)
RANK = {name: i for i, name in enumerate(COMPUTE_ORDER)}


@dataclass(frozen=True)
class Overview:
    model: str
    architecture: str | None  # config "architectures"[0], else model_type, else GGUF general.architecture
    model_type: str | None  # or "general.architecture" when architecture comes from there
    format: str
    files: int
    size_on_disk: int  # bytes of the weight files, headers included
    tensors: int


@dataclass(frozen=True)
class DiagramTensor:
    name: str  # relative to the layer ("self_attn.q_proj", "mlp.experts.*.w1"), or full outside layers
    shape: tuple[int, ...]
    count: int = 1  # experts folded into one line


@dataclass(frozen=True)
class DiagramBlock:
    place: str  # embedding, pre_attention_norm, attention, ..., final_norm, head
    module: str  # the layer's submodule(s) holding these tensors ("self_attn"; "intermediate, output")
    tensors: tuple[DiagramTensor, ...]


@dataclass(frozen=True)
class LayerDiagram:
    prefix: str  # where the numbered layers sit: "model.layers."
    layers: int
    outer: tuple[DiagramBlock, ...]  # embedding, final_norm, head (those present)
    layer: tuple[DiagramBlock, ...]  # layer 0's blocks in LAYER_PLACES, then POST_NORM_PLACES order
    other: tuple[DiagramTensor, ...]  # layer-0 tensors of no known place, shown beside

    def block(self, place: str) -> DiagramBlock | None:
        return next((b for b in self.outer + self.layer if b.place == place), None)


@dataclass(frozen=True)
class RoleTrend:
    """One role's statistics across depth: a value per layer of WeightStats.layers."""

    role: str  # roles.role_key: "self_attn.q_proj.weight", "mlp.experts.*.w1.weight"
    std: tuple[float | None, ...]  # None: the layer has no such tensor (or no finite value)
    absmax: tuple[float | None, ...]


@dataclass(frozen=True)
class WeightStats:
    """stats.weight_stats per tensor, arranged for the report."""

    layers: tuple[int, ...]
    trends: tuple[RoleTrend, ...]  # in the order the layer computes them
    outside: tuple[Stats, ...]  # tensors outside the numbered layers
    flagged: tuple[Stats, ...]  # NaN or Inf first, then the largest share of values beyond 6 std
    errors: tuple[tuple[str, str], ...]  # tensors that could not be read: (name, error line)
    tensors: int
    nbytes: int


@dataclass(frozen=True)
class HeatCell:
    """One (layer, role) of a comparison: its tensors' errors pooled over their elements."""

    status: str  # the worst of its tensors' (verify.STATUSES: different, unchecked, same, identical)
    rel_rmse: float  # sqrt(sum ||B - A||^2 / sum ||A||^2) over its tensors
    sqnr_db: float
    max_abs: float
    names: tuple[str, ...]  # transformers' names of its tensors


@dataclass(frozen=True)
class Comparison:
    """`report --compare B`: verify(A, B) arranged as a heat map of layers by roles."""

    other: str  # B, as the command line named it
    verdict: str  # pass, warn, fail
    findings: tuple[str, ...]  # failures first, as verify words them
    overall: TypeSummary
    layers: tuple[int, ...]  # the heat map's rows
    roles: tuple[str, ...]  # its columns: roles.role_key without ".weight", in compute order
    cells: tuple[tuple[HeatCell | None, ...], ...]  # [row][column]; None: no such tensor in that layer
    outside: tuple[TensorCheck, ...]  # pairs outside the numbered layers (embeddings, final norm, head)
    errors: tuple[tuple[str, str], ...]  # (name, error line): could not be read


@dataclass(frozen=True)
class Report:
    overview: Overview
    summary: Summary  # parameters by component, layer and dtype; architecture facts
    diagram: LayerDiagram | None  # None when the names show no repeated layers
    tensors: ParamListing
    explanation: Explanation | None  # None when there is no readable config.json
    stats: WeightStats | None  # only with --stats (reads every byte)
    lang: str
    forward: Trace | None = None  # only with --trace (transformers runs the forward pass on the meta device)
    run: RunTrace | None = None  # only with --run: trace_run.run_trace(catalog, text)
    compare: Comparison | None = None  # only with --compare B


def _layer_split(name: str) -> tuple[str, int, str] | None:
    """ "model.layers.7.self_attn.q_proj.weight" -> ("model.layers.", 7, "self_attn.q_proj.weight")."""
    match = LAYER_PREFIX.match(name)
    if match is None:
        return None
    index = match.group(1)
    return match.group(0)[: -len(index) - 1], int(index), name[match.end() :]


def _first_place(name: str, places: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    return next((place for place, pattern in places if pattern.search(name)), None)


def _short(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def _folded(tensors: list[tuple[str, TensorInfo]]) -> tuple[DiagramTensor, ...]:
    """Relative names without '.weight'; experts.0..N-1 of equal shape shown once with a count."""
    counts: Counter[tuple[str, tuple[int, ...]]] = Counter()
    for relative, t in tensors:
        counts[(EXPERT_INDEX.sub(r"\1experts.*.", _short(relative)), t.shape)] += 1
    folded = [DiagramTensor(name, shape, n) for (name, shape), n in counts.items()]
    return tuple(sorted(folded, key=lambda t: (_rank(t.name), natural_key(t.name))))


def _rank(name: str) -> int:
    """Position of the tensor's module in COMPUTE_ORDER ("experts.*.w1.bias" -> rank of w1)."""
    parts = name.split(".")
    module = parts[-2] if parts[-1] in ("bias", "weight") and len(parts) > 1 else parts[-1]
    return RANK.get(module, len(RANK))


def layer_diagram(catalog: Catalog) -> LayerDiagram | None:
    """Blocks of layer 0 with their tensors' shapes, plus the embedding, final norm and head."""
    by_layer: dict[str, set[int]] = {}
    for t in catalog.tensors:
        split = _layer_split(t.name)
        if split:
            by_layer.setdefault(split[0], set()).add(split[1])
    if not by_layer:
        return None
    prefix = max(by_layer, key=lambda p: len(by_layer[p]))
    first = min(by_layer[prefix])
    ordered = sorted(catalog.tensors, key=lambda t: natural_key(t.name))
    layer: dict[str, list[tuple[str, TensorInfo]]] = {}
    modules: dict[str, list[str]] = {}
    other: list[tuple[str, TensorInfo]] = []
    outer: dict[str, list[tuple[str, TensorInfo]]] = {}
    for t in ordered:
        split = _layer_split(t.name)
        if split and split[0] == prefix:
            if split[1] != first:
                continue
            module, _, relative = split[2].partition(".")
            path = split[2].rpartition(".")[0]  # the submodule holding the tensor
            place = _first_place(path, POST_NORM_PLACES)
            if place is not None:
                module = path
            elif relative:
                place = _first_place(module, LAYER_PLACES)
            if place is None:
                other.append((split[2], t))
            else:
                layer.setdefault(place, []).append((split[2], t))
                if module not in modules.setdefault(place, []):
                    modules[place].append(module)
        elif not split:
            place = OUTER_PLACES.get(role_of(t.name)[0])
            if place == "final_norm" and "embed" in t.name:
                place = "embedding"  # BERT's embeddings.LayerNorm normalises the embedding output
            if place is not None:
                outer.setdefault(place, []).append((t.name, t))
    place_order = [p for p, _ in LAYER_PLACES + POST_NORM_PLACES]
    layer_blocks = tuple(
        DiagramBlock(place, ", ".join(modules[place]), _folded(layer[place]))
        for place in sorted(layer, key=place_order.index)
    )
    outer_blocks = tuple(
        DiagramBlock(place, ", ".join(_short(n) for n, _ in outer[place]), _folded(outer[place]))
        for place in ("embedding", "final_norm", "head")
        if place in outer
    )
    return LayerDiagram(prefix, len(by_layer[prefix]), outer_blocks, layer_blocks, _folded(other))


def overview(catalog: Catalog) -> Overview:
    config = catalog.config or {}
    architectures = config.get("architectures")
    architecture = architectures[0] if isinstance(architectures, list) and architectures else config.get("model_type")
    model_type = str(config["model_type"]) if "model_type" in config else None
    if architecture is None and isinstance(catalog.metadata.get(KEY_ARCHITECTURE), str):
        # A GGUF whose architecture maps to no transformers config still says what it is.
        architecture, model_type = catalog.metadata[KEY_ARCHITECTURE], KEY_ARCHITECTURE
    return Overview(
        model=catalog.name,
        architecture=str(architecture) if architecture is not None else None,
        model_type=model_type,
        format=catalog.format,
        files=len(catalog.files),
        size_on_disk=sum(file_size(f) for f in catalog.files),
        tensors=len(catalog.tensors),
    )


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def arrange_stats(report: StatsReport) -> WeightStats:
    """Per-tensor statistics grouped by (role, layer); experts of one layer merged exactly."""
    from .stats import combine

    cells: dict[str, dict[int, list[Stats]]] = {}
    outside = []
    for row in report.rows:
        split = _layer_split(row.name)
        if split is None:
            outside.append(row)
        else:
            cells.setdefault(role_key(row.name), {}).setdefault(split[1], []).append(row)
    layers = tuple(sorted({i for per_layer in cells.values() for i in per_layer}))
    trends = []
    for role in sorted(cells, key=lambda r: (_rank(r), natural_key(r))):
        merged = {i: members[0] if len(members) == 1 else combine(role, members) for i, members in cells[role].items()}
        trends.append(
            RoleTrend(
                role,
                tuple(finite_or_none(merged[i].std) if i in merged else None for i in layers),
                tuple(finite_or_none(merged[i].absmax) if i in merged else None for i in layers),
            )
        )
    flagged = sorted(
        (r for r in report.rows if r.nan or r.inf or r.beyond),
        key=lambda r: (-(r.nan + r.inf), -r.beyond / (r.numel or 1), natural_key(r.name)),
    )
    return WeightStats(
        layers, tuple(trends), tuple(outside), tuple(flagged), report.errors, report.tensors, report.nbytes
    )


# The worst status first: a cell is as bad as its worst tensor.
STATUS_RANK = {"different": 0, "unchecked": 1, "same": 2, "identical": 3}


def _pair_names(verification: Verification, catalog: Catalog) -> dict[str, str]:
    """A's stored name -> the pair's transformers name (verify names each check by its files'
    names: a GGUF's blk.0.attn_q.weight); a stored name shared by several pairs (a fused qkv
    split in three) is left out, and is then grouped under its own name."""
    places = {(t.file, t.offset): t.name for t in catalog.tensors}
    found: dict[str, set[str]] = {}
    for a, _ in verification.header.pairs:
        found.setdefault(places.get((a.file, a.offset), a.name), set()).add(a.name)
    return {stored: next(iter(names)) for stored, names in found.items() if len(names) == 1}


def _cell(checks: list[TensorCheck], names: list[str]) -> HeatCell:
    sum_aa = sum(c.sums[0] for c in checks)
    sum_dd = sum(c.sums[2] for c in checks)
    relative = math.sqrt(sum_dd / sum_aa) if sum_aa else (0.0 if sum_dd == 0 else math.inf)
    sqnr = math.inf if sum_dd == 0 else (10 * math.log10(sum_aa / sum_dd) if sum_aa else -math.inf)
    status = min((c.status for c in checks), key=STATUS_RANK.__getitem__)
    return HeatCell(status, relative, sqnr, max(c.max_abs for c in checks), tuple(names))


def compare_view(verification: Verification, catalog: Catalog, other: str) -> Comparison:
    """verify(A, B) as the report shows it; catalog: A's, whose stored names verify reports."""
    names = _pair_names(verification, catalog)
    grid: dict[tuple[int, str], list[tuple[TensorCheck, str]]] = {}
    outside = []
    for check in verification.tensors:
        name = names.get(check.a_name, check.a_name)
        split = _layer_split(name)
        if split is None:
            outside.append(check)
        else:
            grid.setdefault((split[1], role_key(name).removesuffix(".weight")), []).append((check, name))
    layers = tuple(sorted({layer for layer, _ in grid}))
    roles = tuple(sorted({role for _, role in grid}, key=lambda r: (_rank(r), natural_key(r))))
    cells = tuple(
        tuple(
            _cell([c for c, _ in grid[layer, role]], sorted((n for _, n in grid[layer, role]), key=natural_key))
            if (layer, role) in grid
            else None
            for role in roles
        )
        for layer in layers
    )
    return Comparison(
        other,
        verification.verdict,
        verification.findings,
        verification.overall,
        layers,
        roles,
        cells,
        tuple(sorted(outside, key=lambda c: natural_key(c.a_name))),
        verification.errors,
    )


def build_report(
    catalog: Catalog,
    lang: str = "en",
    stats: StatsReport | None = None,
    forward: Trace | None = None,
    run: RunTrace | None = None,
    compare: Comparison | None = None,
) -> Report:
    """Gather the report's content; `stats` is stats.weight_stats(catalog), `forward`
    trace.trace(catalog), `run` trace_run.run_trace(catalog, text) and `compare`
    compare_view(verify(catalog, B)) when asked for."""
    return Report(
        overview=overview(catalog),
        summary=summarize(catalog),
        diagram=layer_diagram(catalog),
        tensors=list_tensors(catalog),
        explanation=explain_config(catalog, lang)
        if catalog.config is not None and catalog.config_error is None
        else None,
        stats=arrange_stats(stats) if stats is not None else None,
        lang=lang,
        forward=forward,
        run=run,
        compare=compare,
    )
