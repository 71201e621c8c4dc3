"""Render a StatsReport as a table, JSON or CSV (full float precision in JSON and CSV)."""

from __future__ import annotations

import csv
import io
import math

from ..analysis.stats import SIGMAS, StatsReport
from .text import human_bytes, json_number, significant, table, thousands, to_json

NOTES = (
    "std: population (divides by n); NaN and Inf are counted apart and left out of mean, std, min, max, absmax, l2 and >6sd",
    f"zeros: fraction of all elements equal to 0 or -0; >{SIGMAS}sd: finite values with |x - mean| > {SIGMAS} std of their own tensor",
)
GROUP_NOTE = f"a group's >{SIGMAS}sd adds up its tensors' own counts; its mean, std, min, max and l2 are over all its values"

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


def text(report: StatsReport) -> str:
    label = {None: "name", "layer": "layer", "role": "role"}[report.by]
    header = (label, "dtype") + (("tensors",) if report.by else ()) + ("mean", "std", "min", "max", "absmax", "l2", "zeros", "nan", "inf", f">{SIGMAS}sd")
    rows = []
    for s in report.rows:
        group = (str(s.tensors),) if report.by else ()
        moments = (s.mean, s.std, FIELDS["min"](s), FIELDS["max"](s), s.absmax, s.l2)
        rows.append((s.name, s.dtype) + group + tuple(map(significant, moments)) + (f"{s.zero_fraction:.2%}", thousands(s.nan), thousands(s.inf), thousands(s.beyond)))
    right = tuple(range(2, len(header)))
    lines = table(header, rows, right=right)
    unread = f", {len(report.errors)} could not be read" if report.errors else ""
    lines.append(f"{report.tensors} tensors, {human_bytes(report.nbytes)}{unread}")
    lines += list(NOTES) + ([GROUP_NOTE] if report.by else [])
    lines += [f"error: {line}" for _, line in report.errors]
    return "\n".join(lines) + "\n"


def json_text(report: StatsReport) -> str:
    return to_json(
        {
            "model": report.model,
            "by": report.by,
            "std": "population",
            "rows": [{key: json_number(get(s)) for key, get in FIELDS.items()} for s in report.rows],
            "errors": [{"name": name, "error": line} for name, line in report.errors],
            "total": {"tensors": report.tensors, "nbytes": report.nbytes},
        }
    ) + "\n"


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
