"""Render a Summary: parameters by component, layer and dtype, the config check, weights
memory and KV cache with the formula behind them; or as JSON."""

from __future__ import annotations

from ..analysis.memory import Memory
from ..analysis.summary import LayerCount, QuantCount, Summary
from ..core.text import escape
from .explain import plain
from .text import human_bytes, human_count, printed, share, table, thousands, to_json


NOT_COUNTED_TEXT = {
    "buffers": "{tensors} buffer tensors ({values} values) stored beside the parameters",
    "quantization scales": "{tensors} quantization scale tensors ({values} values) beside the quantized weights",
    "multi-token prediction": "{tensors} tensors ({values} parameters) of the multi-token-prediction layers after the last layer (num_nextn_predict_layers), which transformers does not load",
}


def _fold_layers(layers: tuple[LayerCount, ...]) -> list[tuple[str, str, str, str]]:
    """Runs of consecutive layers with equal counts as one row: ('0-31', '32 x 202,383,360', ...)."""
    rows = []
    numbered = [layer for layer in layers if layer.index is not None]
    start = 0
    while start < len(numbered):
        end = start
        while (
            end + 1 < len(numbered)
            and numbered[end + 1].params == numbered[start].params
            and numbered[end + 1].index == numbered[end].index + 1
        ):
            end += 1
        first, last, run = numbered[start], numbered[end], end - start + 1
        label = str(first.index) if run == 1 else f"{first.index}-{last.index}"
        each = thousands(first.params) if run == 1 else f"{run} x {thousands(first.params)}"
        rows.append((label, each, thousands(first.params * run), human_bytes(first.nbytes * run)))
        start = end + 1
    rows += [
        ("outside layers", "", thousands(layer.params), human_bytes(layer.nbytes))
        for layer in layers
        if layer.index is None
    ]
    return rows


def _memory_lines(memory: Memory, dtypes: str) -> list[str]:
    lines = ["Weights memory:"]
    rows = [
        (
            f"stored ({dtypes})" if row.label == "stored" else row.label,
            f"{row.bits_per_weight:.2f}",
            human_bytes(row.nbytes),
        )
        for row in memory.weights
    ]
    lines += ["  " + line for line in table(("precision", "bits/weight", "memory"), rows, right=(1, 2))]
    cache = memory.kv_cache
    if memory.kv_cache_note:
        lines += ["", f"KV cache: none ({memory.kv_cache_note})"]
    elif cache is None:
        lines += ["", "KV cache: not computed (config.json lacks what it needs; see findings)"]
    else:
        lines += ["", f"KV cache ({cache.dtype}): {human_bytes(cache.bytes_per_token)} per token"]
        beyond = any(row.beyond_context for row in cache.rows)
        rows = [
            (thousands(row.context), str(row.batch), human_bytes(row.nbytes))
            + (("beyond the model's context" if row.beyond_context else "",) if beyond else ())
            for row in cache.rows
        ]
        lines += [
            "  " + line
            for line in table(("context", "batch", "KV cache") + (("",) if beyond else ()), rows, right=(0, 1, 2))
        ]
        lines += ["  " + line for line in cache.formula]
    limit = memory.context_limit
    if limit and limit.beyond:
        asked = ", ".join(thousands(c) for c in limit.beyond)
        verb = "is" if len(limit.beyond) == 1 else "are"
        lines.append(
            f"  ! {asked} {verb} beyond the model's context of {thousands(limit.tokens)} tokens ({limit.source}): it was not trained for such lengths"
        )
    return lines


def _quant_lines(q: QuantCount) -> list[str]:
    if not q.weights:
        return [f"Quantization: {escape(q.description)}; parameters counted as stored elements"]
    return [
        f"Quantization: {escape(q.description)} (quant_method {escape(q.method)})",
        f"  {q.weights} quantized weights: {thousands(q.params)} parameters as unquantized, {human_bytes(q.nbytes)} stored,"
        f" {q.bits_per_weight:.2f} bits per weight (scales, zeros and indices included)",
    ]


def _holds(summary: Summary) -> str:
    """Why a summary's counts are implied: what the checkpoint lacks."""
    return "the file holds no tensors" if summary.implied_by == "its metadata" else "no weights beside config.json"


def _head(summary: Summary) -> str:
    """The first line, after the model's name."""
    total = summary.total_params
    dtypes = ", ".join(d.name for d in summary.dtypes)
    if summary.implied_by:
        return f"{thousands(total)} parameters ({human_count(total)}) implied by {summary.implied_by} ({_holds(summary)}), {human_bytes(summary.total_nbytes)} in {dtypes or 'no tensors'} as loaded"
    return f"{thousands(total)} parameters ({human_count(total)}), {human_bytes(summary.total_nbytes)} in {dtypes or 'no tensors'}"


COMPONENT_HEADER = ("component", "params", "share", "bytes", "tensors")
LAYER_HEADER = ("layers", "params each", "params", "bytes")
DTYPE_HEADER = ("dtype", "params", "bytes", "tensors")
IMPLIED_HEADER = ("component", "config.json", "tensors", "")


def _component_rows(summary: Summary) -> list[tuple[str, ...]]:
    total = summary.total_params
    rows = [
        (c.name, thousands(c.params), share(c.params, total), human_bytes(c.nbytes), str(c.tensors))
        for c in summary.components
    ]
    rows.append(
        (
            "total",
            thousands(total),
            share(total, total),
            human_bytes(summary.total_nbytes),
            str(sum(c.tensors for c in summary.components)),
        )
    )
    return rows


def _component_notes(summary: Summary) -> list[str]:
    """Below the component table: how tied weights were counted, what was left out."""
    notes = list(summary.tied)
    notes += [
        f"not counted: {NOT_COUNTED_TEXT[group.name].format(tensors=group.tensors, values=thousands(group.params))}"
        for group in summary.not_counted
    ]
    return notes


def _moe_lines(summary: Summary) -> list[str]:
    moe = summary.moe
    if not moe:
        return []
    lines = [
        f"Mixture of experts: {thousands(moe.total)} total ({human_count(moe.total)}), {thousands(moe.active)} active per token ({human_count(moe.active)})",
        f"  {moe.formula}",
    ]
    if summary.quant and summary.quant.active_convention is not None:
        convention = summary.quant.active_convention
        lines.append(
            f"  without the embedding table (the output head kept), as gpt-oss's model card counts: {thousands(convention)} active ({human_count(convention)})"
        )
    return lines


def _dtype_rows(summary: Summary) -> list[tuple[str, ...]]:
    return [(d.name, thousands(d.params), human_bytes(d.nbytes), str(d.tensors)) for d in summary.dtypes]


def _implied_rows(summary: Summary) -> list[tuple[str, ...]]:
    return [
        (
            i.component,
            thousands(i.from_config),
            thousands(i.from_tensors),
            "ok" if i.from_config == i.from_tensors else "differs",
        )
        for i in summary.implied
    ]


def text(summary: Summary) -> str:
    dtypes = ", ".join(d.name for d in summary.dtypes)
    lines = [f"{escape(summary.model)}: {_head(summary)}", ""]
    lines += ["By component:"] + [
        "  " + line for line in table(COMPONENT_HEADER, _component_rows(summary), right=(1, 2, 3, 4))
    ]
    lines += [f"  {note}" for note in _component_notes(summary)]
    if summary.moe:
        lines += [""] + _moe_lines(summary)
    if summary.quant:
        lines += [""] + _quant_lines(summary.quant)
    lines += ["", "By layer:"] + [
        "  " + line for line in table(LAYER_HEADER, _fold_layers(summary.layers), right=(1, 2, 3))
    ]
    lines += ["", "By dtype:"] + ["  " + line for line in table(DTYPE_HEADER, _dtype_rows(summary), right=(1, 2, 3))]
    if summary.implied:
        lines += ["", "Weight matrices, config.json vs tensors:"] + [
            "  " + line for line in table(IMPLIED_HEADER, _implied_rows(summary), right=(1, 2))
        ]
    elif summary.implied_by:
        lines += ["", f"Weight matrices, config.json vs tensors: nothing to check ({_holds(summary)})"]
    lines += [""] + _memory_lines(summary.memory, dtypes)
    if summary.findings:
        lines += ["", "Findings:"] + [f"  {finding.line()}" for finding in summary.findings]
    return "\n".join(lines) + "\n"


# Numbers right-aligned, as in the text; scoped to the summary, as a notebook holds other output.
class NotebookSummary(Summary):
    """The Summary Model.summary() returns: print() shows what `llm-anatomy summary` prints,
    Jupyter its tables. Here, not in analysis (which must not import render)."""

    __slots__ = ()

    def __str__(self) -> str:
        return printed(text(self))

    def __repr__(self) -> str:
        return f"<Summary {self.model}: {self.total_params:,} parameters, {human_bytes(self.total_nbytes)}>"

    def _repr_html_(self) -> str:
        return html(self)


def html(summary: Summary) -> str:
    """The summary in Jupyter (NotebookSummary._repr_html_): the same rows as text(), as HTML
    tables; memory, KV cache and findings as the text shows them."""
    from .html import element, esc, notebook
    from .html import pre as text_block
    from .html import table as html_table

    def titled(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]], numeric: tuple[int, ...]) -> str:
        return element("h4", esc(title)) + html_table(
            header, [tuple(esc(cell) for cell in row) for row in rows], numeric=numeric
        )

    def pre(lines: list[str]) -> str:
        return text_block("\n".join(lines))

    dtypes = ", ".join(d.name for d in summary.dtypes)
    parts = [element("p", element("b", esc(summary.model)) + esc(f": {_head(summary)}"))]
    parts.append(titled("By component", COMPONENT_HEADER, _component_rows(summary), (1, 2, 3, 4)))
    parts += [element("p", esc(note)) for note in _component_notes(summary)]
    if summary.moe:
        parts.append(pre(_moe_lines(summary)))
    if summary.quant:
        parts.append(pre(_quant_lines(summary.quant)))
    parts.append(titled("By layer", LAYER_HEADER, _fold_layers(summary.layers), (1, 2, 3)))
    parts.append(titled("By dtype", DTYPE_HEADER, _dtype_rows(summary), (1, 2, 3)))
    if summary.implied:
        parts.append(titled("Weight matrices, config.json vs tensors", IMPLIED_HEADER, _implied_rows(summary), (1, 2)))
    elif summary.implied_by:
        parts.append(pre([f"Weight matrices, config.json vs tensors: nothing to check ({_holds(summary)})"]))
    parts.append(pre(_memory_lines(summary.memory, dtypes)))
    if summary.findings:
        parts.append(pre(["Findings:"] + [f"  {finding.line()}" for finding in summary.findings]))
    return notebook(element("div", "".join(parts), class_="llm-anatomy-summary"))


def json_text(summary: Summary) -> str:
    return to_json(plain(summary)) + "\n"
