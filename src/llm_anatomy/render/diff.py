"""Render a checkpoint diff: the header part (printed before values stream), the value
part, or both as one JSON document."""

from __future__ import annotations

import json

from ..analysis.diff import ABSENT, HeaderDiff, TensorChange, ValueDiff
from ..hf.gguf_transforms import CONVENTIONS
from ..core.text import escape
from .text import human_bytes, json_number, shape_text, significant, table, thousands, to_json

LISTED = 10  # names shown per header section in text; --json lists them all


def _names(title: str, names: list[str]) -> list[str]:
    lines = [f"{title} ({len(names)}):"] + [f"  {n}" for n in names[:LISTED]]
    if len(names) > LISTED:
        lines.append(f"  ... {len(names) - LISTED} more (--json lists all)")
    return lines


def _config_value(value: object) -> str:
    return "(absent)" if value is ABSENT else json.dumps(value, ensure_ascii=False)


def header_text(header: HeaderDiff) -> str:
    lines = [
        f"A: {header.a.name} ({header.a.tensors} tensors, {human_bytes(header.a.nbytes)})",
        f"B: {header.b.name} ({header.b.tensors} tensors, {human_bytes(header.b.nbytes)})",
    ]
    sections = (
        ("only in A", list(header.only_a)),
        ("only in B", list(header.only_b)),
        ("shape changed", [f"{n}: {shape_text(sa)} -> {shape_text(sb)}" for n, sa, sb in header.shape_changes]),
        ("dtype changed", [f"{n}: {da} -> {db}" for n, da, db in header.dtype_changes]),
        (
            "config differs",
            [f"{key}: {_config_value(va)} -> {_config_value(vb)}" for key, va, vb in header.config_changes],
        ),
    )
    for title, names in sections:
        if names:
            lines += _names(title, names)
    # Say "same" only of what was compared: no names in common, or a config missing or
    # unreadable on one side, is said by a note instead.
    same = []
    if header.pairs and not any(names for _, names in sections[:4]):
        same.append("same tensor names, shapes and dtypes")
    if header.config_compared and not header.config_changes:
        same.append("same config")
    if same:
        lines.append("; ".join(same))
    lines += list(header.notes)
    return "\n".join(escape(line) for line in lines) + "\n"


def undone_text(transforms: tuple[str, ...]) -> str:
    """The conventions undone before comparing, in words."""
    return "; ".join(CONVENTIONS[t] for t in transforms)


def _row(change: TensorChange) -> tuple[str, ...]:
    dtype = change.dtype_a if change.dtype_a == change.dtype_b else f"{change.dtype_a}->{change.dtype_b}"
    if change.identical:
        return (
            change.name,
            dtype,
            "0",
            "1",
            "0",
            f"identical once {undone_text(change.transforms)}" if change.transforms else "bit-identical",
        )
    notes = [f"{thousands(change.skipped)} NaN/Inf pairs left out"] if change.skipped else []
    note = "; ".join(notes + ([undone_text(change.transforms)] if change.transforms else []))
    return (
        change.name,
        dtype,
        significant(change.relative),
        significant(change.cosine),
        significant(change.max_abs),
        note,
    )


def values_text(values: ValueDiff, top: int | None = None) -> str:
    shown = values.rows[:top] if top is not None else values.rows
    lines = []
    if values.rows:
        lines = table(
            ("name", "dtype", "relative", "cosine", "max_abs_diff", ""), [_row(c) for c in shown], right=(2, 3, 4)
        )
        if len(shown) < len(values.rows):
            lines.append(f"... {len(values.rows) - len(shown)} more (--top)")
    changed = len(values.rows) - values.identical
    undone = sum(r.identical and bool(r.transforms) for r in values.rows)
    identical = (
        f"{values.identical} identical ({undone} once a converter's convention is undone)"
        if undone
        else f"{values.identical} bit-identical"
    )
    lines.append(
        f"{len(values.rows)} tensors compared: {identical}, {changed} changed; {human_bytes(values.nbytes)} of tensor data"
    )
    lines.append(
        "relative = ||B - A|| / ||A||; cosine = A.B / (||A|| ||B||); over float64 values, NaN/Inf pairs left out"
    )
    lines += [f"error: {line}" for _, line in values.errors]
    return "\n".join(lines) + "\n"


RANK_MEASURES = (
    "rank = singular values of B - A above max(4 u rms (sqrt(m) + sqrt(n)), sigma_max max(m, n) eps) "
    "(u: the stored dtype's unit roundoff, eps: float32's; randomised SVD); energy = share of ||B - A||^2 in them"
)


def _rank_row(change: TensorChange) -> tuple[str, ...]:
    dtype = change.dtype_a if change.dtype_a == change.dtype_b else f"{change.dtype_a}->{change.dtype_b}"
    if change.identical:
        return (change.name, dtype, "0", "0", "", "", "", "bit-identical")
    found = change.low_rank
    if found is None:
        return (change.name, dtype, significant(change.relative), "-", "", "", "", "not a matrix")
    rank = f">{found.rank}" if found.above else str(found.rank)
    note = "" if found.low else "not low-rank"
    if found.tolerance_dtype not in (change.dtype_a, change.dtype_b):
        note = "; ".join(filter(None, (note, f"{found.tolerance_dtype}'s roundoff assumed")))
    return (
        change.name,
        dtype,
        significant(change.relative),
        f"{rank}/{found.full}",
        significant(found.energy),
        significant(found.sigma_max),
        significant(found.tolerance),
        note,
    )


def low_rank_text(values: ValueDiff, verdict: list[str], top: int | None = None) -> str:
    """`diff --low-rank`: per tensor the rank of its change, then the verdict lines."""
    shown = values.rows[:top] if top is not None else values.rows
    lines = []
    if values.rows:
        lines = table(
            ("name", "dtype", "relative", "rank", "energy", "sigma_max", "tolerance", ""),
            [_rank_row(c) for c in shown],
            right=(2, 3, 4, 5, 6),
        )
        if len(shown) < len(values.rows):
            lines.append(f"... {len(values.rows) - len(shown)} more (--top)")
    lines.append(f"{len(values.rows)} tensors compared; {human_bytes(values.nbytes)} of tensor data")
    lines.append(RANK_MEASURES)
    lines += [f"error: {line}" for _, line in values.errors]
    lines.append("verdict:")
    lines += [f"  {escape(line)}" for line in verdict]
    return "\n".join(lines) + "\n"


def _low_rank_json(change: TensorChange) -> dict | None:
    found = change.low_rank
    if found is None:
        return None
    return {
        "rank": found.rank,
        "rank_is_lower_bound": found.above,
        "full_rank": found.full,
        "low_rank": found.low,
        "energy": json_number(found.energy),
        "sigma_max": found.sigma_max,
        "tolerance": found.tolerance,
        "tolerance_dtype": found.tolerance_dtype,
        "sketch": found.sketch,
    }


def json_text(header: HeaderDiff, values: ValueDiff, top: int | None = None, verdict: list[str] | None = None) -> str:
    """One document; with VERDICT (diff --low-rank) each tensor's `low_rank` and the `verdict` lines too."""
    shown = values.rows[:top] if top is not None else values.rows
    ranks = (lambda c: {"low_rank": _low_rank_json(c)}) if verdict is not None else (lambda c: {})  # noqa: E731
    return (
        to_json(
            {
                "a": {"model": header.a.name, "tensors": header.a.tensors, "nbytes": header.a.nbytes},
                "b": {"model": header.b.name, "tensors": header.b.tensors, "nbytes": header.b.nbytes},
                "only_in_a": list(header.only_a),
                "only_in_b": list(header.only_b),
                "shape_changed": [{"name": n, "a": list(sa), "b": list(sb)} for n, sa, sb in header.shape_changes],
                "dtype_changed": [{"name": n, "a": da, "b": db} for n, da, db in header.dtype_changes],
                "config_changed": [
                    {"field": key, **{side: value for side, value in (("a", va), ("b", vb)) if value is not ABSENT}}
                    for key, va, vb in header.config_changes
                ],
                "config_compared": header.config_compared,
                "notes": list(header.notes),
                "tensors": [
                    {
                        "name": c.name,
                        "dtype_a": c.dtype_a,
                        "dtype_b": c.dtype_b,
                        "numel": c.numel,
                        "identical": c.identical,
                        "relative": json_number(c.relative),
                        "cosine": json_number(c.cosine),
                        "max_abs_diff": json_number(c.max_abs),
                        "skipped_nonfinite": c.skipped,
                        "transforms": list(c.transforms),
                        **ranks(c),
                    }
                    for c in shown
                ],
                "compared": len(values.rows),
                "identical": values.identical,
                "errors": [{"name": name, "error": line} for name, line in values.errors],
                **({"verdict": verdict} if verdict is not None else {}),
            }
        )
        + "\n"
    )
