"""`values --json`: the shown elements of each tensor as nested lists, with the positions
they sit at, streamed so that `--full` needs no more memory than a chunk of one row."""

from __future__ import annotations

import itertools
import json
import math

JSON_ROW_CHUNK = 4096

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Iterable, Iterator, Sequence

    from ..analysis.values import PrintOptions, ShownTensor


def _json_number(value) -> object:
    """Plain JSON numbers; non-finite floats as the strings "nan", "inf", "-inf"; complex as [re, im]."""
    if isinstance(value, complex):
        return [_json_number(value.real), _json_number(value.imag)]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return value


def _json_values(shown: ShownTensor, depth: int, rows: Iterator[Iterable]) -> Iterator[str]:
    """Nested lists of the shown values, rows consumed in order; long rows written in chunks."""
    if not shown.shape:
        yield json.dumps(_json_number(next(iter(next(rows)))))
        return
    count = len(shown.indices[depth])
    if depth < len(shown.shape) - 1:
        yield "["
        for number in range(count):
            yield "," if number else ""
            yield from _json_values(shown, depth + 1, rows)
        yield "]"
        return
    row = iter(next(rows)) if count else iter(())
    yield "["
    for number, chunk in enumerate(iter(lambda: list(itertools.islice(row, JSON_ROW_CHUNK)), [])):
        yield ("," if number else "") + json.dumps([_json_number(v) for v in chunk])[1:-1]
    yield "]"


JSON_TAIL = "\n  ]\n}\n"


def json_head(model: str, options: PrintOptions) -> str:
    """The document around the tensors: {"model", "options", "tensors": [...]} (closed by JSON_TAIL)."""
    settings = {
        "precision": options.precision,
        "threshold": _json_number(options.threshold),
        "edgeitems": options.edgeitems,
        "linewidth": options.linewidth,
    }
    return "{\n  " + json.dumps({"model": model, "options": settings})[1:-1] + ',\n  "tensors": [\n'


def _json_indices(indices: tuple[Sequence[int], ...]) -> Iterator[str]:
    """The shown positions per dimension, as json.dumps writes the lists, in chunks: with --full
    a dimension's positions are a range of its whole size, never built as one list."""
    yield "["
    for number, positions in enumerate(indices):
        yield ", [" if number else "["
        for start in range(0, len(positions), JSON_ROW_CHUNK):
            yield (", " if start else "") + json.dumps(list(positions[start : start + JSON_ROW_CHUNK]))[1:-1]
        yield "]"
    yield "]"


def json_tensor(shown: ShownTensor, first: bool) -> Iterator[str]:
    """One entry of the "tensors" list: "values" nests the shown elements, at the positions "indices" lists per dimension."""
    head = {
        "name": shown.name,
        "tensor": shown.tensor.name,
        "dtype": shown.tensor.dtype,
        "torch_dtype": shown.decoder.torch_dtype,
        "stored_shape": list(shown.tensor.shape),
        "shape": list(shown.shape),
        "summarized": shown.summarize,
    }
    yield ("" if first else ",\n") + "    " + json.dumps(head)[:-1] + ', "indices": '
    yield from _json_indices(shown.indices)
    yield ', "values": '
    yield from _json_values(shown, 0, shown.rows())
    yield "}"
