"""The parameter listing: one row per tensor, or transformers' named_parameters() view."""

from __future__ import annotations

import os
from collections import namedtuple
from math import prod

from ..core.catalog import Catalog, compile_filter, matching, natural_key, no_match
from .roles import BUFFER
from ..quant import QuantView

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from ..hf.skeleton import Skeleton


# Named tuples rather than dataclasses, to keep `params` within 4x `python -c pass` (catalog.py).
# stored: for a logical weight of a quantized checkpoint, the names of the stored tensors behind it.
ParamRow = namedtuple("ParamRow", "name shape dtype numel nbytes file stored", defaults=((),))


class ParamListing(namedtuple("ParamListing", "model format rows files notes stored", defaults=((), None))):
    """rows: ParamRow tuple; files: how many weight files hold the rows; notes: lines to show
    under the table; stored: for the logical view of a quantized checkpoint, the stored
    tensors' listing (rows are then the logical weights), else None."""

    __slots__ = ()

    @property
    def total_numel(self) -> int:
        return sum(r.numel for r in self.rows)

    @property
    def total_nbytes(self) -> int:
        return sum(r.nbytes for r in self.rows)


def list_tensors(catalog: Catalog, pattern: str | None = None) -> ParamListing:
    """Every tensor in the files, layers in numeric order (layers.2 before layers.10)."""
    rows = tuple(
        ParamRow(t.name, t.shape, t.dtype, t.numel, t.nbytes, os.path.basename(t.file))
        for t in sorted(matching(catalog, pattern), key=lambda t: natural_key(t.name))
    )
    buffers = [r for r in rows if BUFFER.search(r.name)]
    notes = holds_no_tensors(catalog)
    if buffers:
        shown = ", ".join(r.name for r in buffers[:3]) + (", ..." if len(buffers) > 3 else "")
        values = sum(r.numel for r in buffers)
        what = (
            "is a buffer of the model, not a parameter"
            if len(buffers) == 1
            else "are buffers of the model, not parameters"
        )
        notes = (
            f"note: {len(buffers)} of these tensors {what} ({shown}: {values:,} value{'' if values == 1 else 's'}); `summary` leaves them out of its count",
        )
    return ParamListing(catalog.name, catalog.format, rows, len({r.file for r in rows}), notes)


def list_logical(catalog: Catalog, qview: QuantView, pattern: str | None = None) -> ParamListing:
    """A quantized checkpoint as the model it is: one row per logical weight (name, shape and
    parameters as unquantized; dtype the scheme; bytes all its stored tensors take)."""
    regex = compile_filter(pattern)
    weights = sorted(
        (w for w in qview.weights if regex is None or regex.match(w.name)), key=lambda w: natural_key(w.name)
    )
    if not weights and pattern is not None:
        raise no_match(catalog.name, pattern, "weight", "llm-anatomy params --stored")
    label = {t.name: t.dtype for t in qview.tensors()}
    rows = tuple(
        ParamRow(
            w.name,
            w.shape,
            label[w.name],
            w.numel,
            w.nbytes,
            os.path.basename(w.parts[0].file),
            tuple(t.name for t in w.parts) if w.scheme else (),
        )
        for w in weights
    )
    shown = {t.name for w in weights for t in w.parts}
    every = list_tensors(catalog)
    stored = every._replace(rows=tuple(r for r in every.rows if r.name in shown), notes=())
    quantized = sum(1 for r in rows if r.stored)
    notes = (
        f"quantized: {qview.description}; {quantized} logical weights stand for {sum(len(r.stored) for r in rows)} stored tensors (params as unquantized, bytes as stored): `--stored` lists the stored tensors",
    )
    if qview.scheme is None:
        notes = (
            f"quantized with {qview.method}, which llm-anatomy does not read: the stored tensors are listed, packed values counted one each",
        )
    return ParamListing(catalog.name, catalog.format, rows, len({r.file for r in rows}), notes, stored)


def holds_no_tensors(catalog: Catalog) -> tuple[str, ...]:
    """The note for a checkpoint without tensors (a vocabulary-only GGUF, config.json alone)."""
    if catalog.tensors:
        return ()
    if not catalog.files:
        return ("no weights: only config.json; tree, config and summary show the model it implies",)
    if catalog.metadata:
        return (
            "the file holds metadata only, no tensors: `params --metadata` shows it; tree, config and summary show the model it implies",
        )
    return ()


def list_parameters(catalog: Catalog, skeleton: "Skeleton", pattern: str | None = None) -> ParamListing:
    """What model.named_parameters() yields: transformers' order, no buffers, tied weights once.

    Shapes are the model's; dtype, bytes and file come from the checkpoint tensor that
    from_pretrained would load into it (see skeleton.stored_tensor_finder)."""
    from ..hf.skeleton import stored_tensor_finder

    regex = compile_filter(pattern)
    find = stored_tensor_finder(catalog, skeleton)
    rows, missing = [], []
    for param in skeleton.parameters:
        if regex is not None and not regex.match(param.name):
            continue
        tensor = find(param.name)
        if tensor is None:
            missing.append(param.name)
            rows.append(ParamRow(param.name, param.shape, "?", prod(param.shape), 0, ""))
        else:
            rows.append(
                ParamRow(
                    param.name, param.shape, tensor.dtype, tensor.numel, tensor.nbytes, os.path.basename(tensor.file)
                )
            )
    if not rows and pattern is not None:
        raise no_match(catalog.name, pattern, "parameter", "llm-anatomy params --style torch")
    notes = ()
    if missing:
        notes = (
            f"parameters of {skeleton.model_class} not stored under their own names in the checkpoint: {len(missing)} (first: {missing[0]}); transformers would initialise or convert them on load",
        )
    return ParamListing(catalog.name, catalog.format, tuple(rows), len({r.file for r in rows if r.file}), notes)
