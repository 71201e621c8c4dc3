"""Render `trace --run`: the residual stream layer by layer (norms, massive activations,
attention entropy), the logit lens, and the model's own prediction; or JSON."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ..analysis.trace_run import EMBEDDINGS, ModuleRun, RunTrace
from ..core.text import escape
from .text import shape_text, significant, table, thousands, to_json
from .tree import BRANCH, LAST_BRANCH, PIPE, SPACE

LAYER_HEADER = (
    "after",
    "norm last",
    "norm mean",
    "median |h|",
    "largest h (position:channel)",
    "max/median",
    "entropy min",
    "entropy mean",
    "lens top-1",
)


def quoted(text: str) -> str:
    """A token's text in double quotes, spaces visible and newlines escaped: ' Paris' -> '" Paris"'."""
    return json.dumps(text, ensure_ascii=False)


def _lens_cell(predictions: tuple) -> str:
    return f"{quoted(predictions[0].text)} {predictions[0].probability:.3f}" if predictions else "-"


def _ratio(top: tuple, median: float) -> str:
    return f"{abs(top[0].value) / median:.1f}" if top and median else "-"


def _layer_rows(trace: RunTrace) -> list[tuple[str, ...]]:
    rows = []
    for layer in trace.layers:
        entropy = layer.entropy
        rows.append(
            (
                layer.label,
                significant(layer.norm_last),
                significant(layer.norm_mean),
                significant(layer.median_abs),
                ", ".join(f"{significant(a.value)} @{a.position}:{a.channel}" for a in layer.top),
                _ratio(layer.top, layer.median_abs),
                f"{min(entropy):.3f}" if entropy else "-",
                f"{sum(entropy) / len(entropy):.3f}" if entropy else "-",
                _lens_cell(layer.lens),
            )
        )
    return rows


def _entropy_lines(trace: RunTrace) -> list[str]:
    layers = [layer for layer in trace.layers if layer.entropy]
    if not layers:
        return []
    heads = len(layers[0].entropy)
    header = ("layer",) + tuple(f"h{i}" for i in range(heads))
    rows = [(layer.label,) + tuple(f"{e:.3f}" for e in layer.entropy) for layer in layers]
    return [
        "",
        "attention entropy per head, nats, averaged over query positions (0: each query attends to one key; a uniform spread over n keys: ln n)",
    ] + table(header, rows, right=range(1, heads + 1))


def _lens_lines(trace: RunTrace) -> list[str]:
    if trace.lens_norm is None:
        return []
    softcap = f", logits soft-capped at {trace.softcap:g} as the model does" if trace.softcap else ""
    lines = [
        "",
        f"logit lens at the last position ({quoted(trace.tokens[-1])}): {trace.lens_norm} ({trace.lens_norm_class}) then {trace.lens_head} applied to the stream after each layer{softcap}; top {len(trace.layers[0].lens)} next tokens with probabilities",
    ]
    rows = [
        (layer.label, "  ".join(f"{quoted(p.text)} {p.probability:.3f}" for p in layer.lens)) for layer in trace.layers
    ]
    return lines + table(("after", "tokens"), rows)


MODULE_HEADER = ("module", "output", "norm last", "norm mean", "max |x|")


def _number(value: float | None) -> str:
    return "-" if value is None else significant(value)


def _module_cells(m: ModuleRun) -> tuple[str, ...]:
    if not m.calls:
        return ("(not called)", "", "", "")
    calls = f" ({m.calls} calls, the first)" if m.calls > 1 else ""
    return (
        "-" if m.shape is None else shape_text(m.shape) + calls,
        _number(m.norm_last),
        _number(m.norm_mean),
        _number(m.max_abs),
    )


def module_lines(trace: RunTrace, depth: int) -> list[str]:
    """Every module down to depth levels below the model, box-drawn as `tree` draws it (layers
    are not folded: each has its own values), with its output's norms and largest |x|."""
    children: dict[str, list[ModuleRun]] = {m.path: [] for m in trace.modules}
    for m in trace.modules[1:]:
        children[m.path.rpartition(".")[0]].append(m)

    def rows(path: str, indent: str, left: int) -> list[tuple[str, ...]]:
        if left == 0:
            return []
        out = []
        for i, child in enumerate(children[path]):
            last = i == len(children[path]) - 1
            out.append(
                (f"{indent}{LAST_BRANCH if last else BRANCH}{child.path.rpartition('.')[2]}: {child.class_name}",)
                + _module_cells(child)
            )
            out += rows(child.path, indent + (SPACE if last else PIPE), left - 1)
        return out

    root = trace.modules[0]
    body = [(root.class_name,) + _module_cells(root)] + rows(root.path, "", depth)
    title = "each module's output (its first tensor, at its first call): L2 norms over the last dimension at the last token and averaged over tokens, and the largest |x|"
    return ["", title] + table(MODULE_HEADER, body, right=(2, 3, 4))


def text(trace: RunTrace, depth: int | None = None) -> str:
    """The layer tables; with depth, the module tree down to that many levels as well."""
    first, last = trace.layers[1].label, trace.layers[-1].label
    lines = [
        f"{trace.model_class} forward on {len(trace.token_ids)} tokens with its weights (CPU, float32, {thousands(trace.params)} parameters, transformers {trace.transformers_version})",
        "tokens: " + "  ".join(f"{i}:{quoted(t)}" for i, t in enumerate(trace.tokens)),
        f"residual stream entering {trace.layers_path}.0 ({EMBEDDINGS}) and leaving each of {trace.layers_path}.{first}-{last} ({trace.layer_class}): L2 norms over the hidden size, at the last position and averaged over positions",
    ]
    lines += table(LAYER_HEADER, _layer_rows(trace), right=(1, 2, 3, 5, 6, 7))
    lines += _entropy_lines(trace)
    lines += _lens_lines(trace)
    if trace.prediction:
        lines += [
            "",
            "the model's own next token: "
            + "  ".join(f"{quoted(p.text)} {p.probability:.3f}" for p in trace.prediction),
        ]
    if depth:
        lines += module_lines(trace, depth)
    lines += [escape(f"note: {note}") for note in trace.notes]
    return "\n".join(lines) + "\n"


def _predictions_json(predictions: tuple | None) -> list[dict[str, Any]] | None:
    if predictions is None:
        return None
    return [{"token_id": p.token_id, "text": p.text, "probability": p.probability} for p in predictions]


def json_text(trace: RunTrace) -> str:
    return (
        to_json(
            {
                "model": trace.model,
                "model_class": trace.model_class,
                "transformers_version": trace.transformers_version,
                "text": trace.text,
                "token_ids": list(trace.token_ids),
                "tokens": list(trace.tokens),
                "params": trace.params,
                "layers_path": trace.layers_path,
                "layer_class": trace.layer_class,
                "lens_norm": trace.lens_norm,
                "lens_norm_class": trace.lens_norm_class,
                "lens_head": trace.lens_head,
                "softcap": trace.softcap,
                "prediction": _predictions_json(trace.prediction),
                "layers": [
                    {
                        "after": layer.label,
                        "norm_last": layer.norm_last,
                        "norm_mean": layer.norm_mean,
                        "median_abs": layer.median_abs,
                        "top": [{"value": a.value, "position": a.position, "channel": a.channel} for a in layer.top],
                        "entropy": list(layer.entropy),
                        "lens": _predictions_json(layer.lens) if layer.lens else [],
                    }
                    for layer in trace.layers
                ],
                "modules": [
                    {
                        "path": m.path,
                        "class": m.class_name,
                        "calls": m.calls,
                        "shape": None if m.shape is None else list(m.shape),
                        "norm_last": m.norm_last,
                        "norm_mean": m.norm_mean,
                        "max_abs": m.max_abs,
                    }
                    for m in trace.modules
                ],
                "notes": list(trace.notes),
            }
        )
        + "\n"
    )


def _chart_label(label: str) -> str:
    return "emb" if label == EMBEDDINGS else label


def report_section(trace: RunTrace, words: dict) -> str:
    """The report's forward-pass section: norms and attention entropy by layer as charts, then
    each layer's largest activations and logit lens as a table."""
    from .html import element, esc, section, table as html_table
    from .svg import Series, line_chart

    categories = [_chart_label(layer.label) for layer in trace.layers]
    note = words["run_note"].format(model_class=trace.model_class, count=len(trace.token_ids), text=trace.text)
    parts = [element("p", esc(note), class_="note")]
    norms = [
        Series(words["norm_last"], tuple(layer.norm_last for layer in trace.layers)),
        Series(words["norm_mean"], tuple(layer.norm_mean for layer in trace.layers)),
    ]
    chart = line_chart(
        categories,
        norms,
        significant,
        words["layer_axis"],
        words["norm_axis"] + words["log"],
        words["run_norm_chart"],
        log=True,
    )
    parts += [element("h3", esc(words["run_norm_chart"])), element("div", chart, class_="figure")]
    if any(layer.entropy for layer in trace.layers):
        entropy = [
            Series(
                words["entropy_min"], tuple(min(layer.entropy) if layer.entropy else None for layer in trace.layers)
            ),
            Series(
                words["entropy_mean"],
                tuple(sum(layer.entropy) / len(layer.entropy) if layer.entropy else None for layer in trace.layers),
            ),
        ]
        chart = line_chart(
            categories,
            entropy,
            lambda v: f"{v:.3g}",
            words["layer_axis"],
            words["entropy_axis"],
            words["run_entropy_chart"],
        )
        parts += [element("h3", esc(words["run_entropy_chart"])), element("div", chart, class_="figure")]
    parts.append(element("h3", esc(words["run_table"])))
    if trace.lens_norm is not None:
        lens_note = words["run_lens_note"].format(
            norm=trace.lens_norm, norm_class=trace.lens_norm_class, head=trace.lens_head, token=quoted(trace.tokens[-1])
        )
        parts.append(element("p", esc(lens_note), class_="note"))
    header = (words["after"], words["largest"], words["max_median"]) + (
        (words["lens"],) if trace.lens_norm is not None else ()
    )
    rows = []
    for layer in trace.layers:
        row = (
            esc(_chart_label(layer.label)),
            element("code", esc(", ".join(f"{significant(a.value)} @{a.position}:{a.channel}" for a in layer.top))),
            esc(_ratio(layer.top, layer.median_abs)),
        )
        if trace.lens_norm is not None:
            row += (element("code", esc("  ".join(f"{quoted(p.text)} {p.probability:.3f}" for p in layer.lens))),)
        rows.append(row)
    parts.append(element("div", html_table(header, rows, numeric=(2,)), class_="scroll"))
    parts += [element("p", esc(f"note: {n}"), class_="note") for n in trace.notes]
    return section("run", words["run"], "".join(parts))
