"""`scan --html FILE`: the inventory as one page in the report's style (its stylesheet and
table script inlined, no external resource: the report's Content Security Policy), one row
per checkpoint in a table sortable by every column, findings as pills coloured by severity,
rows with a critical or high finding (or unreadable) marked as the report marks them."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from ..analysis.inventory import Row, counts_of
from ..analysis.scan.rules import RANK, SEVERITIES
from .html import asset, element, esc, page, table
from .text import counted, human_bytes, human_count

# A severity's pill: the report's classes (bad red, warn amber, ok green); info plain.
PILL = {"critical": "pill bad", "high": "pill bad", "medium": "pill warn", "low": "pill ok", "info": "pill"}
# A row's mark: the report's tr.bad and tr.warn, from its worst finding.
MARK = {"critical": "bad", "high": "bad", "medium": "warn"}
HEADER = (
    "location",
    "format",
    "architecture",
    "params",
    "active",
    "dtypes",
    "quantization",
    "bits/weight",
    "weights",
    "KV/1k tokens",
    "context",
    "license",
    "findings",
    "error",
)
DEEP_HEADER = ("NaN", "Inf", "absmax")
NUMERIC = (3, 4, 7, 8, 9, 10)


def _findings(row: Row) -> tuple[str, float | None]:
    """The findings cell (a pill per severity) and its sort key (worst severity first, then count)."""
    if row.findings is None:
        return element("span", "not inspected", class_="missing"), None
    counts = counts_of(row.findings)
    pills = " ".join(element("span", esc(f"{s} {counts[s]}"), class_=PILL[s]) for s in SEVERITIES if counts.get(s))
    text = pills or esc("0")
    note = row.findings.partition(" (")[2]  # "pickles not read)"
    if note:
        text += " " + element("span", esc("(" + note), class_="missing")
    worst = max((RANK[s] for s in counts), default=0)
    return text, worst * 1_000_000 + sum(counts.values())


def _mark(row: Row) -> str | None:
    if row.error is not None:
        return "bad"
    worst = max(counts_of(row.findings), key=lambda s: RANK[s], default=None)
    return MARK.get(worst) if worst is not None else None


def _number(value: object, shown: str) -> tuple[str, object]:
    return (shown, value) if value is not None else ("", None)


def _cells(row: Row, deep: bool) -> tuple[list[str], list[object]]:
    findings, findings_key = _findings(row)
    pairs = [
        (element("code", esc(row.location)), None),
        (esc(row.format or ""), None),
        (esc(row.architecture or ""), None),
        _number(row.parameters, esc(human_count(row.parameters or 0))),
        _number(row.active_parameters, esc(human_count(row.active_parameters or 0))),
        (esc(row.dtypes or ""), None),
        (esc(row.quantization or ""), None),
        _number(row.bits_per_weight, esc(f"{row.bits_per_weight:g}" if row.bits_per_weight is not None else "")),
        _number(row.weights_memory, esc(human_bytes(row.weights_memory or 0))),
        _number(row.kv_cache_per_1k_tokens, esc(human_bytes(row.kv_cache_per_1k_tokens or 0))),
        _number(row.context_length, esc(str(row.context_length))),
        (esc(row.license or ""), None),
        (findings, findings_key),
        (esc(row.error or ""), None),
    ]
    if deep:
        pairs[-2:-2] = [
            _number(row.nan_values, esc(str(row.nan_values))),
            _number(row.inf_values, esc(str(row.inf_values))),
            _number(row.absmax, esc(f"{row.absmax:.4g}" if row.absmax is not None else "")),
        ]
    return [cell for cell, _ in pairs], [key for _, key in pairs]


def page_of(rows: Sequence[Row], title: str = "inventory") -> str:
    """The inventory page: a line of totals, then the table of rows sorted by location."""
    ordered = sorted(rows, key=lambda r: r.location)
    deep = any(r.sha256 is not None for r in ordered)
    header = HEADER[:-2] + DEEP_HEADER + HEADER[-2:] if deep else HEADER
    numeric = NUMERIC + ((12, 13, 14) if deep else ())
    cells = [_cells(r, deep) for r in ordered]
    failed = sum(r.error is not None for r in ordered)
    summary = f"{counted(len(ordered), 'checkpoint')}, {failed} unreadable"
    body = element(
        "main",
        element("h1", esc(f"{title} · llm-anatomy"))
        + element("p", esc(summary))
        + element(
            "div",
            table(
                header,
                [c for c, _ in cells],
                numeric=numeric,
                sort_keys=[k for _, k in cells],
                row_classes=[_mark(r) for r in ordered],
                class_="sortable",
                id="inventory-table",
            ),
            class_="scroll",
        ),
    )
    return page(f"{title} · llm-anatomy", "en", body, asset("report.css"), asset("report.js"))
