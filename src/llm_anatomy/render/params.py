"""Render a ParamListing as a table, as JSON, or as torch's named_parameters() printout."""

from __future__ import annotations

from ..analysis.params import ParamListing
from ..core.text import escape
from .text import counted, human_bytes, shape_text, table, thousands, to_json


def torch_style(listing: ParamListing) -> str:
    """`for name, p in model.named_parameters(): print(f"{name}: {p.size()}")`."""
    return "".join(f"{escape(r.name)}: torch.Size({list(r.shape)})\n" for r in listing.rows)


def totals(listing: ParamListing) -> str:
    """'291 tensors, 6,738,415,616 parameters, 12.55 GiB in 2 files'."""
    return f"{counted(len(listing.rows), 'tensor')}, {counted(listing.total_numel, 'parameter')}, {human_bytes(listing.total_nbytes)} in {counted(listing.files, 'file')}"


def text(listing: ParamListing) -> str:
    lines = table(
        ("name", "shape", "dtype", "params", "bytes", "file"),
        [
            (r.name, shape_text(r.shape), r.dtype, thousands(r.numel), human_bytes(r.nbytes), r.file)
            for r in listing.rows
        ],
        right=(3, 4),
    )
    lines.append(totals(listing))
    return "\n".join(lines + list(listing.notes)) + "\n"


def _tensor_json(r) -> dict:
    row = {
        "name": r.name,
        "shape": list(r.shape),
        "dtype": r.dtype,
        "numel": r.numel,
        "nbytes": r.nbytes,
        "file": r.file,
    }
    if r.stored:
        row["stored"] = list(r.stored)
    return row


def json_text(listing: ParamListing, adapter: dict | None = None) -> str:
    """tensors: the rows; for a quantized checkpoint the logical weights (each with the names of
    its stored tensors), and stored_tensors beside them; for a LoRA adapter, `adapter` (what
    summary --json gives for it)."""
    extra: dict = {} if adapter is None else {"adapter": adapter}
    if listing.stored is not None:
        extra["stored_tensors"] = [_tensor_json(r) for r in listing.stored.rows]
    return (
        to_json(
            {
                "model": listing.model,
                "format": listing.format,
                "tensors": [_tensor_json(r) for r in listing.rows],
                "total": {"tensors": len(listing.rows), "numel": listing.total_numel, "nbytes": listing.total_nbytes},
                "notes": list(listing.notes),
                **extra,
            }
        )
        + "\n"
    )
