"""The one description of a checkpoint that every reader returns and every analysis uses:
tensors (name, dtype, shape, where their bytes lie) plus the model's config."""

from __future__ import annotations

import fnmatch
import re
from types import MappingProxyType
from collections import namedtuple
from functools import cached_property
from math import prod

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, Sequence

from .errors import AnatomyError, CorruptFile, UsageError
from .text import escape, has_unsafe

# Bounds every reader holds a checkpoint to before building TensorInfo (docs/safety.md, its table of limits).
# Real checkpoints stay far inside them: DeepSeek-V3 stores ~91,000 tensors, names run to
# ~100 characters, ranks to 5; torch sizes are int64, and a dimension past that cannot be
# sliced or ranged over. Each tensor costs ~1 KB from header to printed row, so a million
# is about a gigabyte: the 1.2 million two-value tensors of a hostile file are refused.
MAX_TENSORS = 1_000_000
MAX_NAME_CHARS = 1024
MAX_RANK = 64
MAX_DIM = 2**63 - 1


def check_tensor_name(path: str, name: str) -> None:
    """Refuse a stored tensor name a reader must not pass on: longer than MAX_NAME_CHARS, or
    holding characters that would rewrite a terminal (every reader, one wording)."""
    if len(name) > MAX_NAME_CHARS:
        raise CorruptFile(
            path,
            f"tensor names of at most {MAX_NAME_CHARS} characters",
            f"a name of {len(name)} characters",
            "the file is corrupt or hostile",
        )
    if has_unsafe(name):
        raise CorruptFile(
            path,
            "tensor names without control characters",
            f"'{escape(name)}'",
            "the file is corrupt or hostile; do not trust it",
        )


# Records on the header-only path are named tuples, not dataclasses: importing dataclasses
# and decorating a class cost ~11 ms + ~1.5 ms each, as much as Python's own start-up, and
# `params` must finish within 4x `python -c pass`. They are just as frozen and typed in docs.


class TensorInfo(namedtuple("TensorInfo", "name dtype shape file offset nbytes")):
    """One stored tensor: name, dtype (a DTYPES key), shape (tuple of ints), the file holding
    it, the absolute offset of its first data byte in that file, and its size in bytes."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)


class FusedTensor(namedtuple("FusedTensor", "name dtype shape file offset nbytes segments")):
    """A parameter transformers builds on load from several stored tensors (conversions.py:
    MoE experts stacked, gate and up concatenated): its row-major elements are its segments'
    in turn, each segment (TensorInfo, first element, element count) of one stored tensor.
    name: the parameter's; dtype, file and offset: its first segment's; nbytes: the segments'."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)


# A strided view is read for stats and diff by holding the storage elements it reaches as
# float64: 2**27 of them is 1 GiB. A transposed 8192 x 8192 weight stays inside.
MAX_STRIDED_SPAN = 2**27


class StridedTensor(namedtuple("StridedTensor", "name dtype shape file offset nbytes stride storage")):
    """A tensor torch.save stored as a view that is not in row-major order (t.T, t[:, ::2]):
    element (i0, i1, ...) of the view is element i0 * stride[0] + i1 * stride[1] + ... of
    `storage`, as torch reads it. name, dtype, shape, file: as TensorInfo; offset: the file
    offset of its first element; nbytes: its elements' bytes (torch's tensor.nbytes);
    stride: in elements; storage: a 1-D TensorInfo over the storage elements the view
    reaches, from its first (whose bytes the readers check and read)."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def storage_positions(self, positions: Iterable[int]) -> list[int]:
        """Where in `storage` the elements at these flat row-major positions of the view are."""
        dims = list(zip(reversed(self.shape), reversed(self.stride)))
        found = []
        for position in positions:
            at = 0
            for size, step in dims:
                position, index = divmod(position, size)
                at += index * step
            found.append(at)
        return found

    def read(self, reader: Any, positions: Sequence[int], as_dtype: str | None = None) -> list:
        """The values at ascending flat positions (tensors.ElementReader.read's contract): the
        storage elements they map to, each read once, in storage order."""
        if positions and not 0 <= positions[0] <= positions[-1] < self.numel:
            raise AnatomyError(
                f"{self.file}: tensor {self.name}",
                f"element positions inside its {self.numel} elements",
                f"{positions[0]}..{positions[-1]}",
            )
        where = self.storage_positions(positions)
        order = sorted(set(where))
        value_at = dict(zip(order, reader.read(self.storage, order, as_dtype)))
        return [value_at[at] for at in where]

    def blocks(self, reader: Any) -> Iterator[Any]:
        """Every value as float64 in row-major order, in blocks of the reader's block size
        (streaming.Reader.blocks' contract), from the storage elements it reaches held in memory."""
        import numpy as np

        span = self.storage.numel
        if span > MAX_STRIDED_SPAN:
            raise AnatomyError(
                f"{self.file}: tensor {self.name}",
                f"a strided view over at most {MAX_STRIDED_SPAN} storage elements",
                f"{span}",
                "save it with tensor.contiguous()",
            )
        values = np.empty(span, np.float64)
        filled = 0
        for block in reader.blocks(self.storage):
            values[filled : filled + len(block)] = block
            filled += len(block)
        step = len(reader.block)
        for start in range(0, self.numel, step):
            flat = np.arange(start, min(start + step, self.numel), dtype=np.int64)
            at = np.zeros(len(flat), np.int64)
            for size, stride in zip(reversed(self.shape), reversed(self.stride)):
                flat, index = np.divmod(flat, size)
                at += index * stride
            yield values[at]


def is_strided(info: Any) -> bool:
    return isinstance(info, StridedTensor)


# The field names spelled out in the call, where type checkers read them.
class Catalog(
    namedtuple(
        "Catalog",
        "name format root files tensors config config_file config_error metadata",
        defaults=(None, None, None, MappingProxyType({})),
    )
):
    """Tensors in the order the files store them, plus config and where they came from.

    name: what the user typed, or the folder/file name; format: "safetensors", "gguf",
    "torch"; root: the model folder; files: the weight files read; tensors: TensorInfo
    tuple; config: the config dict or None; config_file: its path; config_error: why the
    config could not be read (commands that need it raise this); metadata: format-level
    key/values (safetensors __metadata__, GGUF key/values)."""

    @cached_property
    def by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}

    def get(self, name: str) -> TensorInfo:
        try:
            return self.by_name[name]
        except KeyError:
            raise UsageError(
                self.name, f"a tensor named {name!r}", "no such tensor", "list the names with `llm-anatomy params`"
            ) from None

    def require_config(self) -> dict[str, Any]:
        if self.config_error is not None:
            raise self.config_error
        if self.config is None:
            raise AnatomyError(
                self.weights_place, self.CONFIG_EXPECTED, "none", "copy the model's config.json next to the weights"
            )
        return self.config

    CONFIG_EXPECTED = "a config.json beside it"

    @property
    def weights_place(self) -> str:
        """What a missing config.json is reported against: the weights file when there is one
        (as typed: `model.pth`, not its folder `.`), else the model folder."""
        return self.files[0] if len(self.files) == 1 else self.root

    @property
    def total_numel(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def total_nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def implied_by(self) -> str | None:
        """What a model structure shown for a checkpoint without tensors comes from: "its metadata"
        (a vocabulary-only GGUF), "its config" (config.json alone); None when tensors are stored."""
        if self.tensors or self.config is None:
            return None
        return "its config" if not self.files else "its metadata"


DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that puts layers.2 before layers.10: runs of decimal digits compare as
    numbers. (str.isdigit() also takes '²', which int() refuses: a name ending in 1² was a
    ValueError.)"""
    parts = DIGITS.split(name)
    parts[1::2] = map(int, parts[1::2])
    return tuple(parts)


def compile_filter(pattern: str | None) -> re.Pattern[str] | None:
    """A shell-style glob ('model.layers.0.*') matched against whole tensor names."""
    if pattern is None:
        return None
    return re.compile(fnmatch.translate(pattern))


def select(tensors: Iterable[TensorInfo], pattern: str | None) -> list[TensorInfo]:
    regex = compile_filter(pattern)
    return [t for t in tensors if regex is None or regex.match(t.name)]


def no_match(model: str, pattern: str, what: str = "tensor", listing: str = "llm-anatomy params") -> UsageError:
    """The one refusal of a --filter that selects nothing, worded alike by params, values and
    stats: a usage error (exit 2), as an empty table would look like a model with no tensors."""
    return UsageError(model, f"a {what} matching {pattern!r}", "none", f"list the names with `{listing}`")


def matching(catalog: Catalog, pattern: str | None) -> list[TensorInfo]:
    """The tensors --filter selects (all without one); none selected by a filter is no_match."""
    chosen = select(catalog.tensors, pattern)
    if not chosen and pattern is not None:
        raise no_match(catalog.name, pattern)
    return chosen
