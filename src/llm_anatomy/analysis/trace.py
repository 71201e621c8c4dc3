"""The forward pass from the config alone: transformers builds the model on the meta device
(no weights read or allocated) and runs it on meta input_ids [batch, seq]; forward hooks
record each module's input and output shapes and dtypes, torch's FlopCounterMode its FLOPs
(with its own module hierarchy, so every total is FlopCounterMode's by construction)."""

from __future__ import annotations

import json
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

from .. import skeleton as skeletons
from ..catalog import Catalog
from ..errors import AnatomyError, UsageError
from .architecture import derive
from .summary import summarize
from .tree import Run, fold

SCHEMA_VERSION = 1
DEFAULT_SEQ = 2048  # the default length when the config's context is longer (or unnamed)
# The largest tensor of a forward pass is usually the attention scores, B x heads x N x N:
# beyond this many elements torch's int64 sizes overflow, so such sizes are refused up front.
MAX_SCORE_ELEMENTS = 2**62


class TensorMeta(namedtuple("TensorMeta", "shape dtype")):
    """shape: tuple of ints; dtype: torch's name without "torch." ("float16", "int64")."""

    __slots__ = ()


class TracedModule(namedtuple("TracedModule", "path class_name params calls inputs outputs flops output_bytes")):
    """One module of the forward pass, in named_modules() order. params: sum(p.numel() for p in
    module.parameters()); calls: how often forward ran it (0: never, so no shapes); inputs:
    TensorMetas of its tensor arguments, positional then keyword, at the first call; outputs:
    TensorMetas of the tensors it returned (tuples, lists and ModelOutputs flattened) at the
    first call; flops: FlopCounterMode's count under this module, its submodules included;
    output_bytes: bytes of the distinct tensors it returned, summed over its calls."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]


class Trace(namedtuple("Trace", "model model_class transformers_version batch seq modules total_flops params kv_cache kv_dtype kv_note")):
    """The forward pass of model_class on input_ids [batch, seq]: modules (TracedModule, in
    module order), total_flops (FlopCounterMode's total), params (the model's parameters, tied
    weights once), kv_cache: memory.KVCacheRow for batch x seq as `summary` computes it, or None
    (kv_note says why)."""

    __slots__ = ()

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def rule_flops(self) -> int:
        """The 2 x parameters x tokens rule of thumb (one multiply and one add per weight per token)."""
        return 2 * self.params * self.tokens


class TraceNode(namedtuple("TraceNode", "name module children")):
    """A TracedModule with its children, for folding identical layers as `tree` does."""

    __slots__ = ()


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _tensors(value: Any) -> Iterator[Any]:
    """Every tensor in a module's arguments or result: tuples, lists, dicts and ModelOutputs
    (dicts) are walked; other objects (a Cache) hold state, not this call's activations."""
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


def _metas(tensors: list[Any]) -> tuple[TensorMeta, ...]:
    return tuple(TensorMeta(tuple(t.shape), _dtype_name(t.dtype)) for t in tensors)


def default_seq(config: dict[str, Any]) -> int:
    context = derive(config).context_length
    return min(context, DEFAULT_SEQ) if context else DEFAULT_SEQ


def _check_sizes(catalog: Catalog, config: dict[str, Any], batch: int, seq: int) -> None:
    heads = derive(config).num_heads or 1
    if batch * heads * seq * seq > MAX_SCORE_ELEMENTS:
        raise UsageError(
            catalog.name,
            f"--batch and --seq whose attention scores (batch x {heads} heads x seq x seq) fit torch's sizes (at most 2**62 elements)",
            f"{batch} x {heads} x {seq} x {seq}",
            "choose a shorter --seq or a smaller --batch",
        )


def _run(model: Any, batch: int, seq: int) -> tuple[dict[str, dict[str, Any]], dict[str, int], int]:
    """Hook records by path, FLOPs by path (FlopCounterMode's module names), and its total."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    records: dict[str, dict[str, Any]] = {}

    def hook_for(path: str):
        def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            outputs = list({id(t): t for t in _tensors(output)}.values())
            record = records.get(path)
            if record is None:
                records[path] = {"calls": 1, "inputs": _metas(list(_tensors(args)) + list(_tensors(kwargs))), "outputs": _metas(outputs), "bytes": 0}
                record = records[path]
            else:
                record["calls"] += 1
            record["bytes"] += sum(t.numel() * t.element_size() for t in outputs)

        return hook

    handles = [module.register_forward_hook(hook_for(path), with_kwargs=True) for path, module in model.named_modules()]
    counter = FlopCounterMode(display=False)
    try:
        input_ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
        with torch.no_grad(), counter:
            model(input_ids=input_ids)
    finally:
        for handle in handles:
            handle.remove()
    # FlopCounterMode names modules "RootClass.path" ("Global" holds the total).
    root = type(model).__name__
    flops = {}
    for key, by_op in counter.get_flop_counts().items():
        if key == root or key.startswith(root + "."):
            flops[key[len(root) + 1:]] = sum(by_op.values())
    return records, flops, counter.get_total_flops()


def _trace_model(config_file: str, dtype: str | None, batch: int, seq: int) -> tuple[str, str, tuple[TracedModule, ...], int, int]:
    import transformers

    model = skeletons.meta_model(config_file, dtype).eval()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # deprecation chatter about the default cache
    try:
        records, flops, total = _run(model, batch, seq)
    finally:
        transformers.logging.set_verbosity(verbosity)
    modules = []
    for path, module in model.named_modules():
        record = records.get(path, {"calls": 0, "inputs": (), "outputs": (), "bytes": 0})
        params = sum(p.numel() for p in module.parameters())
        modules.append(TracedModule(path, type(module).__name__, params, record["calls"], record["inputs"], record["outputs"], flops.get(path, 0), record["bytes"]))
    params = sum(p.numel() for p in model.parameters())
    return transformers.__version__, type(model).__name__, tuple(modules), total, params


def _modules_json(modules: tuple[TracedModule, ...]) -> list[list[Any]]:
    return [[m.path, m.class_name, m.params, m.calls, [list(t) for t in m.inputs], [list(t) for t in m.outputs], m.flops, m.output_bytes] for m in modules]


def _modules_from_json(rows: list[list[Any]]) -> tuple[TracedModule, ...]:
    def metas(items: list[list[Any]]) -> tuple[TensorMeta, ...]:
        return tuple(TensorMeta(tuple(shape), dtype) for shape, dtype in items)

    return tuple(TracedModule(path, cls, params, calls, metas(ins), metas(outs), flops, nbytes) for path, cls, params, calls, ins, outs, flops, nbytes in rows)


def _traced(catalog: Catalog, batch: int, seq: int) -> tuple[str, str, tuple[TracedModule, ...], int, int]:
    """The forward pass's record, from the cache when this config, transformers version,
    batch and length were traced before (keyed as skeletons are), else traced and cached."""
    dtype = skeletons.weights_dtype(catalog)
    config_bytes = skeletons.config_bytes_of(catalog)
    key = f"trace {SCHEMA_VERSION} {batch} {seq}\0" + skeletons.cache_key(config_bytes, skeletons.installed_transformers_version() or "", dtype)
    path = skeletons.cache_path(key, "traces")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data["key"] == key:
            return data["version"], data["model_class"], _modules_from_json(data["modules"]), data["total"], data["params"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, stale or damaged: trace again
    try:
        version, model_class, modules, total, params = skeletons.with_config_file(catalog, config_bytes, lambda file: _trace_model(file, dtype, batch, seq))
    except skeletons.NOT_THE_CONFIGS_FAULT:
        raise
    except Exception as exc:  # transformers fails on configs and on meta-device forwards in many ways
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise AnatomyError(catalog.config_file or catalog.name, "a config whose forward pass transformers can run on the meta device", why, "trace runs models transformers builds without remote code; mixture-of-experts routing cannot run on the meta device yet") from exc
    skeletons.write_cached(path, {"key": key, "version": version, "model_class": model_class, "modules": _modules_json(modules), "total": total, "params": params})
    return version, model_class, modules, total, params


def trace(catalog: Catalog, batch: int = 1, seq: int | None = None) -> Trace:
    """One forward pass over input_ids [batch, seq] (seq: the config's context or 2048, whichever is smaller)."""
    config = catalog.require_config()
    if skeletons.installed_transformers_version() is None:
        raise UsageError(catalog.name, "transformers for the forward pass", "it is not installed", "pip install 'llm-anatomy[transformers]'")
    # Before transformers sees it, as for the module tree.
    skeletons.refuse_to_build(config, catalog.config_file or (catalog.files[0] if catalog.files else catalog.name))
    seq = default_seq(config) if seq is None else seq
    _check_sizes(catalog, config, batch, seq)
    version, model_class, modules, total, params = _traced(catalog, batch, seq)
    memory = summarize(catalog, contexts=[seq], batches=[batch]).memory
    kv = memory.kv_cache
    return Trace(catalog.name, model_class, version, batch, seq, modules, total, params, kv.rows[0] if kv else None, kv.dtype if kv else None, memory.kv_cache_note)


def nest(modules: tuple[TracedModule, ...]) -> TraceNode:
    """The modules (named_modules() order, so parents first) as a tree under the root."""
    children: dict[str, list[str]] = {m.path: [] for m in modules}
    by_path = {m.path: m for m in modules}
    for m in modules[1:]:
        children[m.path.rpartition(".")[0]].append(m.path)

    def node(path: str) -> TraceNode:
        return TraceNode(path.rpartition(".")[2], by_path[path], tuple(node(c) for c in children[path]))

    return node("")


def _structure(node: TraceNode) -> tuple:
    """What makes two layers identical here: everything recorded but the path, all the way down."""
    m = node.module
    return (m.class_name, m.params, m.calls, m.inputs, m.outputs, m.flops, m.output_bytes, tuple((c.name, _structure(c)) for c in node.children))


def fold_layers(children: tuple[TraceNode, ...]) -> list[Run]:
    return fold(children, _structure)
