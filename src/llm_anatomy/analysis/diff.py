"""What changed between two checkpoints: first from the headers (names, shapes, dtypes,
config: instant), then from the values of the tensors they share (streamed, bounded memory).

Value part, per tensor present in both with the same shape: relative change
||B - A|| / ||A||, cosine similarity, max |B - A|, all accumulated in float64 over blocks
(||B - A|| from the differences themselves, never from ||A||^2 + ||B||^2 - 2 A.B, which
cancels). Same dtype: the raw bytes are compared first, chunk by chunk; if every chunk is
equal the tensor is bit-identical and no value is decoded; at the first unequal chunk
the tensor is compared by value from its start (the prefix comes back from the page cache)."""

from __future__ import annotations

import math
import struct
from collections import namedtuple
from dataclasses import dataclass, field, replace
from math import prod
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..core.catalog import MAX_STRIDED_SPAN, Catalog, TensorInfo, is_strided, natural_key, select
from ..core.errors import AnatomyError

if TYPE_CHECKING:
    from ..decode.stream import Reader

ABSENT = object()  # a config field missing on one side


@dataclass(frozen=True)
class Side:
    name: str
    tensors: int
    nbytes: int


@dataclass(frozen=True)
class HeaderDiff:
    a: Side
    b: Side
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    shape_changes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    dtype_changes: tuple[tuple[str, str, str], ...]
    config_changes: tuple[tuple[str, Any, Any], ...]  # (field, A's value, B's value); ABSENT if missing
    pairs: tuple[tuple[TensorInfo, TensorInfo], ...]  # same name and shape: compared by value
    notes: tuple[str, ...] = ()
    config_compared: bool = False  # both configs readable; config_changes means something only then
    reshaped: tuple[tuple[TensorInfo, TensorInfo], ...] = ()  # same name, another shape: verify says what became of it


@dataclass(frozen=True)
class TensorChange:
    name: str
    dtype_a: str
    dtype_b: str
    numel: int
    identical: bool  # bit-identical (same dtype, same bytes)
    relative: float  # ||B - A|| / ||A|| over the finite pairs
    cosine: float
    max_abs: float
    skipped: int = 0  # element pairs left out because either value is NaN or Inf
    transforms: tuple[
        str, ...
    ] = ()  # the converter conventions undone before comparing (gguf_transforms.CONVENTIONS keys)
    low_rank: Any = None  # low_rank.LowRank of a changed matrix, with diff --low-rank


@dataclass(frozen=True)
class ValueDiff:
    rows: tuple[TensorChange, ...]  # largest relative change first, bit-identical ones last
    errors: tuple[tuple[str, str], ...] = field(default=())  # (name, error line)
    nbytes: int = 0

    @property
    def identical(self) -> int:
        return sum(r.identical for r in self.rows)


class Converted(namedtuple("Converted", "name dtype shape file offset nbytes stored view convention")):
    """A stored tensor as transformers' loader holds it (analysis.values.loader_transform): its
    values streamed in the loaded order, with the converter's convention undone. stored: the
    TensorInfo; view: the whole-tensor View loader_transform gives; convention: its
    gguf_transforms.CONVENTIONS key."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def blocks(self, reader: "Reader") -> Iterator[Any]:
        """Every loaded value as float64 in row-major order, in blocks of the reader's block
        size (streaming.Reader.blocks' contract), so that they line up with the other side's."""
        return reader.reblock(self._pieces(reader))

    def _values(self, reader: "Reader", tensor: TensorInfo) -> Any:
        import numpy as np

        return np.concatenate([block.copy() for block in reader.blocks(tensor)] or [np.empty(0)])

    def _pieces(self, reader: "Reader") -> Iterator[Any]:
        """The loaded values in order, a window of rows at a time: a reordering of rows reads the
        stored rows each window needs (q/k's rows move only within their head), a transpose
        reads the whole tensor (GPT-2's Conv1D weights, capped as a strided view is)."""
        import numpy as np

        from .values import ELEMENTWISE

        view, stored = self.view, self.stored
        if view.row_order is not None and stored.shape:
            rows = stored.shape[0]
            row_elems, row_bytes = prod(stored.shape[1:]), stored.nbytes // max(rows, 1)
            window = max(1, len(reader.block) // max(row_elems, 1))
            for first in range(0, rows, window):
                wanted = np.asarray(view.row_order[first : first + window], np.int64)
                low, high = int(wanted.min()), int(wanted.max()) + 1
                span = stored._replace(
                    shape=(high - low, *stored.shape[1:]),
                    offset=stored.offset + low * row_bytes,
                    nbytes=(high - low) * row_bytes,
                )
                yield self._values(reader, span).reshape(high - low, row_elems)[wanted - low].reshape(-1)
        elif view.elementwise is not None:  # norms and Mamba's A: one row of values
            yield np.asarray(ELEMENTWISE[view.elementwise](self._values(reader, stored).tolist()), np.float64)
        elif (
            len(stored.shape) == 2 and view.shape == stored.shape[::-1] and stored.shape[0] > 1 and stored.shape[1] > 1
        ):
            if stored.numel > MAX_STRIDED_SPAN:
                raise AnatomyError(
                    f"{stored.file}: tensor {stored.name}",
                    f"a transposed tensor of at most {MAX_STRIDED_SPAN} elements",
                    f"{stored.numel}",
                )
            yield np.ascontiguousarray(self._values(reader, stored).reshape(stored.shape).T).reshape(-1)
        else:  # a unit dimension restored: the values in stored order
            for block in reader.blocks(stored):
                yield block.copy()


def value_blocks(info: Any, reader: "Reader") -> Iterator[Any]:
    """A tensor's values as float64 blocks (streaming.Reader.blocks), a Converted one's as loaded."""
    return info.blocks(reader) if isinstance(info, Converted) else reader.blocks(info)


def undo_conventions(catalog: Catalog, stored: Catalog) -> Catalog:
    """CATALOG (STORED's tensors, perhaps renamed) with each tensor whose values a converter
    changed replaced by a Converted one: values as transformers loads them, through the one
    conversion (analysis.values.loader_transform) that `values --hf-names` uses, or as
    transformers' converter writes them from Meta's checkpoint (analysis.values.converter_undone)."""
    from .values import View, converter_undone

    undone = converter_undone(stored)
    if undone is None:
        return catalog
    loaded, convention = undone
    tensors = []
    for tensor in catalog.tensors:
        whole = View.whole(tensor)
        view = loaded(whole)
        kind = convention(tensor)
        if view == whole or kind is None or not isinstance(tensor, TensorInfo):
            tensors.append(tensor)
            continue
        tensors.append(
            Converted(
                tensor.name, tensor.dtype, view.shape, tensor.file, tensor.offset, tensor.nbytes, tensor, view, kind
            )
        )
    return catalog._replace(tensors=tuple(tensors))


def _undone(a: Any, b: Any) -> tuple[str, ...]:
    return tuple(x.convention for x in (a, b) if isinstance(x, Converted))


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict) and config:
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: config}


# A field a derived config (GGUF metadata, Meta's params.json) names at the top level and a
# config.json may hold nested (transformers 5 keeps rope_theta in rope_parameters).
CONFIG_ALIASES = {"rope_theta": ("rope_theta", "rope_parameters.rope_theta")}


# transformers model types that llama.cpp writes under another's GGUF architecture (Mistral and
# Mixtral as `llama`): the config derived from the GGUF names that one, which is no difference.
SHARED_GGUF_ARCH = {"llama": ("mistral", "mixtral")}
MODEL_CLASS_FIELDS = ("model_type", "architectures")


def _derived(catalog: Catalog) -> bool:
    """The config was derived from the weights' own metadata, not read from a config.json."""
    return catalog.config is not None and catalog.config_file is None


def _float32(value: Any) -> Any:
    """A float as GGUF stores it (float32), so 1e-06 read back from GGUF equals config.json's."""
    return (
        struct.unpack("<f", struct.pack("<f", value))[0]
        if isinstance(value, float) and math.isfinite(value) and abs(value) < 3e38
        else value
    )


def _stated_changes(derived: dict[str, Any], full: dict[str, Any], derived_is_a: bool) -> list[tuple[str, Any, Any]]:
    """Fields the derived side states that the config.json states otherwise, compared as
    meaning (numbers at float32 precision); a field either side does not state is no difference."""
    changes = []
    shared = full.get("model_type") in SHARED_GGUF_ARCH.get(derived.get("model_type"), ())
    for key, value in derived.items():
        other_key = next((k for k in CONFIG_ALIASES.get(key, (key,)) if k in full), None)
        # null in a config.json states nothing: transformers takes its default (head_dim: hidden / heads)
        if other_key is None or full[other_key] is None or (shared and key in MODEL_CLASS_FIELDS):
            continue
        other = full[other_key]
        if (
            isinstance(value, (int, float))
            and isinstance(other, (int, float))
            and not isinstance(value, bool)
            and not isinstance(other, bool)
        ):
            same = _float32(float(value)) == _float32(float(other))
        else:
            same = value == other and type(value) is type(other)
        if not same:
            changes.append((key, value, other) if derived_is_a else (other_key, other, value))
    return sorted(changes, key=lambda change: natural_key(change[0]))


def _config_changes(a: Catalog, b: Catalog) -> tuple[tuple[str, Any, Any], ...]:
    if a.config is None or b.config is None:
        return ()
    flat_a, flat_b = _flatten(a.config), _flatten(b.config)
    if _derived(a) != _derived(b):  # across formats: only what both state
        return tuple(_stated_changes(flat_a, flat_b, True) if _derived(a) else _stated_changes(flat_b, flat_a, False))
    changes = []
    for key in sorted(flat_a.keys() | flat_b.keys(), key=natural_key):
        va, vb = flat_a.get(key, ABSENT), flat_b.get(key, ABSENT)
        if va != vb or type(va) is not type(vb):
            changes.append((key, va, vb))
    return tuple(changes)


def compare_headers(a: Catalog, b: Catalog, pattern: str | None = None) -> HeaderDiff:
    tensors_a = {t.name: t for t in select(a.tensors, pattern)}
    tensors_b = {t.name: t for t in select(b.tensors, pattern)}
    common = sorted(tensors_a.keys() & tensors_b.keys(), key=natural_key)
    shape_changes = tuple(
        (n, tensors_a[n].shape, tensors_b[n].shape) for n in common if tensors_a[n].shape != tensors_b[n].shape
    )
    dtype_changes = tuple(
        (n, tensors_a[n].dtype, tensors_b[n].dtype) for n in common if tensors_a[n].dtype != tensors_b[n].dtype
    )
    pairs = tuple((tensors_a[n], tensors_b[n]) for n in common if tensors_a[n].shape == tensors_b[n].shape)
    notes = []
    if not common:
        notes.append("no tensor names in common: nothing to compare by value")
    for side, catalog in (("A", a), ("B", b)):
        if catalog.config_error is not None:
            notes.append(f"config of {side} unreadable: {catalog.config_error.line()}")
        elif catalog.config is None:
            notes.append(f"{side} has no config: configs not compared")
    return HeaderDiff(
        Side(a.name, len(tensors_a), sum(t.nbytes for t in tensors_a.values())),
        Side(b.name, len(tensors_b), sum(t.nbytes for t in tensors_b.values())),
        tuple(sorted(tensors_a.keys() - tensors_b.keys(), key=natural_key)),
        tuple(sorted(tensors_b.keys() - tensors_a.keys(), key=natural_key)),
        shape_changes,
        dtype_changes,
        _config_changes(a, b),
        pairs,
        tuple(notes),
        all(c.config is not None and c.config_error is None for c in (a, b)),
        tuple((tensors_a[n], tensors_b[n]) for n, _, _ in shape_changes),
    )


def _same_bytes(a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader") -> bool:
    """Equal bytes, chunk by chunk, stopping at the first chunk that differs."""
    import numpy as np

    for chunk_a, chunk_b in zip(reader_a.chunks(a, 8), reader_b.chunks(b, 8)):
        if len(chunk_a) % 8 == 0:
            chunk_a, chunk_b = chunk_a.view(np.uint64), chunk_b.view(np.uint64)
        if not np.array_equal(chunk_a, chunk_b):
            return False
    return True


def _by_value(a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader") -> TensorChange:
    return _change(a, b, *_sums(a, b, reader_a, reader_b))


def _sums(
    a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader", into: Any = None
) -> tuple[float, float, float, float, float, int]:
    """A.A, B.B, A.B, (B - A).(B - A), max |B - A| and the pairs left out, over the finite
    pairs; INTO (a flat array of numel, or None): filled with B - A (0 where either is not finite)."""
    import numpy as np

    sum_aa = sum_bb = sum_ab = sum_dd = 0.0
    max_abs, skipped, position = 0.0, 0, 0
    for block_a, block_b in zip(value_blocks(a, reader_a), value_blocks(b, reader_b)):
        if into is not None:
            np.subtract(block_b, block_a, out=into[position : position + block_a.size], casting="unsafe")
            position += block_a.size
        if not (math.isfinite(float(block_a.sum())) and math.isfinite(float(block_b.sum()))):
            finite = np.isfinite(block_a) & np.isfinite(block_b)
            skipped += block_a.size - int(np.count_nonzero(finite))
            block_a, block_b = block_a[finite], block_b[finite]
        if block_a.size == 0:
            continue
        sum_aa += float(np.einsum("i,i", block_a, block_a))
        sum_bb += float(np.einsum("i,i", block_b, block_b))
        sum_ab += float(np.einsum("i,i", block_a, block_b))
        np.subtract(block_b, block_a, out=block_a)
        sum_dd += float(np.einsum("i,i", block_a, block_a))
        max_abs = max(max_abs, float(block_a.max()), -float(block_a.min()))
    if into is not None and skipped:
        np.nan_to_num(into, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return sum_aa, sum_bb, sum_ab, sum_dd, max_abs, skipped


def _change(
    a: TensorInfo,
    b: TensorInfo,
    sum_aa: float,
    sum_bb: float,
    sum_ab: float,
    sum_dd: float,
    max_abs: float,
    skipped: int,
) -> TensorChange:
    """The change from the sums over the finite pairs: A.A, B.B, A.B and (B - A).(B - A)."""
    norm_a, norm_d = math.sqrt(sum_aa), math.sqrt(sum_dd)
    relative = norm_d / norm_a if norm_a else (0.0 if norm_d == 0 else math.inf)
    denominator = norm_a * math.sqrt(sum_bb)
    cosine = sum_ab / denominator if denominator else math.nan
    undone = _undone(a, b)
    # Bytes in another order are not bit-identical, but equal values of one dtype are the same bits.
    identical = bool(undone) and sum_dd == 0 and skipped == 0 and a.dtype == b.dtype
    return TensorChange(a.name, a.dtype, b.dtype, a.numel, identical, relative, cosine, max_abs, skipped, undone)


def _same_file(path_a: str, path_b: str) -> bool:
    """One file, or hard links to it; a file on the Hub is only ever itself."""
    import os

    from ..io.sources import is_local

    return os.path.samefile(path_a, path_b) if is_local(path_a) and is_local(path_b) else path_a == path_b


def _same_place(a: TensorInfo, b: TensorInfo) -> bool:
    """The very same bytes: identical without reading."""
    return (a.offset, a.nbytes) == (b.offset, b.nbytes) and _same_file(a.file, b.file)


def _stored_pairs(a: TensorInfo, b: TensorInfo) -> list[tuple[TensorInfo, TensorInfo]] | None:
    """The stored tensors whose equal bytes make the two bit-identical: the tensors themselves,
    or the parts of two quantized weights of one scheme and settings; None: compare by value."""
    if isinstance(a, Converted) or isinstance(b, Converted):  # the bytes are in another order or form
        return None
    if is_strided(a) or is_strided(b):  # a view's bytes from its offset are not its values in order
        same_view = is_strided(a) and is_strided(b) and (a.shape, a.stride) == (b.shape, b.stride)  # type: ignore[attr-defined]
        return [(a.storage, b.storage)] if same_view else None  # type: ignore[attr-defined]
    quantized = [hasattr(x, "dequantizer") for x in (a, b)]
    if not any(quantized):
        return [(a, b)]
    same = all(quantized) and (a.dtype, a.settings, a.loaded, len(a.weight.parts)) == (
        b.dtype,
        b.settings,
        b.loaded,
        len(b.weight.parts),
    )  # type: ignore[attr-defined]
    if not same:
        return None
    return list(zip(a.weight.parts, b.weight.parts))  # type: ignore[attr-defined]


def compare_pair(a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader") -> TensorChange:
    """Bit-identical by place or bytes (a quantized weight, quant.dequant: each of its stored
    tensors, under the same settings), else by the values (dequantized)."""
    if _bit_identical(a, b, reader_a, reader_b):
        return TensorChange(a.name, a.dtype, b.dtype, a.numel, True, 0.0, 1.0, 0.0)
    return _by_value(a, b, reader_a, reader_b)


def _bit_identical(a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader") -> bool:
    pairs = _stored_pairs(a, b)
    return pairs is not None and all(
        (x.dtype, x.shape) == (y.dtype, y.shape) and (_same_place(x, y) or _same_bytes(x, y, reader_a, reader_b))
        for x, y in pairs
    )


def compare_rank(a: TensorInfo, b: TensorInfo, reader_a: "Reader", reader_b: "Reader") -> TensorChange:
    """compare_pair, and for a changed matrix the numerical rank of B - A (low_rank.estimate),
    from the one read of its values: B - A is held whole, as float32 (float64 when a side is F64)."""
    import numpy as np

    from .low_rank import MAX_DIFFERENCE_ELEMS, estimate

    if len(a.shape) != 2 or min(a.shape) == 0:
        return compare_pair(a, b, reader_a, reader_b)
    if _bit_identical(a, b, reader_a, reader_b):
        return TensorChange(a.name, a.dtype, b.dtype, a.numel, True, 0.0, 1.0, 0.0)
    if a.numel > MAX_DIFFERENCE_ELEMS:
        raise AnatomyError(
            f"{a.file}: tensor {a.name}",
            f"a matrix of at most {MAX_DIFFERENCE_ELEMS:,} elements for --low-rank (its difference is held whole)",
            f"{a.numel:,}",
            "leave it out with --filter",
        )
    precision = np.float64 if "F64" in (a.dtype, b.dtype) else np.float32
    difference = np.empty(a.numel, precision)
    sums = _sums(a, b, reader_a, reader_b, difference)
    change = _change(a, b, *sums)
    if change.identical or sums[3] == 0:  # equal values (another dtype, or bytes in another order)
        return change
    found = estimate(difference.reshape(a.shape), (a.dtype, b.dtype), sums[0], sums[1], sums[3])
    return replace(change, low_rank=found)


def batch_compare(
    pairs: list[tuple[TensorInfo, TensorInfo]], reader_a: "Reader", reader_b: "Reader"
) -> list[TensorChange | str]:
    """Many pairs of small tensors at once (streaming.SMALL_ELEMS): both sides' values in one
    float64 array each, the sums as segmented reductions (np.*.reduceat) over all the pairs;
    pairs of the same dtype and bytes are bit-identical, pairs at the same place not even read."""
    import numpy as np

    rows: list = [None] * len(pairs)
    same_file: dict[tuple[str, str], bool] = {}  # one stat per pair of files, not per pair of tensors
    unread = []
    for i, (a, b) in enumerate(pairs):
        if a.dtype == b.dtype and (a.offset, a.nbytes) == (b.offset, b.nbytes):
            if (a.file, b.file) not in same_file:
                same_file[a.file, b.file] = _same_file(a.file, b.file)
            if same_file[a.file, b.file]:
                rows[i] = TensorChange(a.name, a.dtype, b.dtype, a.numel, True, 0.0, 1.0, 0.0)
                continue
        unread.append(i)
    got_a = reader_a.gather([pairs[i][0] for i in unread], keep_raw=True)
    got_b = reader_b.gather([pairs[i][1] for i in unread], keep_raw=True)
    failed = {**got_b.errors, **got_a.errors}
    if failed:  # the sides' values no longer line up: compare the readable pairs again
        for j, exc in failed.items():
            rows[unread[j]] = exc.line()
        readable = [i for j, i in enumerate(unread) if j not in failed]
        for i, row in zip(readable, batch_compare([pairs[i] for i in readable], reader_a, reader_b)):
            rows[i] = row
        return rows
    sizes = np.diff(got_a.bounds)
    present = np.flatnonzero(sizes)
    starts, lengths = got_a.bounds[present], sizes[present]
    values_a, values_b = got_a.values, got_b.values
    finite = np.isfinite(values_a) & np.isfinite(values_b)
    skipped = np.zeros(len(present), np.int64)
    if not finite.all():
        skipped = lengths - np.add.reduceat(finite, starts, dtype=np.int64)
        values_a, values_b = np.where(finite, values_a, 0.0), np.where(finite, values_b, 0.0)
    differences = values_b - values_a
    sums = [
        np.add.reduceat(x * y, starts).tolist()
        for x, y in ((values_a, values_a), (values_b, values_b), (values_a, values_b), (differences, differences))
    ]
    max_abs = np.fmax.reduceat(np.abs(differences), starts).tolist()
    by_slot = {j: k for k, j in enumerate(present.tolist())}
    for j, i in enumerate(unread):
        a, b = pairs[i]
        raw_a = got_a.raw[got_a.raw_bounds[j] : got_a.raw_bounds[j + 1]]
        raw_b = got_b.raw[got_b.raw_bounds[j] : got_b.raw_bounds[j + 1]]
        if a.dtype == b.dtype and raw_a.tobytes() == raw_b.tobytes():
            rows[i] = TensorChange(a.name, a.dtype, b.dtype, a.numel, True, 0.0, 1.0, 0.0)
        elif j in by_slot:
            k = by_slot[j]
            rows[i] = _change(a, b, sums[0][k], sums[1][k], sums[2][k], sums[3][k], max_abs[k], int(skipped[k]))
        else:  # no values
            rows[i] = _change(a, b, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    return rows


def _order(change: TensorChange) -> tuple:
    relative = change.relative if not math.isnan(change.relative) else math.inf
    return (change.identical, -relative, natural_key(change.name))


def run_pairs(
    pairs: list[tuple[Any, Any]],
    one: Callable[..., Any],
    progress: Callable[[int], None] | None = None,
    many: Callable[..., list] | None = None,
    numel: Callable[[tuple[Any, Any]], int] | None = None,
) -> list:
    """one(a, b, reader_a, reader_b) for every pair on all cores (stream.run_batched, a reader
    per side in each worker), diff's and verify's one driver: a pair that cannot be read gives
    its error line instead. many(batch, reader_a, reader_b): the results of a batch of pairs of
    small tensors at once, those numel(pair) counts at most stream.SMALL_ELEMS values; without
    many, every pair alone. progress: called with each pair's bytes once it is done."""
    from ..decode.stream import SMALL_ELEMS, run_batched

    def work(pair: tuple[Any, Any], reader_a: "Reader", reader_b: "Reader") -> Any:
        try:
            return one(*pair, reader_a, reader_b)
        except AnatomyError as exc:
            return exc.line()

    return run_batched(
        pairs,
        work,
        many or (lambda batch, reader_a, reader_b: [work(pair, reader_a, reader_b) for pair in batch]),
        numel=numel or (lambda p: SMALL_ELEMS + 1),
        place=lambda p: (p[0].file, p[0].offset),
        weight=lambda p: p[0].nbytes + p[1].nbytes,
        readers_per_worker=2,
        done=(lambda pair: progress(pair[0].nbytes + pair[1].nbytes)) if progress is not None else None,
    )


def compare_values(
    header: HeaderDiff, progress: Callable[[int], None] | None = None, low_rank: bool = False
) -> ValueDiff:
    """Every pair of the header diff compared on all cores; a pair that cannot be read
    becomes a line in `errors` and the others are still compared. low_rank: each changed
    matrix's numerical rank too (compare_rank; matrices are then never batched)."""
    from ..decode.stream import SMALL_ELEMS, batch_numel

    pairs = list(header.pairs)
    results = run_pairs(
        pairs,
        compare_rank if low_rank else compare_pair,
        progress,
        batch_compare,
        # a Converted tensor's values come from its blocks(), never from one batched read of its
        # bytes; with low_rank a matrix is held whole, alone
        lambda p: (
            SMALL_ELEMS + 1
            if isinstance(p[0], Converted) or isinstance(p[1], Converted) or (low_rank and len(p[0].shape) == 2)
            else max(batch_numel(p[0]), batch_numel(p[1]))
        ),
    )
    rows = sorted((r for r in results if isinstance(r, TensorChange)), key=_order)
    errors = tuple((p[0].name, r) for p, r in zip(pairs, results) if isinstance(r, str))
    return ValueDiff(tuple(rows), errors, sum(a.nbytes + b.nbytes for a, b in pairs))
