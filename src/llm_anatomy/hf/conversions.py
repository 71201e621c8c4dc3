"""Parameters transformers' loader builds from differently named or several stored tensors,
as data: its checkpoint conversion mapping (transformers/conversion_mapping.py) for the
mixture-of-experts models whose experts transformers 5 fuses, and its GGUF loader's MoE
processors (modeling_gguf_pytorch_utils.py).

A checkpoint stores one matrix per expert (`experts.3.w1.weight`, [inter, hidden]);
transformers stacks them into one 3-D parameter (MergeModulelist(dim=0)) and, for gate
and up, concatenates the two stacks along dim 1 (Concatenate(dim=1)): `experts.gate_up_proj`
is [experts, 2 * inter, hidden], each expert's gate rows then its up rows. In row-major
order that is expert 0's gate, expert 0's up, expert 1's gate, ...: a sequence of whole
stored tensors (or, in a GGUF, of one expert's slice of a stacked tensor), so values are
read from those tensors without building the parameter."""

from __future__ import annotations

import re
from collections import namedtuple
from math import prod

from ..core.catalog import FusedTensor
from ..core.ggml_types import GGML_DEQUANTIZABLE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from ..core.catalog import TensorInfo


class Rename(namedtuple("Rename", "source target")):
    """WeightRenaming: the regex source replaced by target in each stored name."""

    __slots__ = ()


class Fuse(namedtuple("Fuse", "sources target")):
    """WeightConverter with MergeModulelist(dim=0), then Concatenate(dim=1) when several
    sources: the parameter ending in target is built from the stored tensors named by its
    prefix plus each source, '*' being the expert's number."""

    __slots__ = ()


_MIXTRAL = (
    Rename(".block_sparse_moe.", ".mlp."),
    Fuse((".experts.*.w1.weight", ".experts.*.w3.weight"), ".experts.gate_up_proj"),
    Fuse((".experts.*.w2.weight",), ".experts.down_proj"),
)
_QWEN2_MOE = (
    Fuse(("mlp.experts.*.gate_proj.weight", "mlp.experts.*.up_proj.weight"), "mlp.experts.gate_up_proj"),
    Fuse(("mlp.experts.*.down_proj.weight",), "mlp.experts.down_proj"),
)
# config model_type -> what transformers' get_checkpoint_conversion_mapping(model_type) gives
# (a test compares each row with it).
BY_MODEL_TYPE = {
    "mixtral": _MIXTRAL,
    "minimax": _MIXTRAL,
    "phimoe": _MIXTRAL[:1] + (Rename(".gate.weight", ".router.weight"),) + _MIXTRAL[1:],
    "qwen2_moe": _QWEN2_MOE,
    "qwen3_moe": _QWEN2_MOE,
    "olmoe": _QWEN2_MOE,
    "deepseek_v2": _QWEN2_MOE,
    "deepseek_v3": _QWEN2_MOE,
    "glm4_moe": _QWEN2_MOE,
    "hunyuan_v1_moe": _QWEN2_MOE,
    "flex_olmo": _QWEN2_MOE,
    "dots1": _QWEN2_MOE,
}

# GGUF general.architecture -> (parameter, its stacked [experts, ...] sources): transformers'
# GGUF loader (Qwen2MoeTensorProcessor, MiniMaxM2TensorProcessor) copies ffn_gate_exps into the
# first half of dim 1 of gate_up_proj and ffn_up_exps into the second.
_GATE_UP_EXPS = (
    r"model\.layers\.(?P<bid>\d+)\.mlp\.experts\.gate_up_proj",
    ("blk.{bid}.ffn_gate_exps.weight", "blk.{bid}.ffn_up_exps.weight"),
)
GGUF_STACKED = {"qwen2moe": (_GATE_UP_EXPS,), "qwen3moe": (_GATE_UP_EXPS,), "minimax-m2": (_GATE_UP_EXPS,)}


def renamer(model_type: object) -> Callable[[str], str] | None:
    """The stored name -> the name transformers loads it under, or None when it renames nothing."""
    renames = (
        [c for c in BY_MODEL_TYPE.get(model_type, ()) if isinstance(c, Rename)] if isinstance(model_type, str) else []
    )
    if not renames:
        return None

    def rename(name: str) -> str:
        for source, target in renames:
            name = re.sub(source, target, name)
        return name

    return rename


def _fused(name: str, shape: tuple[int, ...], parts: list[list[tuple[TensorInfo, int, int]]]) -> FusedTensor | None:
    """parts: per expert, its (tensor, first element, count) per source; None unless they
    make up exactly a [experts, rows, ...] parameter of one dtype (GGUF's block types and F32
    being float32 once dequantized)."""
    segments = [segment for expert in parts for segment in expert]
    if (
        not segments
        or len(shape) < 2
        or len(parts) != shape[0]
        or sum(count for _, _, count in segments) != prod(shape)
    ):
        return None
    dtypes = {t.dtype for t, _, _ in segments}
    if len(dtypes) > 1 and not dtypes <= GGML_DEQUANTIZABLE | {"F32"}:
        return None
    dtype = dtypes.pop() if len(dtypes) == 1 else "F32"  # GGUF blocks and F32 all load as float32
    first = segments[0][0]
    nbytes = sum(t.nbytes * count // t.numel for t, _, count in segments if t.numel)
    return FusedTensor(name, dtype, shape, first.file, first.offset, nbytes, tuple(segments))


def _per_expert(
    name: str, shape: tuple[int, ...], fuse: Fuse, find: Callable[[str], TensorInfo | None]
) -> FusedTensor | None:
    prefix = name[: -len(fuse.target)]
    parts: list[list[tuple[TensorInfo, int, int]]] = []
    for expert in range(shape[0]):
        found = [find(prefix + source.replace("*", str(expert))) for source in fuse.sources]
        tensors = [t for t in found if t is not None and t.shape[1:] == shape[2:]]
        if len(tensors) < len(found) or sum(t.shape[0] for t in tensors) != shape[1]:
            return None
        parts.append([(t, 0, t.numel) for t in tensors])
    return _fused(name, shape, parts)


def _stacked(
    name: str, shape: tuple[int, ...], sources: tuple[str, ...], bid: str, find: Callable[[str], TensorInfo | None]
) -> FusedTensor | None:
    found = [find(source.format(bid=bid)) for source in sources]
    tensors = [
        t
        for t in found
        if t is not None and len(t.shape) == len(shape) and t.shape[0] == shape[0] and t.shape[2:] == shape[2:]
    ]
    if len(tensors) < len(found) or sum(t.shape[1] for t in tensors) != shape[1]:
        return None
    parts: list[list[tuple[TensorInfo, int, int]]] = []
    for expert in range(shape[0]):
        parts.append([(t, expert * (t.numel // t.shape[0]), t.numel // t.shape[0]) for t in tensors])
    return _fused(name, shape, parts)


def fused_parameter(
    name: str, shape: tuple[int, ...], model_type: object, gguf_arch: object, find: Callable[[str], TensorInfo | None]
) -> FusedTensor | None:
    """The stored tensors transformers fuses into this parameter, or None when it does not
    (or the checkpoint lacks them); find: a stored (renamed) name -> its tensor."""
    if not shape or 0 in shape:
        return None
    if isinstance(gguf_arch, str):
        for pattern, sources in GGUF_STACKED.get(gguf_arch, ()):
            match = re.fullmatch(pattern, name)
            if match is not None:
                return _stacked(name, shape, sources, match.group("bid"), find)
        return None
    for conversion in BY_MODEL_TYPE.get(model_type, ()) if isinstance(model_type, str) else ():
        if isinstance(conversion, Fuse) and name.endswith(conversion.target):
            return _per_expert(name, shape, conversion, find)
    return None
