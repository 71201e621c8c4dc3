"""Render a verification: the verdict and the findings first (failures first), then each
tensor's status and measures, then the summary per type; or all of it as one JSON document."""

from __future__ import annotations

from ..analysis.diff import ABSENT
from ..analysis.verify import STATUSES, TensorCheck, TypeSummary, Verification
from ..core.text import escape
from .diff import undone_text
from .text import human_bytes, json_number, significant, table, thousands, to_json

MEASURES = "rel_rmse = ||B - A|| / ||A||; sqnr_db = 10 log10(||A||^2 / ||B - A||^2); cosine = A.B / (||A|| ||B||); over float64 values, conventions undone"


def _row(check: TensorCheck) -> tuple[str, ...]:
    dtype = check.dtype_a if check.dtype_a == check.dtype_b else f"{check.dtype_a}->{check.dtype_b}"
    notes = [undone_text(check.transforms)] if check.transforms else []
    if check.skipped:
        notes.append(f"{thousands(check.skipped)} NaN/Inf pairs left out")
    measures = (
        significant(check.max_abs),
        significant(check.rel_rmse),
        significant(check.sqnr_db),
        significant(check.cosine),
    )
    return (check.a_name, dtype, check.status, *measures, "; ".join(notes))


def _type_row(summary: TypeSummary) -> tuple[str, ...]:
    statuses = ", ".join(f"{count} {status}" for status, count in summary.statuses.items() if count)
    return (
        summary.dtype,
        str(summary.tensors),
        statuses,
        significant(summary.max_abs),
        significant(summary.rel_rmse),
        significant(summary.sqnr_db),
        significant(summary.min_cosine),
    )


def text(found: Verification) -> str:
    header = found.header
    lines = [
        f"A: {header.a.name} ({header.a.tensors} tensors, {human_bytes(header.a.nbytes)})",
        f"B: {header.b.name} ({header.b.tensors} tensors, {human_bytes(header.b.nbytes)})",
        f"verdict: {found.verdict}",
    ]
    lines += [f"  {finding}" for finding in found.findings]
    lines += [f"error: {line}" for _, line in found.errors]
    lines.append("")
    if found.tensors:
        lines += table(
            ("name", "dtype", "status", "max_abs", "rel_rmse", "sqnr_db", "cosine", ""),
            [_row(c) for c in found.tensors],
            right=(3, 4, 5, 6),
        )
        lines.append("")
        if found.by_layer:
            lines += table(
                ("layer", "tensors", "status", "max_abs", "rel_rmse", "sqnr_db", "min_cosine"),
                [_type_row(s) for s in found.by_layer],
                right=(1, 3, 4, 5, 6),
            )
            lines.append("")
        lines += table(
            ("type", "tensors", "status", "max_abs", "rel_rmse", "sqnr_db", "min_cosine"),
            [_type_row(s) for s in (*found.by_type, found.overall)],
            right=(1, 3, 4, 5, 6),
        )
    lines.append(MEASURES)
    lines.append(found.tokenizer_summary)
    return "\n".join(escape(line) for line in lines) + "\n"


def _summary_json(summary: TypeSummary, key: str = "type") -> dict:
    return {
        key: int(summary.dtype) if key == "layer" and summary.dtype.isdigit() else summary.dtype,
        "tensors": summary.tensors,
        "numel": summary.numel,
        **{status: summary.statuses[status] for status in STATUSES},
        "max_abs": json_number(summary.max_abs),
        "rel_rmse": json_number(summary.rel_rmse),
        "sqnr_db": json_number(summary.sqnr_db),
        "min_cosine": json_number(summary.min_cosine),
    }


def json_text(found: Verification) -> str:
    header = found.header
    return (
        to_json(
            {
                "verdict": found.verdict,
                "a": {"model": header.a.name, "tensors": header.a.tensors, "nbytes": header.a.nbytes},
                "b": {"model": header.b.name, "tensors": header.b.tensors, "nbytes": header.b.nbytes},
                "findings": list(found.findings),
                "tensors": [
                    {
                        "a_name": c.a_name,
                        "b_name": c.b_name,
                        "dtype_a": c.dtype_a,
                        "dtype_b": c.dtype_b,
                        "numel": c.numel,
                        "status": c.status,
                        "transforms": list(c.transforms),
                        "max_abs": json_number(c.max_abs),
                        "rel_rmse": json_number(c.rel_rmse),
                        "sqnr_db": json_number(c.sqnr_db),
                        "cosine": json_number(c.cosine),
                        "noise": c.noise,
                        "skipped_nonfinite": c.skipped,
                    }
                    for c in found.tensors
                ],
                "by_type": [_summary_json(s) for s in found.by_type],
                "by_layer": [_summary_json(s, "layer") for s in found.by_layer],
                "overall": _summary_json(found.overall),
                "only_in_a": list(header.only_a),
                "only_in_b": list(header.only_b),
                "config": [
                    {"field": key, **{side: value for side, value in (("a", va), ("b", vb)) if value is not ABSENT}}
                    for key, va, vb in found.config
                ],
                "config_compared": header.config_compared,
                "tokenizer": list(found.tokenizer),
                "tokenizer_compared": found.tokenizer_compared,
                "errors": [{"name": name, "error": line} for name, line in found.errors],
            }
        )
        + "\n"
    )
