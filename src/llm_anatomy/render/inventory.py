"""Render inventory rows: a JSON line or a CSV record each (the --out file, appended to as
rows come), and the summary table on stdout, sorted by location."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

from ..analysis.inventory import COLUMNS, Row
from .text import counted, human_bytes, human_count, table


def json_line(row: Row) -> str:
    return json.dumps(asdict(row), ensure_ascii=True) + "\n"


def csv_header() -> str:
    return csv_record(COLUMNS)


def csv_record(values: Sequence[object]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return text.getvalue()


def csv_line(row: Row) -> str:
    return csv_record([getattr(row, name) for name in COLUMNS])


def _cells(row: Row, deep: bool) -> list[str]:
    if row.error is not None:
        return [row.location, "error", "", "", "", "", "", *(["", ""] if deep else []), row.error]
    return [
        row.location,
        row.format or "",
        row.architecture or "",
        human_count(row.parameters or 0),
        row.dtypes or "",
        human_bytes(row.weights_memory or 0),
        human_bytes(row.kv_cache_per_1k_tokens) if row.kv_cache_per_1k_tokens is not None else "",
        *(_deep_cells(row) if deep else []),
        row.findings if row.findings is not None else "-",  # "-": not inspected (s3://)
    ]


def _deep_cells(row: Row) -> list[str]:
    """--deep's NaN/Inf counts and absmax (the hashes go to --json and --out only)."""
    if row.sha256 is None:
        return ["", ""]
    return [f"{row.nan_values}/{row.inf_values}", f"{row.absmax:.4g}" if row.absmax is not None else ""]


def text(rows: Sequence[Row]) -> str:
    """The table of rows, then a line of totals; rows read with --deep add two columns."""
    ordered = sorted(rows, key=lambda r: r.location)
    deep = any(r.sha256 is not None for r in ordered)
    header = (
        "location",
        "format",
        "architecture",
        "params",
        "dtypes",
        "weights",
        "KV/1k tokens",
        *(("NaN/Inf", "absmax") if deep else ()),
        "findings",
    )
    right = (3, 5, 6, 7, 8) if deep else (3, 5, 6)
    lines = table(header, [_cells(r, deep) for r in ordered], right=right) if ordered else []
    failed = sum(r.error is not None for r in ordered)
    lines.append(f"{counted(len(ordered), 'checkpoint')}, {failed} unreadable")
    return "\n".join(lines) + "\n"
