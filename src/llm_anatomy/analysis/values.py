"""Which elements `print(tensor)` shows, for a tensor or an indexed view of it, and their values.

torch summarizes a tensor of more than `threshold` elements to the first and last
`edgeitems` positions of each dimension; only those elements are read from the file."""

from __future__ import annotations

import itertools
import re
from collections import namedtuple
from math import prod

from ..core.catalog import compile_filter, matching, natural_key
from ..core.dtypes import CONFIG_DTYPE_NAMES
from ..core.errors import AnatomyError, UsageError
from ..decode.elements import CASTS, decoder_for

TYPE_CHECKING = False  # typing and dataclasses cost ~8 ms to import: records are named tuples
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator, Sequence

    from ..core.catalog import Catalog, FusedTensor, TensorInfo
    from ..hf.skeleton import Skeleton
    from ..decode.elements import ElementReader


class PrintOptions(namedtuple("PrintOptions", "precision threshold edgeitems linewidth", defaults=(4, 1000, 3, 80))):
    """torch.set_printoptions' settings, with its defaults."""

    __slots__ = ()


# ---------------------------------------------------------------- indexing: 'lm_head.weight[0, :8]'

# Patterns as strings: re compiles (and caches) them on first use, so a run without an
# index pays nothing for them.
INDEX_HELP = "an index of integers, start:stop:step slices and '...' separated by commas"
_TRAILING_INDEX = r"(?s)^(?P<name>.*?)\[(?P<index>[^\[\]]*)\]$"
_INTEGER = r"^-?\d+$"
_SLICE = r"^(?P<start>-?\d+)?:(?P<stop>-?\d+)?(?::(?P<step>-?\d+)?)?$"
# A trailing [..] in a --filter glob is an index only if it holds index characters, so
# glob classes such as [ab] keep their meaning.
_INDEX_CHARS = r"^[\d\s,:.-]+$"


def split_index(text: str, glob: bool = False) -> tuple[str, str | None]:
    """'lm_head.weight[0, :8]' -> ('lm_head.weight', '0, :8'); no trailing [..] -> (text, None)."""
    match = re.match(_TRAILING_INDEX, text)
    if match is None or (glob and not re.match(_INDEX_CHARS, match.group("index"))):
        return text, None
    return match.group("name"), match.group("index")


# No tensor dimension reaches 2**63; int() of more than 4,300 digits raises.
MAX_INDEX_DIGITS = 19


def _index_int(target: str, text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INDEX_DIGITS:
        shown = target if len(target) <= 80 else target[:77] + "..."
        raise UsageError(shown, f"indices of at most {MAX_INDEX_DIGITS} digits", f"one of {digits:,} digits")
    return int(text)


def _int_text(value: int) -> str:
    """An index as an error shows it: its digits, or how many there are (str() of more than
    4,300 digits raises, and a line of thousands of digits helps nobody)."""
    if -(10**MAX_INDEX_DIGITS) < value < 10**MAX_INDEX_DIGITS:
        return str(value)
    magnitude = abs(value)
    digits = (magnitude.bit_length() - 1) * 30103 // 100000 + 1  # at most the true count
    while 10**digits <= magnitude:
        digits += 1
    return f"an integer of {digits:,} digits"


def _item_text(item) -> str:
    if item is Ellipsis:
        return "..."
    if isinstance(item, slice):
        parts = ["" if v is None else _int_text(v) for v in (item.start, item.stop, item.step)]
        return ":".join(parts if item.step is not None else parts[:2])
    return _int_text(item)


def check_items(name: str, items: tuple) -> tuple:
    """Index items given in Python (p[0, :4]) checked as parse_index checks typed ones: integers,
    slices of integers stepping forwards, at most one ...; returns them."""
    for item in items:
        if item is Ellipsis:
            continue
        parts = (item.start, item.stop, item.step) if isinstance(item, slice) else (item,)
        if item is None or not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in parts):
            raise UsageError(name, "an index of integers, slices and ...", _short_repr(item))
        if isinstance(item, slice) and item.step is not None and item.step < 1:
            raise UsageError(
                name, "a slice step of at least 1", _int_text(item.step), "torch slices only step forwards"
            )
    if items.count(Ellipsis) > 1:
        raise UsageError(index_target(name, items), "at most one '...'", str(items.count(Ellipsis)))
    return items


def _short_repr(item) -> str:
    """repr() of what is not an index, cut short: it could be anything, of any size."""
    text = (
        f"slice({', '.join(_short_repr(v) if not isinstance(v, int) else _int_text(v) for v in (item.start, item.stop, item.step))})"
        if isinstance(item, slice)
        else repr(item)
    )
    return text if len(text) <= 80 else text[:77] + "..."


def index_target(name: str, items: tuple) -> str:
    """name[items] as torch syntax: 'lm_head.weight[0, :4, ...]', each huge integer by its digit count."""
    return f"{name}[{', '.join(map(_item_text, items))}]"


def parse_index(target: str, index: str) -> tuple:
    """'0, :8' -> (0, slice(None, 8, None)); target names the whole expression in errors."""
    items: list = []
    for raw in index.split(","):
        item = raw.strip()
        slice_match = re.match(_SLICE, item)
        if item == "...":
            items.append(Ellipsis)
        elif re.match(_INTEGER, item):
            items.append(_index_int(target, item))
        elif slice_match:
            start, stop, step = (
                None if v is None else _index_int(target, v) for v in slice_match.group("start", "stop", "step")
            )
            if step is not None and step < 1:
                raise UsageError(target, "a slice step of at least 1", str(step), "torch slices only step forwards")
            items.append(slice(start, stop, step))
        else:
            raise UsageError(target, INDEX_HELP, repr(item), "for example 'lm_head.weight[0, :8]'")
    ellipses = items.count(Ellipsis)
    if ellipses > 1:
        raise UsageError(target, "at most one '...'", str(ellipses))
    return tuple(items)


class View(
    namedtuple("View", "name tensor shape strides offset dtype row_order elementwise", defaults=(None, None, None))
):
    """Elements of a stored tensor seen through an index. name: as shown ("lm_head.weight[0, :8]");
    tensor: the TensorInfo; shape; strides and offset: in stored elements, row-major; dtype:
    the float dtype to show the values in (a tensors.CASTS key), None for the stored one;
    row_order: the stored index of each index of the first dimension, None for the same;
    elementwise: an ELEMENTWISE key, what the GGUF loader computes from each value, or None."""

    __slots__ = ()

    @classmethod
    def whole(cls, tensor: TensorInfo) -> "View":
        strides = tuple(prod(tensor.shape[d + 1 :]) for d in range(len(tensor.shape)))
        return cls(tensor.name, tensor, tensor.shape, strides, 0)

    def index(self, target: str, items: tuple) -> "View":
        """This view indexed as torch indexes: integers drop a dimension, slices keep it.

        The loader's transforms carry over (the dtype, what is computed from each value, the
        order of the first dimension's rows), so an indexed view holds what the whole view holds
        at those positions: every accessor reads through the one conversion."""
        explicit = len(items) - items.count(Ellipsis)
        if explicit > len(self.shape):
            raise UsageError(target, f"at most {len(self.shape)} indices for shape {list(self.shape)}", str(explicit))
        if Ellipsis in items:
            at = items.index(Ellipsis)
            items = items[:at] + (slice(None),) * (len(self.shape) - explicit) + items[at + 1 :]
        items = items + (slice(None),) * (len(self.shape) - len(items))
        shape, strides, offset, row_order = [], [], self.offset, None
        for dim, (item, size, stride) in enumerate(zip(items, self.shape, self.strides)):
            order = self.row_order if dim == 0 else None  # the stored row of each row of this dimension
            if isinstance(item, int):
                if not -size <= item < size:
                    expected = f"an index in {-size}..{size - 1}" if size else "no index (it is empty)"
                    raise UsageError(target, f"{expected} for dimension {dim} of size {size}", _int_text(item))
                at = item % size
                offset += (order[at] if order is not None else at) * stride
            elif order is not None:  # the rows kept, each still at its own stored row
                row_order = order[item]
                shape.append(len(row_order))
                strides.append(stride)
            else:
                start, stop, step = item.indices(size)
                count = len(range(start, stop, step))
                offset += start * stride if count else 0
                shape.append(count)
                strides.append(stride * step)
        return self._replace(
            name=target, shape=tuple(shape), strides=tuple(strides), offset=offset, row_order=row_order
        )


def grad_fn(items: tuple, shape: tuple[int, ...]) -> str:
    """The grad_fn torch gives p[items] for a parameter p of this shape (what print shows after
    grad_fn=): the last indexing operation that is not a no-op. One item is indexed as p[item]
    (any slice is a SliceBackward0); several as a tuple, where a slice from the start past
    the end with step 1 returns the tensor itself and the result is then an alias."""
    if len(items) == 1 and items[0] is not Ellipsis:
        return "SelectBackward0" if isinstance(items[0], int) else "SliceBackward0"
    found = "AliasBackward0"
    explicit = len(items) - items.count(Ellipsis)
    dims = iter(range(len(shape)))
    for item in items:
        if item is Ellipsis:
            for _ in range(len(shape) - explicit):
                next(dims)
            continue
        size = shape[next(dims)]
        if isinstance(item, int):
            found = "SelectBackward0"
        elif item.start not in (None, 0) or item.step not in (None, 1) or (item.stop is not None and item.stop < size):
            found = "SliceBackward0"
    return found


# ---------------------------------------------------------------- which elements torch shows


# Summaries show few elements, read at once; a hostile shape of many short dimensions
# (torch shows every position of a dimension of at most 2 * edgeitems) is read row by row.
MAX_SHOWN_IN_MEMORY = 1 << 20


def shown_positions(size: int, summarize: bool, edgeitems: int) -> Sequence[int]:
    """Positions of one dimension that print(tensor) shows (torch's get_summarized_data)."""
    if summarize and size > 2 * edgeitems:
        return [*range(edgeitems), *range(size - edgeitems, size)]
    return range(size)


class ShownTensor(namedtuple("ShownTensor", "name tensor decoder shape summarize indices rows")):
    """A tensor (or view) as print() shows it. name, tensor (TensorInfo), decoder (its
    Decoder), shape (of the view), summarize (more than threshold elements), indices (per
    dimension, the positions shown) and rows() (a fresh iterator over the shown values: one
    iterable per innermost row, row-major; re-reads from the file on each call when streaming)."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def values(self) -> Iterator:
        return itertools.chain.from_iterable(self.rows())


def _steps(view: View, dim: int, idx: Sequence[int]) -> list[int]:
    """Stored offsets of these indices of one dimension."""
    order = view.row_order if dim == 0 and view.row_order is not None else None
    return [(order[i] if order else i) * view.strides[dim] for i in idx]


def _row_starts(view: View, indices: tuple[Sequence[int], ...]) -> Iterator[int]:
    """Stored position of the first shown element of each innermost row, row-major."""
    outer = [_steps(view, dim, idx) for dim, idx in enumerate(indices[:-1])]
    for steps in itertools.product(*outer):
        yield view.offset + sum(steps)


def _shown(view: View, options: PrintOptions) -> tuple[bool, tuple[Sequence[int], ...]]:
    """(summarize, per dimension the positions shown)."""
    summarize = prod(view.shape) > options.threshold
    return summarize, tuple(shown_positions(size, summarize, options.edgeitems) for size in view.shape)


def _read_at_once(view: View, summarize: bool, indices: tuple[Sequence[int], ...]) -> list[int] | None:
    """The stored positions of a summarized view (or of a reordered 1-D one), read in one
    call, in the order shown; None when streamed."""
    reordered_rows = view.row_order is not None and len(view.shape) == 1  # the last dimension is the reordered one
    if (summarize or reordered_rows) and view.shape and prod(len(i) for i in indices) <= MAX_SHOWN_IN_MEMORY:
        last_steps = _steps(view, len(view.shape) - 1, indices[-1])
        return [start + step for start in _row_starts(view, indices) for step in last_steps]
    return None


def prefetch(reader: ElementReader, views: Iterable[View], options: PrintOptions) -> None:
    """Hand the reader every summarized view's positions before show() reads them one by one,
    so a remote model's tensors are fetched in parallel requests rather than in turn."""
    wanted = []
    for view in views:
        positions = _read_at_once(view, *_shown(view, options))
        if positions:
            wanted.append((view.tensor, sorted(set(positions)), view.dtype))
    reader.prefetch(wanted)


def _read_any(reader: ElementReader, view: View, positions: list[int]) -> list:
    """Values at positions in any order (a transposed or reordered view): the reader takes ascending ones."""
    if any(a >= b for a, b in zip(positions, positions[1:])):
        ordered = sorted(set(positions))
        found = dict(zip(ordered, reader.read(view.tensor, ordered, view.dtype)))
        values = [found[p] for p in positions]
    else:
        values = reader.read(view.tensor, positions, view.dtype)
    return values if view.elementwise is None else ELEMENTWISE[view.elementwise](values)


def _minus_one(values: Iterable) -> list:
    """float32(value - 1): the difference of two float32 is exact in float64, so rounding it once is float32 arithmetic."""
    return CASTS["F32"]([v - 1.0 for v in values])


def _log_of_negated(values: Iterable) -> list:
    """numpy's float32 log(-value), as transformers computes Mamba's A_log: numpy's float32 log
    (its own SIMD code on most x86 CPUs) need not round as float64's log rounded to float32 does."""
    import numpy as np

    return np.log(-np.array(values, dtype=np.float32)).tolist()


# What transformers' GGUF loader computes from each stored value (in float32, as it does).
ELEMENTWISE = {"minus_one": _minus_one, "log_of_negated": _log_of_negated}


def show(reader: ElementReader, view: View, options: PrintOptions) -> ShownTensor:
    """Select the elements print() shows; read them now if summarized, else stream them on demand."""
    decoder = decoder_for(view.tensor, view.dtype)
    numel = prod(view.shape)
    summarize, indices = _shown(view, options)
    if not view.shape:
        value = _read_any(reader, view, [view.offset])
        return ShownTensor(view.name, view.tensor, decoder, (), summarize, (), lambda: iter([value]))
    if numel == 0 or (summarize and options.edgeitems == 0):  # nothing shown, nothing read
        return ShownTensor(view.name, view.tensor, decoder, view.shape, summarize, indices, lambda: iter(()))
    last = indices[-1]
    positions = _read_at_once(view, summarize, indices)
    if positions is not None:
        flat = _read_any(reader, view, positions)
        width = len(last)
        return ShownTensor(
            view.name,
            view.tensor,
            decoder,
            view.shape,
            summarize,
            indices,
            lambda: (flat[i : i + width] for i in range(0, len(flat), width)),
        )
    last_stride = view.strides[-1]

    def stream() -> Iterator[Iterable]:
        for start in _row_starts(view, indices):
            if isinstance(last, range):  # the whole row, in bounded chunks
                chunks = reader.stream(view.tensor, start, len(last), last_stride, view.dtype)
                yield itertools.chain.from_iterable(
                    chunks if view.elementwise is None else map(ELEMENTWISE[view.elementwise], chunks)
                )
            else:  # the row's two ends
                yield _read_any(reader, view, [start + i * last_stride for i in last])

    return ShownTensor(view.name, view.tensor, decoder, view.shape, summarize, indices, stream)


# ---------------------------------------------------------------- which tensors


def no_tensors(catalog: Catalog) -> UsageError:
    """A checkpoint without tensors: a vocabulary-only GGUF, or config.json alone."""
    if not catalog.files:
        return UsageError(
            catalog.name,
            "a tensor to show",
            "none (only config.json, no weights)",
            "see the model it implies with `llm-anatomy params --style torch`",
        )
    return UsageError(
        catalog.name,
        "a tensor to show",
        "none (the file holds metadata only)",
        "see it with `llm-anatomy params --metadata`",
    )


def dequantized(catalog: Catalog) -> Catalog:
    """The catalog with each quantized weight one tensor of dequantized values, in the dtype
    the loader gives it (quant.dequant); any other catalog as it is."""
    from ..quant.logical import logical_catalog

    return logical_catalog(catalog, lambda: load_dtype(catalog))


def tensor_views(
    catalog: Catalog,
    target: str | None,
    pattern: str | None,
    stored: Catalog | None = None,
    loaded: Callable[[View], View] | None = None,
) -> list[View]:
    """The TENSOR[INDEX] argument, or every tensor matching --filter (with an optional trailing
    index), in natural order; stored: the catalog as stored, where a name not in `catalog`
    (a quantized weight's scales, packed words) is looked up too; loaded: how the loader turns
    a stored tensor into the one under its name (loader_transform), applied before the index."""
    whole = View.whole if loaded is None else lambda tensor: loaded(View.whole(tensor))
    if target is not None:
        # A name that itself ends in [..] is taken whole.
        known = catalog.by_name if stored is None else {**stored.by_name, **catalog.by_name}
        name, index = (target, None) if target in known else split_index(target)
        view = whole(known[name] if name in known else catalog.get(name))
    else:
        pattern, index = split_index(pattern, glob=True) if pattern is not None else (None, None)
        tensors = sorted(matching(catalog, pattern), key=lambda t: natural_key(t.name))
        if not tensors:
            raise no_tensors(catalog)
        if index is None:
            return [whole(t) for t in tensors]
        return [whole(t).index(f"{t.name}[{index}]", parse_index(f"{t.name}[{index}]", index)) for t in tensors]
    if index is None:
        return [view]
    return [view.index(target, parse_index(target, index))]


def load_dtype(catalog: Catalog) -> str | None:
    """The float dtype from_pretrained(dtype="auto") gives a model's parameters: config.json's
    dtype, else the weights' (transformers casts every float tensor to it on load)."""
    from ..hf.skeleton import weights_dtype

    config = catalog.config or {}
    name = config.get("dtype") or config.get("torch_dtype") or weights_dtype(catalog)
    dtype = CONFIG_DTYPE_NAMES.get(name) if isinstance(name, str) else None
    return dtype if dtype in CASTS else None


CONVERTED_ON_LOAD = "transformers renames, fuses or initialises this weight on load, so print(p) cannot be rebuilt from the file; the default style shows the stored tensors"


def parameter_views(
    catalog: Catalog, skeleton: "Skeleton", pattern: str | None, loaded: Callable[[View], View] | None = None
) -> list[View]:
    """model.parameters() in transformers' order: no buffers, tied weights once, read from the
    stored tensor, float values in the dtype the model is loaded in; loaded: how the loader
    turns a stored tensor into the parameter (a GGUF's transforms), if it does."""
    regex = compile_filter(pattern)
    model_dtype = load_dtype(catalog)
    from ..hf.skeleton import stored_tensor_finder

    find = stored_tensor_finder(catalog, skeleton)
    views = []
    for param in skeleton.parameters:
        if regex is not None and not regex.match(param.name):
            continue
        views.append(parameter_view(catalog, skeleton.model_class, param, find(param.name), model_dtype, loaded))
    return views


def parameter_view(
    catalog: Catalog,
    model_class: str,
    param,
    tensor: TensorInfo | FusedTensor | None,
    model_dtype: str | None,
    loaded: Callable[[View], View] | None = None,
) -> View:
    """One parameter (a skeleton Parameter) as the model holds it, read from its stored tensor
    (None: not stored under its own name); model_dtype: load_dtype(catalog)."""
    if tensor is None:
        raise AnatomyError(
            catalog.name,
            f"parameter {param.name} of {model_class} in the checkpoint",
            "no tensor of that name",
            CONVERTED_ON_LOAD,
        )
    view = View.whole(tensor)._replace(name=param.name, dtype=model_dtype if tensor.dtype in CASTS else None)
    if loaded is not None:
        view = loaded(view)
    if view.shape != param.shape:
        raise AnatomyError(
            tensor.file,
            f"shape {list(param.shape)} for parameter {param.name}",
            f"{list(view.shape)}",
            CONVERTED_ON_LOAD,
        )
    return view


def loader_transform(stored: Catalog) -> Callable[[View], View] | None:
    """How from_pretrained turns each tensor of this catalog (as stored, with its stored names)
    into the one transformers holds under its own name: GGUF's loader transforms, None where
    values load as stored. The one place every accessor of values under transformers' names
    (`values --hf-names`, `--style torch`, the API's Parameter) goes through."""
    return gguf_loaded(stored) if stored.format == "gguf" else None


def loader_convention(stored: Catalog) -> Callable[[TensorInfo], str | None]:
    """The converter convention loader_transform undoes for each tensor of this catalog (as
    stored): an hf.gguf_transforms.CONVENTIONS key, or None where values load as stored.
    diff and verify name it beside each tensor they compared through the conversion."""
    if stored.format != "gguf":
        return lambda tensor: None
    transform_for = _gguf_transform_for(stored)

    def convention(tensor: TensorInfo) -> str | None:
        transform = transform_for(tensor)
        return None if transform is None else (transform.arg if transform.kind == "elementwise" else transform.kind)

    return convention


def converter_undone(stored: Catalog) -> tuple[Callable[[View], View], Callable[[TensorInfo], str | None]] | None:
    """(loaded, convention) as loader_transform and loader_convention give them, for every
    catalog a converter's conventions are undone in before diff and verify compare it: a GGUF
    as transformers' GGUF loader reads it, and Meta's original checkpoint as transformers'
    convert_llama_weights_to_hf.py writes it (q/k rows permuted); None: values as stored."""
    if stored.format == "gguf":
        return gguf_loaded(stored), loader_convention(stored)
    if stored.format == "torch":
        return _meta_converted(stored)
    return None


def _meta_converted(
    catalog: Catalog,
) -> tuple[Callable[[View], View], Callable[[TensorInfo], str | None]] | None:
    """Meta's consolidated.pth: q and k's rows in transformers' order, with the head counts of
    params.json (n_kv_heads for k, n_heads where it states none, as the converter takes them)."""
    from ..hf import gguf_transforms as gt

    config = catalog.config or {}
    heads = config.get("num_attention_heads")
    counts = {"num_attention_heads": heads, "num_key_value_heads": config.get("num_key_value_heads", heads)}
    stored_name = {(t.file, t.offset): t.name for t in catalog.tensors}

    def heads_of(tensor: TensorInfo) -> int | None:
        transform = gt.meta_transform_of(stored_name.get((tensor.file, tensor.offset), tensor.name))
        count = counts[transform.arg] if transform is not None else None
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0 or len(tensor.shape) != 2:
            return None
        return count if tensor.shape[0] % (2 * count) == 0 else None

    if not any(heads_of(t) for t in catalog.tensors):
        return None

    def loaded(view: View) -> View:
        count = heads_of(view.tensor)
        return view if count is None else view._replace(row_order=gt.unpermuted_rows(view.shape[0], count))

    return loaded, lambda tensor: "unpermute_meta" if heads_of(tensor) else None


def _gguf_transform_for(catalog: Catalog) -> Callable:
    """TensorInfo (stored or renamed) -> the gguf_transforms.Transform transformers' loader
    applies to it, or None: not for experts fused on load, nor a q/k permutation without head counts."""
    from ..hf import gguf_transforms as gt
    from ..core.ggml_types import KEY_ARCHITECTURE

    arch = catalog.metadata.get(KEY_ARCHITECTURE)
    config = catalog.config or {}
    stored_name = {(t.file, t.offset): t.name for t in catalog.tensors}
    heads_known = all(isinstance(config.get(key), int) for key in ("num_attention_heads", "num_key_value_heads"))

    def transform_for(tensor) -> "gt.Transform | None":
        if getattr(tensor, "segments", None) is not None:
            return None  # experts fused on load (conversions.py) are copied as stored
        transform = gt.transform_of(arch, stored_name.get((tensor.file, tensor.offset), tensor.name))
        if (
            transform is not None
            and transform.kind == "unpermute"
            and not (heads_known and isinstance(config.get(transform.arg), int))
        ):
            return None  # transformers then loads the rows as stored
        return transform

    return transform_for


def gguf_loaded(catalog: Catalog) -> Callable[[View], View]:
    """How transformers' GGUF loader turns each stored tensor of this GGUF catalog (with its
    llama.cpp names) into a parameter: a View -> View for parameter_views."""
    from ..hf import gguf_transforms as gt

    config = catalog.config or {}
    transform_for = _gguf_transform_for(catalog)

    def loaded(view: View) -> View:
        transform = transform_for(view.tensor)
        if transform is None:
            return view
        kind, arg = transform
        if kind == "elementwise":
            return view._replace(elementwise=arg)
        if kind == "transpose" and len(view.shape) == 2:
            return view._replace(shape=view.shape[::-1], strides=view.strides[::-1])
        if kind == "unsqueeze":  # a dimension of size 1: its stride only ever steps once, over one element
            return view._replace(
                shape=view.shape[:arg] + (1,) + view.shape[arg:], strides=view.strides[:arg] + (1,) + view.strides[arg:]
            )
        if kind == "unpermute":
            return view._replace(row_order=gt.unpermuted_rows(view.shape[0], config[arg]))
        if kind == "bloom_qkv":
            return view._replace(row_order=gt.bloom_qkv_rows(view.shape[0], config["n_head"]))
        return view

    return loaded
