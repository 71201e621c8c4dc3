"""Plain-text building blocks shared by the renderers: numbers, sizes and aligned tables."""

from __future__ import annotations

import json
import math

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Sequence

from ..core.text import escape, escape_page

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float) -> str:
    """1024-based, as memory is counted: 13476831232 -> '12.55 GiB'."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(n: float) -> str:
    """6738415616 -> '6.74B' (decimal, as parameter counts are quoted)."""
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= threshold:
            return f"{n / threshold:.2f}{suffix}"
    return str(int(n))


def thousands(n: int) -> str:
    return f"{n:,}"


def counted(n: int, noun: str) -> str:
    """'1 tensor', '291 tensors', '6,738,415,616 parameters'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def share(part: int, whole: int) -> str:
    """part of whole as a percentage: '31.9%'; '<0.1%' for a share too small to show; '-' of nothing."""
    if not whole:
        return "-"
    percent = 100 * part / whole
    return "<0.1%" if 0 < percent < 0.05 else f"{percent:.1f}%"


def significant(value: float) -> str:
    """Four significant digits, as statistics are shown: 0.01997, -2.467e-05."""
    return f"{value:.4g}"


def json_number(value: object) -> object:
    """JSON has no NaN or infinity: non-finite floats become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell; indices in `right` are right-aligned; no trailing spaces."""
    cells = [list(header)] + [[escape(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    return lines


def to_json(data: Any) -> str:
    """json.dumps(data, indent=2), joined a piece at a time: with an indent json encodes in
    Python, and joining its millions of tiny chunks at once held 400 MB for 200,000 rows."""
    pieces, chunks = [], []
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(data):
        chunks.append(chunk)
        if len(chunks) == 1 << 16:
            pieces.append("".join(chunks))
            chunks.clear()
    return "".join(pieces) + "".join(chunks)


def printed(output: str) -> str:
    """str() of a record the API returns: the command's stdout (escaped as the CLI escapes it)
    without its last newline, which print() adds back, so print(record) writes what the command does."""
    return escape_page(output).removesuffix("\n")
