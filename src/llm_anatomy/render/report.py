"""Render a Report as one self-contained HTML page: inline style, inline SVG charts drawn
here, and a few lines of inline script for sorting and filtering the tables."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Sequence

from .._version import __version__
from ..analysis.architecture import Architecture
from ..analysis.report import (
    Comparison,
    DiagramBlock,
    DiagramTensor,
    HeatCell,
    LayerDiagram,
    Report,
    WeightStats,
    finite_or_none,
)
from .explain import derived_facts, value_text
from .html import asset, breakable, element, esc, page, section, table
from .svg import (
    Bar,
    Box,
    Flow,
    HeatLegend,
    Residual,
    Series,
    Tile,
    bar_chart,
    column_chart,
    flow_diagram,
    heat_map,
    line_chart,
)
from .text import human_bytes, human_count, shape_text, share, thousands
from .wording import labels, worded

if TYPE_CHECKING:
    from ..analysis.stats import Stats

# Words of the page in each language (assets/report-labels.json); the explained config
# follows the same --lang.
LABELS = labels()


def _tensor_rows(tensors: Sequence[DiagramTensor], strip: str = "") -> tuple[str, ...]:
    names = [t.name.removeprefix(strip) + (f" × {t.count}" if t.count > 1 else "") for t in tensors]
    width = max((len(n) for n in names), default=0)
    return tuple(f"{n.ljust(width)}  {shape_text(t.shape)}" for n, t in zip(names, tensors))


def _subtitle(place: str, arch: Architecture | None, words: dict) -> str:
    """The architecture facts a block's shapes come from ("GQA: 32 heads · 8 KV heads · head_dim 128")."""
    if arch is None:
        return ""
    if place == "embedding" and arch.vocab_size and arch.hidden_size:
        return words["embedding_facts"].format(vocab=thousands(arch.vocab_size), hidden=arch.hidden_size)
    if place == "attention" and arch.attention == "MLA" and arch.num_heads:
        return words["mla_facts"].format(heads=arch.num_heads, rank=arch.kv_lora_rank)
    if place == "attention" and arch.attention and arch.num_heads and arch.head_dim:
        return words["attention_facts"].format(
            kind=arch.attention, heads=arch.num_heads, kv=arch.num_kv_heads, head_dim=arch.head_dim
        )
    if place == "ffn" and arch.ffn == "MoE" and arch.num_experts and arch.experts_per_token:
        return words["moe_facts"].format(experts=arch.num_experts, per_token=arch.experts_per_token)
    if place == "ffn" and arch.hidden_size and arch.intermediate_size:
        return words["dense_facts"].format(
            hidden=arch.hidden_size, inner=arch.intermediate_size, gated=words["gated"] if arch.gated_ffn else ""
        )
    if place == "head" and arch.vocab_size:
        return words["head_facts"].format(vocab=thousands(arch.vocab_size))
    return ""


def _box(block: DiagramBlock, arch: Architecture | None, words: dict) -> Box:
    """Norms show their module's name in the rows; attention and FFN in the title, rows relative to it."""
    if block.place.endswith("norm"):
        return Box(words[block.place], _tensor_rows(block.tensors), "norm")
    is_moe = block.place == "ffn" and any(t.count > 1 for t in block.tensors)
    title = words["experts" if is_moe else block.place]
    # Rows are relative to the submodule named in the title, when there is one.
    strip = f"{block.module}." if block.place in ("attention", "ffn") and ", " not in block.module else ""
    title = f"{title} ({block.module})" if block.place in ("attention", "ffn") else title
    return Box(title, _tensor_rows(block.tensors, strip), block.place, _subtitle(block.place, arch, words))


def diagram_flow(diagram: LayerDiagram, arch: Architecture | None, words: dict) -> Flow:
    """The layer: [norm, attention] + residual, then [norm, FFN] + residual (pre-norm), or
    [attention] + residual -> norm, [FFN] + residual -> norm (post-norm, BERT).

    A post_attention_layernorm is the norm before the FFN unless the layer also has a
    pre_feedforward_layernorm (Gemma 2/3), where it normalises the attention output."""
    places = {b.place: b for b in diagram.layer}
    sandwich = "pre_ffn_norm" in places
    attention = ["pre_attention_norm", "attention"] + (["post_attention_norm"] if sandwich else [])
    ffn = ([] if sandwich else ["post_attention_norm"]) + ["pre_ffn_norm", "ffn", "post_ffn_norm"]
    groups = ((attention, "attention_residual_norm"), (ffn, "ffn_residual_norm"))
    repeated = tuple(
        Residual(
            tuple(_box(places[p], arch, words) for p in group if p in places),
            tuple(_box(places[after], arch, words) for after in (after,) if after in places),
        )
        for group, after in groups
        if any(p in places for p in group)
    )
    before = tuple(_box(b, arch, words) for b in diagram.outer if b.place == "embedding")
    after = [_box(b, arch, words) for b in diagram.outer if b.place != "embedding"]
    if diagram.block("head") is None and arch is not None and arch.tied_embeddings and arch.has_output_head:
        after.append(Box(words["tied_head"], (), "head", _subtitle("head", arch, words)))
    if diagram.other:
        after.insert(0, Box(words["other"].format(n=0), _tensor_rows(diagram.other), "plain"))
    return Flow(before, repeated, tuple(after), words["repeat"].format(n=diagram.layers))


def _facts(report: Report, words: dict) -> str:
    o, summary = report.overview, report.summary
    files = f"{o.files} {words['file' if o.files == 1 else 'files']}"
    items = [
        (words["architecture"], o.architecture or "?", o.model_type or ""),
        (
            words["parameters"],
            human_count(summary.total_params),
            thousands(summary.total_params)
            + (words["active"].format(active=human_count(summary.moe.active)) if summary.moe else ""),
        ),
        (words["dtype"], ", ".join(d.name for d in summary.dtypes), ""),
        (words["size"], human_bytes(o.size_on_disk), f"{thousands(o.size_on_disk)} B"),
        (words["format"], o.format, files),
        (words["tensors"], thousands(o.tensors), ""),
    ]
    if report.diagram is not None:
        items.insert(2, (words["layers"], str(report.diagram.layers), ""))
    tiles = (
        element(
            "div",
            element("dt", esc(k))
            + element(
                "dd", (breakable(v) if k == words["architecture"] else esc(v)) + (element("small", esc(d)) if d else "")
            ),
        )
        for k, v, d in items
    )
    return element("dl", "".join(tiles), class_="facts")


def _header(report: Report, words: dict, anchors: Sequence[tuple[str, str]]) -> str:
    toc = element(
        "nav", "".join(element("a", esc(title), href=f"#{anchor}") for anchor, title in anchors), class_="toc"
    )
    return element(
        "header",
        element("p", esc(words["kicker"]), class_="kicker")
        + element("h1", breakable(report.overview.model))
        + _facts(report, words)
        + toc,
        class_="top",
    )


def _arch_facts(arch: Architecture | None, lang: str) -> str:
    """The facts the config implies (head_dim, attention kind, FFN, context...), as `config --explain` words them."""
    if arch is None:
        return ""
    rows = (
        element("div", element("dt", esc(label)) + element("dd", esc(value)))
        for label, value in derived_facts(arch, lang)
    )
    return element("dl", "".join(rows), class_="arch")


def layer_figure(diagram: LayerDiagram, arch: Architecture | None, lang: str = "en") -> str:
    """The decoder-layer diagram as SVG: the report's figure, and a layer's view in Jupyter."""
    words = LABELS[lang]
    return flow_diagram(diagram_flow(diagram, arch, words), words["diagram"])


def _diagram_section(report: Report, words: dict) -> str:
    facts = _arch_facts(report.summary.architecture, report.lang)
    if report.diagram is None:
        return section("diagram", words["diagram"], element("p", esc(words["no_layers"]), class_="note") + facts)
    svg = layer_figure(report.diagram, report.summary.architecture, report.lang)
    row = element("div", element("div", svg, class_="figure") + facts, class_="diagram-row")
    return section("diagram", words["diagram"], element("p", esc(words["diagram_note"]), class_="note") + row)


def _marked(lines: Sequence[tuple[str, str | None]], severity: str) -> str:
    """Findings as a list of (text, English detail shown on hover or None), each behind a "!"
    pill coloured by severity (warn, bad)."""
    return element(
        "ul",
        "".join(
            element("li", element("span", "!", class_=f"pill {severity}") + " " + esc(text), title=detail)
            for text, detail in lines
        ),
        class_="findings",
    )


def _all_clear(text: str) -> str:
    return element("p", element("span", "✓", class_="pill ok") + " " + esc(text), class_="note")


def _axis_count(n: float) -> str:
    """Axis ticks: 300M, 2.5B (human_count without the trailing zeros)."""
    text = human_count(n)
    number = text.rstrip("KMBT")
    return (number.rstrip("0").rstrip(".") if "." in number else number) + text[len(number) :]


def _outside_parts(report: Report, words: dict) -> str:
    """What sits outside the numbered layers, as the diagram draws it ("embeddings, final norm,
    head"), and "other" for tensors it has no box for (BERT's pooler)."""
    diagram, arch = report.diagram, report.summary.architecture
    if diagram is None:
        return words["outside_parts"]["other"]
    places = [b.place for b in diagram.outer]
    if "head" not in places and arch is not None and arch.tied_embeddings and arch.has_output_head:
        places.append("head")  # drawn as the tied head
    drawn = sum(math.prod(t.shape) * t.count for b in diagram.outer for t in b.tensors)
    outside = sum(layer.params for layer in report.summary.layers if layer.index is None)
    if outside > drawn:
        places.append("other")
    return words["outside_parts_joiner"].join(words["outside_parts"][p] for p in places)


def _params_section(report: Report, words: dict) -> str:
    summary = report.summary
    total = summary.total_params
    tones = list(words["components"])
    components = [
        Bar(
            words["components"].get(c.name, c.name),
            c.params,
            f"{human_count(c.params)} ({share(c.params, total)})",
            tones.index(c.name) if c.name in tones else -1,
        )
        for c in summary.components
    ]
    parts = [element("h3", esc(words["by_component"]))]
    if components:
        parts.append(element("div", bar_chart(components, words["by_component"]), class_="figure"))
    if summary.moe is not None:
        parts.append(
            element(
                "p",
                esc(words["moe"].format(total=thousands(summary.moe.total), active=thousands(summary.moe.active))),
                class_="note",
            )
        )
    parts += [element("p", esc(worded(note, words)[0]), class_="note") for note in summary.tied]
    if any(layer.index is not None for layer in summary.layers):  # a model of numbered layers
        categories = [words["outside"] if layer.index is None else str(layer.index) for layer in summary.layers]
        inside = Series(
            words["in_layers"],
            tuple(float(layer.params) if layer.index is not None else None for layer in summary.layers),
        )
        outside = Series(
            words["outside_layers"].format(parts=_outside_parts(report, words)),
            tuple(float(layer.params) if layer.index is None else None for layer in summary.layers),
        )
        chart = column_chart(
            categories, [inside, outside], _axis_count, words["layer_axis"], words["params_axis"], words["by_layer"]
        )
        parts += [element("h3", esc(words["by_layer"])), element("div", chart, class_="figure")]
    rows = [
        (
            esc(d.name),
            esc(thousands(d.tensors)),
            esc(thousands(d.params)),
            esc(human_bytes(d.nbytes)),
            esc(share(d.params, total)),
        )
        for d in summary.dtypes
    ]
    parts += [
        element("h3", esc(words["by_dtype"])),
        table(
            (words["dtype"], words["tensors"], words["params"], words["bytes"], words["share"]),
            rows,
            numeric=(1, 2, 3, 4),
        ),
    ]
    parts.append(element("h3", esc(words["findings"])))
    if summary.findings:
        parts.append(_marked([worded(f, words) for f in summary.findings], "warn"))
    elif summary.implied_by:  # the shapes are the ones the config implies: nothing was checked
        parts.append(element("p", esc(words["nothing_to_check"]), class_="note"))
    else:
        parts.append(_all_clear(words["no_findings"]))
    return section("params", words["parameters"], "".join(parts))


def _config_section(report: Report, words: dict) -> str:
    explanation = report.explanation
    if explanation is None:
        return section("config", words["config"], element("p", esc(words["no_config"]), class_="note"))
    rows = [
        (
            element("code", esc(f.path), style=f"padding-left:{1.5 * f.depth}em" if f.depth else None),
            element("code", esc(value_text(f.value))),
            esc(f.text) if f.text is not None else element("span", esc(words["no_entry"]), class_="missing"),
        )
        for f in explanation.fields
    ]
    note = words["config_note"].format(count=len(explanation.fields), missing=len(explanation.unexplained))
    body = element("p", esc(note), class_="note") + table(
        (words["field"], words["value"], words["meaning"]), rows, class_="explain"
    )
    return section("config", words["config"], body)


FLAGGED_SHOWN = 50  # rows of the findings table; the rest are counted
# Rows of the tensor table: every tensor of any dense model, and a page that stays under
# 2 MB for the largest mixtures of experts (DeepSeek-V3 has about 91,000 tensors).
TABLE_ROWS = 4000


def _stat(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _stats_chart(stats: WeightStats, metric: str, words: dict) -> str:
    series = [Series(t.role.removesuffix(".weight"), getattr(t, metric)) for t in stats.trends]
    values = [v for s in series for v in s.values if v is not None]
    log = bool(values) and min(values) > 0  # a log axis shows norms (~1) and projections (~0.02) together
    label = words[f"{metric}_chart"]
    chart = line_chart(
        [str(i) for i in stats.layers],
        series,
        _stat,
        words["layer_axis"],
        words[f"{metric}_axis"] + (words["log"] if log else ""),
        label,
        log=log,
    )
    return element("h3", esc(label)) + element("div", chart, class_="figure")


def _flag_row(row: Stats) -> tuple[str, ...]:
    return (
        element("code", _breakable(row.name)),
        esc(thousands(row.nan)),
        esc(thousands(row.inf)),
        esc(f"{thousands(row.beyond)} ({row.beyond / (row.numel or 1):.2e})"),
        esc(_stat(finite_or_none(row.std))),
        esc(_stat(finite_or_none(row.absmax))),
    )


def stats_section(stats: WeightStats, words: dict) -> str:
    parts = [
        element(
            "p",
            esc(words["stats_note"].format(tensors=thousands(stats.tensors), size=human_bytes(stats.nbytes))),
            class_="note",
        )
    ]
    if stats.trends:
        parts += [_stats_chart(stats, "std", words), _stats_chart(stats, "absmax", words)]
    parts.append(element("h3", esc(words["flagged"])))
    if stats.flagged:
        shown = stats.flagged[:FLAGGED_SHOWN]
        header = (words["name"], "NaN", "Inf", words["beyond"], "std", "absmax")
        rows = [_flag_row(r) for r in shown]
        keys = [
            (None, r.nan, r.inf, r.beyond / (r.numel or 1), finite_or_none(r.std), finite_or_none(r.absmax))
            for r in shown
        ]
        # Rows with NaN or Inf are errors, rows with only outliers are warnings.
        marks = ["bad" if r.nan or r.inf else "warn" for r in shown]
        grid = table(
            header, rows, numeric=(1, 2, 3, 4, 5), sort_keys=keys, row_classes=marks, class_="sortable flagged"
        )
        parts.append(element("div", grid, class_="scroll"))
        if len(stats.flagged) > FLAGGED_SHOWN:
            parts.append(
                element(
                    "p",
                    esc(words["more_flagged"].format(count=thousands(len(stats.flagged) - FLAGGED_SHOWN))),
                    class_="note",
                )
            )
    else:
        parts.append(_all_clear(words["none_flagged"]))
    if stats.outside:
        rows = [
            (
                element("code", _breakable(r.name)),
                esc(_stat(finite_or_none(r.mean))),
                esc(_stat(finite_or_none(r.std))),
                esc(_stat(finite_or_none(r.absmax))),
                esc(f"{r.zero_fraction:.2%}"),
            )
            for r in stats.outside
        ]
        parts += [
            element("h3", esc(words["outside_stats"])),
            table((words["name"], words["mean"], "std", "absmax", words["zeros"]), rows, numeric=(1, 2, 3, 4)),
        ]
    if stats.errors:
        parts += [
            element("h3", esc(words["unreadable"])),
            _marked(
                [
                    (words["unreadable_tensor"].format(name=name), line)
                    if "unreadable_tensor" in words
                    else (line, None)
                    for name, line in stats.errors
                ],
                "bad",
            ),
        ]
    return section("stats", words["stats"], "".join(parts))


# The heat map's colours: ColorBrewer's YlOrRd, light (small error) to dark (large); identical
# tiles are green, off the scale, and tiles beyond the noise are outlined (report.css).
HEAT_STOPS = ((255, 255, 204), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38))
HEAT_IDENTICAL = "#a6d9a0"
HEAT_OUTLINE = "#1f2328"  # the page's ink
STEPS_PER_DECADE = 4  # of the legend's ramp
FINDINGS_SHOWN = 20
NAMES_IN_TIP = 4  # a tile of 64 experts names the first few of its tensors


def heat_colour(fraction: float) -> str:
    """The colour at FRACTION (0 to 1, clamped) along HEAT_STOPS."""
    where = min(max(fraction, 0.0), 1.0) * (len(HEAT_STOPS) - 1)
    i = min(int(where), len(HEAT_STOPS) - 2)
    t = where - i
    low, high = HEAT_STOPS[i], HEAT_STOPS[i + 1]
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high))


# The colour scale's powers of ten, the same on every page so that colours compare across
# reports: float16 rounding (about 3e-4) lands in the yellows, Q8_0 (5e-3) in the oranges, 4-bit
# types (0.1) in the reds, unrelated values (1.4) at the dark end; widened for errors beyond.
DECADES = (-6, 1)


def _decades(cells: Sequence[HeatCell]) -> tuple[int, int]:
    errors = [c.rel_rmse for c in cells if 0 < c.rel_rmse < math.inf]
    low = min([DECADES[0]] + [math.floor(math.log10(e)) for e in errors])
    high = max([DECADES[1]] + [math.ceil(math.log10(e)) for e in errors])
    return low, high


def column_labels(roles: Sequence[str]) -> list[str]:
    """A role's last part ("q_proj" for "self_attn.q_proj") where no other role ends the same way."""
    ends = Counter(role.rsplit(".", 1)[-1] for role in roles)
    return [role.rsplit(".", 1)[-1] if ends[role.rsplit(".", 1)[-1]] == 1 else role for role in roles]


def _tip(layer: int, role: str, cell: HeatCell, words: dict) -> str:
    names = ", ".join(cell.names[:NAMES_IN_TIP]) + (" …" if len(cell.names) > NAMES_IN_TIP else "")
    return words["cell_tip"].format(
        layer=layer,
        role=role,
        status=words["statuses"][cell.status],
        rel=f"{cell.rel_rmse:.4g}",
        sqnr=f"{cell.sqnr_db:.4g}",
        max_abs=f"{cell.max_abs:.4g}",
        names=names,
    )


def _tile(layer: int, role: str, cell: HeatCell, decades: tuple[int, int], words: dict) -> Tile:
    tip = _tip(layer, role, cell, words)
    marked, outline = ("beyond", HEAT_OUTLINE) if cell.status == "different" else ("", "")
    if cell.rel_rmse == 0:
        return Tile(HEAT_IDENTICAL, tip, f"identical {marked}".strip(), outline)
    low, high = decades
    fraction = (math.log10(cell.rel_rmse) - low) / (high - low) if cell.rel_rmse < math.inf else 1.0
    return Tile(heat_colour(fraction), tip, marked, outline)


def compare_heat_map(comparison: Comparison, words: dict) -> str:
    """Layers by roles, coloured by relative RMSE on a log scale, with its legend."""
    decades = _decades([c for row in comparison.cells for c in row if c is not None])
    low, high = decades
    steps = (high - low) * STEPS_PER_DECADE
    legend = HeatLegend(
        tuple(heat_colour((i + 0.5) / steps) for i in range(steps)),
        tuple(((p - low) / (high - low), f"1e{p}") for p in range(low, high + 1)),
        words["rel_rmse_scale"],
        (
            (Tile(HEAT_IDENTICAL, "", "identical"), words["cell_identical"]),
            (Tile(heat_colour(1.0), "", "beyond", HEAT_OUTLINE), words["cell_beyond"]),
        ),
    )
    tiles = [
        [
            None if cell is None else _tile(layer, role, cell, decades, words)
            for role, cell in zip(comparison.roles, row)
        ]
        for layer, row in zip(comparison.layers, comparison.cells)
    ]
    return heat_map(
        [str(layer) for layer in comparison.layers],
        column_labels(comparison.roles),
        tiles,
        legend,
        words["layer_axis"],
        words["heatmap"],
    )


def compare_section(comparison: Comparison, words: dict) -> str:
    overall = comparison.overall
    severity = {"pass": "ok", "warn": "warn", "fail": "bad"}[comparison.verdict]
    statuses = ", ".join(f"{thousands(n)} {words['statuses'][status]}" for status, n in overall.statuses.items() if n)
    parts = [
        element("p", esc(words["compare_note"].format(other=comparison.other)), class_="note"),
        element(
            "p",
            element("span", "✓" if severity == "ok" else "!", class_=f"pill {severity}")
            + " "
            + element("strong", esc(words["verdict"].format(verdict=words["verdicts"][comparison.verdict]))),
        ),
        element(
            "p",
            esc(
                words["compare_overall"].format(
                    tensors=thousands(overall.tensors),
                    statuses=statuses,
                    rel=f"{overall.rel_rmse:.4g}",
                    sqnr=f"{overall.sqnr_db:.4g}",
                )
            ),
            class_="note",
        ),
        element("h3", esc(words["compare_findings"])),
    ]
    if comparison.findings:
        shown = comparison.findings[:FINDINGS_SHOWN]
        # verify's own sentences (tensor names in them), as `llm-anatomy verify` prints them
        parts.append(
            element(
                "ul",
                "".join(
                    element(
                        "li",
                        element("span", "!", class_=f"pill {'bad' if severity == 'bad' else 'warn'}")
                        + " "
                        + element("code", esc(line)),
                    )
                    for line in shown
                ),
                class_="findings",
            )
        )
        if len(comparison.findings) > FINDINGS_SHOWN:
            more = words["more_findings"].format(count=thousands(len(comparison.findings) - FINDINGS_SHOWN))
            parts.append(element("p", esc(more), class_="note"))
    else:
        parts.append(_all_clear(words["compare_all_clear"]))
    parts.append(element("h3", esc(words["heatmap"])))
    if comparison.layers:
        parts.append(element("div", compare_heat_map(comparison, words), class_="figure"))
    else:
        parts.append(element("p", esc(words["no_layer_pairs"]), class_="note"))
    if comparison.outside:
        rows = [
            (
                element("code", _breakable(c.a_name)),
                esc(words["statuses"][c.status]),
                esc(f"{c.rel_rmse:.4g}"),
                esc(f"{c.sqnr_db:.4g}"),
                esc(f"{c.max_abs:.4g}"),
            )
            for c in comparison.outside
        ]
        marks = ["bad" if c.status == "different" else None for c in comparison.outside]
        header = (words["name"], words["status"], words["rel_rmse"], words["sqnr"], words["max_abs"])
        parts += [
            element("h3", esc(words["compare_outside"])),
            table(header, rows, numeric=(2, 3, 4), row_classes=marks),
        ]
    if comparison.errors:
        parts += [
            element("h3", esc(words["unreadable"])),
            _marked([(line, None) for _, line in comparison.errors], "bad"),
        ]
    return section("compare", words["compare"].format(other=comparison.other), "".join(parts))


def _breakable(name: str) -> str:
    """A dotted name that wraps only after its dots (<wbr>), never inside a word."""
    return ".<wbr>".join(esc(part) for part in name.split("."))


def _tensor_section(report: Report, words: dict) -> str:
    listing = report.tensors
    shown = listing.rows[:TABLE_ROWS]
    header = (words["name"], words["shape"], words["dtype"], words["params"], words["bytes"], words["file_column"])
    rows = [
        (
            element("code", _breakable(r.name)),
            element("code", esc(shape_text(r.shape))),
            esc(r.dtype),
            esc(thousands(r.numel)),
            esc(human_bytes(r.nbytes)),
            esc(r.file),
        )
        for r in shown
    ]
    keys = [(None, None, None, r.numel, r.nbytes, None) for r in shown]
    grid = table(header, rows, numeric=(3, 4), sort_keys=keys, class_="sortable", id="tensor-table")
    controls = element(
        "div",
        element(
            "label",
            esc(words["filter"])
            + " "
            + f'<input type="search" data-filter="tensor-table" data-count="tensor-count" placeholder="{esc(words["filter_hint"])}">',
        )
        + element("span", element("span", str(len(shown)), id="tensor-count") + " " + esc(words["shown"])),
        class_="controls",
    )
    cut = len(listing.rows) - len(shown)
    note = (
        element(
            "p",
            esc(words["table_cut"].format(shown=thousands(len(shown)), total=thousands(len(listing.rows)))),
            class_="note",
        )
        if cut
        else ""
    )
    return section("tensors", words["tensor_table"], note + controls + element("div", grid, class_="scroll"))


def render_report(report: Report) -> str:
    """The whole page as one string."""
    words = LABELS[report.lang]
    sections = [
        ("diagram", words["diagram"], _diagram_section(report, words)),
        ("params", words["parameters"], _params_section(report, words)),
        ("config", words["config"], _config_section(report, words)),
        ("tensors", words["tensor_table"], _tensor_section(report, words)),
    ]
    if report.stats is not None:
        sections.insert(2, ("stats", words["stats"], stats_section(report.stats, words)))
    if report.forward is not None:
        from .trace import forward_section

        sections.insert(2, ("forward", words["forward"], forward_section(report.forward, words)))
    if report.run is not None:
        from .trace_run import report_section

        sections.insert(1, ("run", words["run"], report_section(report.run, words)))
    if report.compare is not None:
        body = compare_section(report.compare, words)
        sections.insert(1, ("compare", words["compare_title"], body))
    footer_words = words["footer_run" if report.run is not None else "footer"]
    read_weights = report.stats is not None or report.compare is not None
    footer = element(
        "footer", esc(footer_words.format(version=__version__, stats=words["footer_stats"] if read_weights else ""))
    )
    body = element(
        "main", _header(report, words, [(a, t) for a, t, _ in sections]) + "".join(s for _, _, s in sections) + footer
    )
    return page(f"{report.overview.model} · llm-anatomy", report.lang, body, asset("report.css"), asset("report.js"))
