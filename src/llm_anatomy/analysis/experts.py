"""Mixture-of-experts tensors stored stacked on one side and per expert on the other, paired
expert by expert (diff and verify across formats).

llama.cpp's converter stacks each layer's experts into one tensor, `blk.N.ffn_gate_exps.weight`
of shape [experts, rows, columns] (gate, up and down each), and writes the router as
`blk.N.ffn_gate_inp.weight`; a transformers checkpoint as save_pretrained writes it (5.x too:
its reverse conversion mapping splits the experts it fuses on load) holds one matrix per expert,
`model.layers.N.mlp.experts.3.gate_proj.weight` (Qwen-MoE, OLMoE, DeepSeek) or
`model.layers.N.block_sparse_moe.experts.3.w1.weight` (Mixtral). Expert e's matrix is the
stacked tensor's e-th slice, a contiguous run of its bytes (a block type's blocks never straddle
two experts: each row is whole blocks), so each slice is read in place, named after the other
side's tensor, and says what was undone (`experts_stacked`)."""

from __future__ import annotations

import re
from typing import Any

from ..core.catalog import Catalog, TensorInfo

STACKED = re.compile(r"blk\.(\d+)\.ffn_(gate|up|down)_exps\.weight")
ROUTER = re.compile(r"blk\.(\d+)\.ffn_gate_inp\.weight")
# The per-expert name of each stacked part, under each family's spelling ({bid}: the layer, {e}: the expert).
PER_EXPERT = {
    "gate": (
        "model.layers.{bid}.mlp.experts.{e}.gate_proj.weight",
        "model.layers.{bid}.block_sparse_moe.experts.{e}.w1.weight",
    ),
    "up": (
        "model.layers.{bid}.mlp.experts.{e}.up_proj.weight",
        "model.layers.{bid}.block_sparse_moe.experts.{e}.w3.weight",
    ),
    "down": (
        "model.layers.{bid}.mlp.experts.{e}.down_proj.weight",
        "model.layers.{bid}.block_sparse_moe.experts.{e}.w2.weight",
    ),
}
ROUTERS = ("model.layers.{bid}.mlp.gate.weight", "model.layers.{bid}.block_sparse_moe.gate.weight")
CONVENTION = "experts_stacked"


def _slices(tensor: TensorInfo, names: list[str], stored: str) -> list[Any] | None:
    """Each expert's slice of a stacked tensor as a Converted tensor under its per-expert name."""
    from .diff import Converted
    from .values import View

    experts = tensor.shape[0]
    if len(tensor.shape) != 3 or experts != len(names) or not experts or tensor.nbytes % experts:
        return None
    step = tensor.nbytes // experts
    converted = []
    for expert, name in enumerate(names):
        # The slice keeps the stacked tensor's stored name with its index: verify names it so.
        part = TensorInfo(
            f"{stored}[{expert}]", tensor.dtype, tensor.shape[1:], tensor.file, tensor.offset + expert * step, step
        )
        converted.append(
            Converted(
                name, part.dtype, part.shape, part.file, part.offset, part.nbytes, part, View.whole(part), CONVENTION
            )
        )
    return converted


def per_expert(catalog: Catalog, stored: Catalog, other: Catalog) -> Catalog:
    """CATALOG (STORED's tensors, perhaps renamed) with each stacked experts tensor split into one
    tensor per expert and the router renamed, where OTHER names its experts one by one; any
    other catalog as it is."""
    if stored.format != "gguf":
        return catalog
    names = {t.name for t in other.tensors}
    stored_name = {(t.file, t.offset): t.name for t in stored.tensors}
    tensors: list[Any] = []
    for tensor in catalog.tensors:
        original = stored_name.get((tensor.file, tensor.offset), tensor.name)
        stacked, router = STACKED.fullmatch(original), ROUTER.fullmatch(original)
        if stacked is not None and type(tensor) is TensorInfo and tensor.shape:
            bid, part = stacked.groups()
            spelling = next((s for s in PER_EXPERT[part] if s.format(bid=bid, e=0) in names), None)
            split = (
                _slices(tensor, [spelling.format(bid=bid, e=e) for e in range(tensor.shape[0])], original)
                if spelling is not None
                else None
            )
            if split is not None:
                tensors += split
                continue
        if router is not None and tensor.name not in names:
            renamed = next((n for n in (r.format(bid=router.group(1)) for r in ROUTERS) if n in names), None)
            if renamed is not None:
                tensor = tensor._replace(name=renamed)
        tensors.append(tensor)
    return catalog._replace(tensors=tuple(tensors))
