"""Render a StatsReport as a table, JSON or CSV (full float precision in JSON and CSV)."""

from __future__ import annotations

import csv
import io
import math

from ..analysis.stats import SIGMAS, StatsReport
from .text import human_bytes, json_number, printed, significant, table, thousands, to_json

NOTES = (
    "std: population (divides by n); NaN and Inf are counted apart and left out of mean, std, min, max, absmax, l2 and >6sd",
    f"zeros: fraction of all elements equal to 0 or -0; >{SIGMAS}sd: finite values with |x - mean| > {SIGMAS} std of their own tensor",
)
GROUP_NOTE = (
    f"a group's >{SIGMAS}sd adds up its tensors' own counts; its mean, std, min, max and l2 are over all its values"
)

# Column name -> value of one row, in the order JSON and CSV list them.
FIELDS = {
    "name": lambda s: s.name,
    "dtype": lambda s: s.dtype,
    "tensors": lambda s: s.tensors,
    "numel": lambda s: s.numel,
    "count": lambda s: s.moments.count,
    "mean": lambda s: s.mean,
    "std": lambda s: s.std,
    "min": lambda s: s.min if s.moments.count else math.nan,
    "max": lambda s: s.max if s.moments.count else math.nan,
    "absmax": lambda s: s.absmax,
    "l2": lambda s: s.l2,
    "zero_fraction": lambda s: s.zero_fraction,
    "zeros": lambda s: s.zeros,
    "nan": lambda s: s.nan,
    "inf": lambda s: s.inf,
    f"beyond_{SIGMAS}_std": lambda s: s.beyond,
}


def _table(report: StatsReport) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The header and the rows of cells, as text() and html() show them."""
    label = {None: "name", "layer": "layer", "role": "role"}[report.by]
    header = (
        (label, "dtype")
        + (("tensors",) if report.by else ())
        + ("mean", "std", "min", "max", "absmax", "l2", "zeros", "nan", "inf", f">{SIGMAS}sd")
    )
    rows = []
    for s in report.rows:
        group = (str(s.tensors),) if report.by else ()
        moments = (s.mean, s.std, FIELDS["min"](s), FIELDS["max"](s), s.absmax, s.l2)
        rows.append(
            (s.name, s.dtype)
            + group
            + tuple(map(significant, moments))
            + (f"{s.zero_fraction:.2%}", thousands(s.nan), thousands(s.inf), thousands(s.beyond))
        )
    return header, rows


def _footer(report: StatsReport) -> list[str]:
    unread = f", {len(report.errors)} could not be read" if report.errors else ""
    lines = [f"{report.tensors} tensors, {human_bytes(report.nbytes)}{unread}"]
    lines += list(NOTES) + ([GROUP_NOTE] if report.by else [])
    return lines + [f"error: {line}" for _, line in report.errors]


def text(report: StatsReport) -> str:
    header, rows = _table(report)
    lines = table(header, rows, right=tuple(range(2, len(header))))
    return "\n".join(lines + _footer(report)) + "\n"


class NotebookStats(StatsReport):
    """The StatsReport Model.stats() returns: print() shows what `llm-anatomy stats` prints,
    Jupyter the report's charts (std and largest |value| per layer, by role) and the table."""

    def __str__(self) -> str:
        return printed(text(self))

    def __repr__(self) -> str:
        by = f" by {self.by}" if self.by else ""
        return f"<StatsReport {self.model}{by}: {len(self.rows)} rows, {self.tensors} tensors, {human_bytes(self.nbytes)}, {len(self.errors)} unreadable>"

    def _repr_html_(self) -> str:
        from ..analysis.report import arrange_stats
        from .html import element, esc, notebook, pre, table as html_table
        from .report import LABELS, TABLE_ROWS, stats_section

        header, rows = _table(self)
        cells = [
            tuple(element("code", esc(c)) if i == 0 else esc(c) for i, c in enumerate(row)) for row in rows[:TABLE_ROWS]
        ]
        grid = element("div", html_table(header, cells, numeric=tuple(range(2, len(header)))), class_="scroll")
        return notebook(
            stats_section(arrange_stats(self), LABELS["en"])
            + element("h3", "All rows")
            + grid
            + pre("\n".join(_footer(self)))
        )


def notebook_stats(report: StatsReport) -> NotebookStats:
    return NotebookStats(report.model, report.rows, report.by, report.errors, report.tensors, report.nbytes)


def json_text(report: StatsReport) -> str:
    return (
        to_json(
            {
                "model": report.model,
                "by": report.by,
                "std": "population",
                "rows": [{key: json_number(get(s)) for key, get in FIELDS.items()} for s in report.rows],
                "errors": [{"name": name, "error": line} for name, line in report.errors],
                "total": {"tensors": report.tensors, "nbytes": report.nbytes},
            }
        )
        + "\n"
    )


def csv_text(report: StatsReport) -> str:
    """One row per tensor or group; a tensor that could not be read has only its name and `error`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(FIELDS) + ["error"])
    for s in report.rows:
        writer.writerow([repr(v) if isinstance(v, float) else v for v in (get(s) for get in FIELDS.values())] + [""])
    for name, line in report.errors:
        writer.writerow([name] + [""] * (len(FIELDS) - 1) + [line])
    return buffer.getvalue()
