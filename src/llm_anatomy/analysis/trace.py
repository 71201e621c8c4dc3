"""The forward pass from the config alone: transformers builds the model on the meta device
(no weights read or allocated) and runs it on meta input_ids [batch, seq], or, to decode, on
one new token per sequence over a KV cache of `context` tokens (a real cache: the one the
model's own prefill of that length returns on the meta device). Forward hooks record each
module's input and output shapes and dtypes, torch's FlopCounterMode its FLOPs (with its own
module hierarchy, so every total is FlopCounterMode's by construction), trace_probes what
happens inside attention and the peak of live activation bytes."""

from __future__ import annotations

import json
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..hf import skeleton as skeletons
from ..core.catalog import Catalog
from ..core.errors import AnatomyError, UsageError
from ..core.notice import announced
from .architecture import Architecture, derive
from .memory import kv_cache_of
from .tree import Run, fold

SCHEMA_VERSION = (
    4  # 2: decode, attention calls, KV cache layers, peak bytes, experts; 3: "metas" table; 4: cache layers' held bytes
)
DEFAULT_SEQ = 2048  # the default length when the config's context is longer (or unnamed)
# The largest tensor of a forward pass is usually the attention scores, B x heads x N x N:
# torch counts a tensor's bytes in an int64, so beyond this many elements (of up to 8 bytes)
# it overflows, and such sizes are refused up front.
MAX_ELEMENTS = 2**60


class TensorMeta(namedtuple("TensorMeta", "shape dtype")):
    """shape: tuple of ints; dtype: torch's name without "torch." ("float16", "int64")."""

    __slots__ = ()

    @property
    def nbytes(self) -> int:
        return _numel(self.shape) * ELEMENT_BYTES.get(self.dtype, 0)


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


class AttentionCall(namedtuple("AttentionCall", "path query key value scores flops")):
    """What one attention module's core saw at its first call: query, key, value (TensorMetas
    after the head split, [batch, heads, tokens, head_dim]; key and value hold the cached tokens
    too), scores (q k^T: [batch, query heads, queries, keys]) and the FLOPs FlopCounterMode
    counted inside it (q k^T and the weighted sum of v)."""

    __slots__ = ()


class CacheLayer(namedtuple("CacheLayer", "kind keys values held")):
    """One layer of the KV cache the forward returned: its class (DynamicLayer,
    DynamicSlidingWindowLayer, ...), the TensorMetas of its keys and values, and held: the
    bytes of the storage they are views of. A sliding-window layer shows its last window - 1
    tokens but holds the tensor it cut them from: the window after a decoding step, the whole
    prefill after a prefill (until the next step)."""

    __slots__ = ()

    @property
    def nbytes(self) -> int:
        """Bytes of the keys and values as shaped."""
        return self.keys.nbytes + self.values.nbytes

    @property
    def held_tokens(self) -> int:
        """Tokens the held storage has room for (keys [batch, heads, tokens, head_dim])."""
        tokens = self.keys.shape[-2] if self.keys.shape else 0
        return self.held * tokens // self.nbytes if self.nbytes else 0


class Experts(namedtuple("Experts", "top_k experts")):
    """A mixture of experts: each token runs top_k of `experts` experts per MoE layer."""

    __slots__ = ()


class Trace(
    namedtuple(
        "Trace",
        "model model_class transformers_version batch seq context modules total_flops params param_dtype attention cache peak_bytes experts kv_cache kv_dtype kv_note node generates",
        defaults=(True,),
    )
):
    """The forward pass of model_class on input_ids [batch, seq] after `context` cached tokens
    (0: a prefill; else a decoding step, seq 1): modules (TracedModule, in module order: the
    subtree of `node` when one was asked for, else all), total_flops (FlopCounterMode's total
    for the whole model), params (the model's parameters, tied weights once), attention
    (AttentionCall per attention module), cache (CacheLayer per layer of the KV cache the
    forward returned; empty for encoders), param_dtype (the weights' dtype as built), peak_bytes (the most bytes the forward's own tensors
    held at once), experts (Experts, or None), kv_cache: memory.KVCacheRow for batch x (context
    + seq) as `summary` computes it, or None (kv_note says why); generates: False for an encoder
    (no decoding step, so no FLOPs per generated token)."""

    __slots__ = ()

    @property
    def decode(self) -> bool:
        return self.context > 0

    @property
    def tokens(self) -> int:
        """Tokens this forward computes (the new ones: batch x seq)."""
        return self.batch * self.seq

    @property
    def rule_flops(self) -> int:
        """The 2 x parameters x tokens rule of thumb (one multiply and one add per weight per token)."""
        return 2 * self.params * self.tokens

    @property
    def attention_flops(self) -> int:
        return sum(call.flops for call in self.attention)

    @property
    def weight_macs_per_token(self) -> int:
        """Multiply-adds with weights per new token: the matrix products' FLOPs are 2 x these x
        tokens. Usually the weights a token is multiplied with (an embedding is looked up, not
        multiplied; a mixture of experts runs top-k); more where a layer works on the cache too
        (transformers' DeepSeek-V2 re-expands its cached latents with kv_b_proj at every step)."""
        return (self.total_flops - self.attention_flops) // (2 * self.tokens) if self.tokens else 0

    @property
    def cache_bytes(self) -> int:
        """The bytes the KV cache holds (CacheLayer.held)."""
        return sum(layer.held for layer in self.cache)

    @property
    def weight_bytes(self) -> int:
        """The weights at the dtype they were built in (what a forward reads once)."""
        return self.params * ELEMENT_BYTES.get(self.param_dtype, 0)


class TraceNode(namedtuple("TraceNode", "name module children attention")):
    """A TracedModule with its children and its AttentionCall (or None), for folding identical
    layers as `tree` does."""

    __slots__ = ()


# Bytes per element of the dtypes a forward pass produces (torch's names without "torch.").
ELEMENT_BYTES = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


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
    return _default_seq(derive(config))


def _default_seq(arch: Architecture) -> int:
    return min(arch.context_length, DEFAULT_SEQ) if arch.context_length else DEFAULT_SEQ


def _widest(arch: Architecture) -> tuple[int, str]:
    """The most elements a forward makes per token in one tensor besides the scores, and which:
    the logits, the feed-forward's inner activations, or the expert matrices transformers'
    batched_mm experts gather for each token."""
    experts = (
        (arch.experts_per_token or 0)
        * 2
        * (arch.moe_intermediate_size or arch.intermediate_size or 0)
        * (arch.hidden_size or 0)
    )
    return max(
        (arch.vocab_size or 0, "vocab_size"),
        (arch.intermediate_size or 0, "intermediate_size"),
        (arch.hidden_size or 0, "hidden_size"),
        (experts, "experts per token x 2 x expert size x hidden_size"),
    )


def _check_sizes(catalog: Catalog, arch: Architecture, batch: int, seq: int, context: int) -> None:
    """Sizes torch can hold (its sizes are int64), checked before transformers runs. A decoding
    step's cache comes from a prefill of `context` tokens, so that length counts too."""
    heads = arch.num_heads or 1
    length, option = (context + seq, "--context") if context else (seq, "--seq")
    todo = f"choose a shorter {option} or a smaller --batch"
    if batch * heads * length * length > MAX_ELEMENTS:
        raise UsageError(
            catalog.name,
            f"--batch and {option} whose attention scores (batch x {heads} heads x tokens x tokens) fit torch's sizes (at most 2**60 elements)",
            f"{batch} x {heads} x {length} x {length}",
            todo,
        )
    width, what = _widest(arch)
    if batch * length * width > MAX_ELEMENTS:
        raise UsageError(
            catalog.name,
            f"--batch and {option} whose activations (batch x tokens x {what} {width}) fit torch's sizes (at most 2**60 elements)",
            f"{batch} x {length} x {width}",
            todo,
        )


def _cache_layers(cache: Any) -> list[list[Any]]:
    """[kind, [keys shape, dtype], [values shape, dtype], bytes held] per layer of a
    transformers Cache (storages shared by keys and values, or by layers, counted once)."""
    counted: set[int] = set()
    layers = []
    for layer in getattr(cache, "layers", None) or ():
        keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
        if keys is None or values is None:  # a layer that caches nothing (shared KV, or not run)
            continue
        held = 0
        for storage in (keys.untyped_storage(), values.untyped_storage()):
            if storage._cdata not in counted:
                counted.add(storage._cdata)
                held += storage.nbytes()
        layers.append(
            [
                type(layer).__name__,
                [list(keys.shape), _dtype_name(keys.dtype)],
                [list(values.shape), _dtype_name(values.dtype)],
                held,
            ]
        )
    return layers


def _run(model: Any, batch: int, seq: int, context: int) -> dict[str, Any]:
    """One forward on meta input_ids [batch, seq] (after a prefill of `context` tokens when
    decoding): hook records by path, FLOPs by path (FlopCounterMode's module names), its
    total, the attention calls, the KV cache layers and the peak of live activation bytes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .trace_probes import AttentionRecorder, LiveBytes

    cache = None
    if context:
        with torch.no_grad():
            prefill = model(input_ids=torch.zeros((batch, context), dtype=torch.long, device="meta"), use_cache=True)
        cache = getattr(prefill, "past_key_values", None)
        if cache is None:
            raise ValueError(f"{type(model).__name__} returned no KV cache to decode with")
        del prefill

    records: dict[str, dict[str, Any]] = {}

    def hook_for(path: str):
        def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            outputs = list({id(t): t for t in _tensors(output)}.values())
            record = records.get(path)
            if record is None:
                records[path] = {
                    "calls": 1,
                    "inputs": _metas(list(_tensors(args)) + list(_tensors(kwargs))),
                    "outputs": _metas(outputs),
                    "bytes": 0,
                }
                record = records[path]
            else:
                record["calls"] += 1
            record["bytes"] += sum(t.numel() * t.element_size() for t in outputs)

        return hook

    handles = [module.register_forward_hook(hook_for(path), with_kwargs=True) for path, module in model.named_modules()]
    counter = FlopCounterMode(display=False)
    attention = AttentionRecorder(model, counter)
    input_ids = torch.zeros((batch, seq), dtype=torch.long, device="meta")
    kwargs: dict[str, Any] = {"cache": cache} if cache is not None else {}
    existing = [
        *model.parameters(),
        *model.buffers(),
        input_ids,
        *(
            t
            for layer in getattr(cache, "layers", ())
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
            if t is not None
        ),
    ]
    live = LiveBytes(existing, list(model.parameters()))
    try:
        with torch.no_grad(), counter, attention.installed(), live:
            output = model(input_ids=input_ids, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    # FlopCounterMode names modules "RootClass.path" ("Global" holds the total).
    root = type(model).__name__
    flops = {}
    for key, by_op in counter.get_flop_counts().items():
        if key == root or key.startswith(root + "."):
            flops[key[len(root) + 1 :]] = sum(by_op.values())
    cache_out = getattr(output, "past_key_values", None) if isinstance(output, dict) else None
    # The cache is its own total: the peak is of what the forward holds besides it.
    cached = [
        t.untyped_storage()._cdata
        for layer in getattr(cache_out, "layers", None) or ()
        for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
        if t is not None
    ]
    return {
        "records": records,
        "flops": flops,
        "total": counter.get_total_flops(),
        "attention": attention.calls,
        "cache": _cache_layers(cache_out),
        "peak": live.peak(cached),
    }


# The experts implementation transformers ships that runs every token through exactly its
# router's top-k experts with static shapes (a batched matmul of each token's k expert
# matrices): the meta device has no values to route by, so grouped or looped kernels, whose
# shapes depend on the routing, cannot run there; FlopCounterMode counts these matmuls.
EXPERTS_IMPLEMENTATION = "batched_mm"


def _experts(config: Any) -> Experts | None:
    """Top-k and the number of routed experts, from the config fields the MoE families use."""
    for k_field in ("num_experts_per_tok", "moe_topk", "top_k"):
        top_k = getattr(config, k_field, None)
        if isinstance(top_k, int) and top_k > 0:
            break
    else:
        return None
    for n_field in ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"):
        experts = getattr(config, n_field, None)
        if isinstance(experts, int) and experts > 0:
            return Experts(top_k, experts)
    return None


def _trace_model(config_file: str, dtype: str | None, batch: int, seq: int, context: int) -> dict[str, Any]:
    import transformers

    model = skeletons.meta_model(config_file, dtype, experts_implementation=EXPERTS_IMPLEMENTATION).eval()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # deprecation chatter about the default cache
    try:
        run = _run(model, batch, seq, context)
    finally:
        transformers.logging.set_verbosity(verbosity)
    records, flops = run["records"], run["flops"]
    modules = []
    for path, module in model.named_modules():
        record = records.get(path, {"calls": 0, "inputs": (), "outputs": (), "bytes": 0})
        params = sum(p.numel() for p in module.parameters())
        modules.append(
            TracedModule(
                path,
                type(module).__name__,
                params,
                record["calls"],
                record["inputs"],
                record["outputs"],
                flops.get(path, 0),
                record["bytes"],
            )
        )
    experts = (
        _experts(model.config.get_text_config())
        if any("expert" in path.rpartition(".")[2] for path, _ in model.named_modules())
        else None
    )
    return {
        "version": transformers.__version__,
        "model_class": type(model).__name__,
        **_modules_json(tuple(modules)),
        "total": run["total"],
        "params": sum(p.numel() for p in model.parameters()),
        "param_dtype": _dtype_name(next(model.parameters()).dtype),
        "attention": [
            [
                path,
                [list(c["query"][0]), c["query"][1]],
                [list(c["key"][0]), c["key"][1]],
                [list(c["value"][0]), c["value"][1]],
                [list(c["scores"][0]), c["scores"][1]],
                c["flops"],
            ]
            for path, c in run["attention"].items()
        ],
        "cache": run["cache"],
        "peak": run["peak"],
        "experts": list(experts) if experts else None,
    }


def _modules_json(modules: tuple[TracedModule, ...]) -> dict[str, list[Any]]:
    """{"metas": each distinct TensorMeta once, "modules": rows whose inputs and outputs are
    indices into metas}: a 7B's modules pass a few dozen distinct tensors (reading thousands
    back cost a cached trace milliseconds)."""
    index: dict[TensorMeta, int] = {}
    rows = [
        [
            m.path,
            m.class_name,
            m.params,
            m.calls,
            [index.setdefault(t, len(index)) for t in m.inputs],
            [index.setdefault(t, len(index)) for t in m.outputs],
            m.flops,
            m.output_bytes,
        ]
        for m in modules
    ]
    return {"metas": [[list(t.shape), t.dtype] for t in index], "modules": rows}


def _checked(kind: type, value: Any) -> Any:
    """value if it is a `kind` (ints: not bools, not negative); TypeError or ValueError else:
    a cache entry is a file other programs can damage or forge."""
    if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value < 0)):
        raise TypeError(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


def _meta(item: list[Any]) -> TensorMeta:
    shape, dtype = item
    if type(shape) is not list or type(dtype) is not str or not all(type(d) is int and d >= 0 for d in shape):
        raise TypeError(f"expected [shape, dtype], found {type(shape).__name__} and {type(dtype).__name__}")
    return TensorMeta(tuple(shape), dtype)


def _modules_from_json(metas: list[list[Any]], rows: list[list[Any]]) -> tuple[TracedModule, ...]:
    table = tuple(map(_meta, _checked(list, metas)))
    seen: dict[tuple[Any, ...], tuple[TensorMeta, ...]] = {}  # most modules repeat a few index lists

    def tensors(indices: Any) -> tuple[TensorMeta, ...]:
        key = tuple(_checked(list, indices))
        found = seen.get(key)
        if found is None:
            if not all(type(i) is int and 0 <= i < len(table) for i in key):
                raise TypeError("expected indices into metas")
            found = seen[key] = tuple(table[i] for i in key)
        return found

    def module(
        path: Any, cls: Any, params: Any, calls: Any, ins: Any, outs: Any, flops: Any, nbytes: Any
    ) -> TracedModule:
        # Checked inline, not with _checked: a 7B has hundreds of modules.
        if (
            type(path) is not str
            or type(cls) is not str
            or not all(type(n) is int and n >= 0 for n in (params, calls, flops, nbytes))
        ):
            raise TypeError(f"expected a traced module, found {type(path).__name__} {type(cls).__name__}")
        return TracedModule(path, cls, params, calls, tensors(ins), tensors(outs), flops, nbytes)

    return tuple(module(*row) for row in _checked(list, rows))


class _Record(
    namedtuple("_Record", "version model_class modules total params param_dtype attention cache peak experts")
):
    """What a traced forward pass leaves, as read back from its JSON (cached or just made)."""

    __slots__ = ()


def _record(data: dict[str, Any]) -> _Record:
    """The record in data; KeyError, TypeError or ValueError when it is not one we wrote."""
    experts = data["experts"]
    return _Record(
        _checked(str, data["version"]),
        _checked(str, data["model_class"]),
        _modules_from_json(data["metas"], data["modules"]),
        _checked(int, data["total"]),
        _checked(int, data["params"]),
        _checked(str, data["param_dtype"]),
        tuple(
            AttentionCall(_checked(str, path), *map(_meta, (q, k, v, scores)), _checked(int, flops))
            for path, q, k, v, scores, flops in _checked(list, data["attention"])
        ),
        tuple(
            CacheLayer(_checked(str, kind), _meta(keys), _meta(values), _checked(int, held))
            for kind, keys, values, held in _checked(list, data["cache"])
        ),
        _checked(int, data["peak"]),
        None if experts is None else Experts(*(_checked(int, n) for n in _checked(list, experts))),
    )


def _traced(catalog: Catalog, version: str, batch: int, seq: int, context: int) -> _Record:
    """The forward pass's record, from the cache when this config, transformers version,
    batch, length and context were traced before (keyed as skeletons are), else traced and cached."""
    dtype = skeletons.weights_dtype(catalog)
    config_bytes = skeletons.config_bytes_of(catalog)
    key = f"trace {SCHEMA_VERSION} {batch} {seq} {context}\0" + skeletons.cache_key(config_bytes, version, dtype)
    path = skeletons.cache_path(key, "traces")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data["key"] == key:
            return _record(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        pass  # absent, stale or damaged: trace again
    try:
        with announced("trace"):
            data = skeletons.with_config_file(
                catalog, config_bytes, lambda file: _trace_model(file, dtype, batch, seq, context)
            )
    except skeletons.NOT_THE_CONFIGS_FAULT:
        raise
    except Exception as exc:  # transformers fails on configs and on meta-device forwards in many ways
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise AnatomyError(
            catalog.config_file or catalog.name,
            "a config whose forward pass transformers can run on the meta device",
            why,
            "trace runs models transformers builds without remote code",
        ) from exc
    skeletons.write_cached(path, {"key": key, **data})
    return _record(json.loads(json.dumps(data)))  # as a later call reads it back


def _subtree(modules: tuple[TracedModule, ...], node: str, where: str) -> tuple[TracedModule, ...]:
    """The module at `node` and those under it, or the error get_submodule raises for a bad path."""
    paths = {m.path for m in modules}
    if node not in paths:
        # As torch's get_submodule words it: the first missing step, and the module lacking it.
        parent = ""
        for step in node.split("."):
            path = f"{parent}.{step}" if parent else step
            if path not in paths:
                owner = next(m.class_name for m in modules if m.path == parent)
                raise UsageError(
                    where,
                    "--node naming a submodule (a path as named_modules() prints it)",
                    f"{owner} has no attribute `{step}`",
                    "see `llm-anatomy tree` for the paths",
                )
            parent = path
    prefix = node + "."
    return tuple(m for m in modules if m.path == node or m.path.startswith(prefix))


def trace(
    catalog: Catalog, batch: int = 1, seq: int | None = None, context: int | None = None, node: str | None = None
) -> Trace:
    """One forward pass over input_ids [batch, seq] (seq: the config's context or 2048, whichever
    is smaller); with `context`, one decoding step (a new token per sequence) over a KV cache of
    that many tokens. `node`: only that submodule's subtree is kept."""
    config = catalog.require_config()
    version = skeletons.installed_transformers_version()
    if version is None:
        from ..core.extras import require  # importlib.util only then: a cached trace imports neither

        require("transformers", "trace", "for the forward pass")
    # Before transformers sees it, as for the module tree.
    skeletons.refuse_to_build(config, catalog.config_file or (catalog.files[0] if catalog.files else catalog.name))
    arch = derive(config)
    if context is not None and arch.encoder_only:
        raise UsageError(
            catalog.name,
            "--decode on a model that generates with a KV cache",
            f"model_type {config.get('model_type')}, an encoder",
            "trace it without --decode",
        )
    if context is not None:
        seq = 1
    else:
        context = 0
        seq = _default_seq(arch) if seq is None else seq
    _check_sizes(catalog, arch, batch, seq, context)
    record = _traced(catalog, version, batch, seq, context)
    modules = _subtree(record.modules, node, catalog.name) if node else record.modules
    kv, kv_note = kv_cache_of(arch, catalog, [context + seq], [batch])
    return Trace(
        catalog.name,
        record.model_class,
        record.version,
        batch,
        seq,
        context,
        modules,
        record.total,
        record.params,
        record.param_dtype,
        record.attention,
        record.cache,
        record.peak,
        record.experts,
        kv.rows[0] if kv else None,
        kv.dtype if kv else None,
        kv_note,
        node or "",
        not arch.encoder_only,
    )


def nest(modules: tuple[TracedModule, ...], attention: tuple[AttentionCall, ...] = ()) -> TraceNode:
    """The modules (named_modules() order, so parents first) as a tree under the first."""
    children: dict[str, list[str]] = {m.path: [] for m in modules}
    by_path = {m.path: m for m in modules}
    calls = {call.path: call for call in attention}
    for m in modules[1:]:
        children[m.path.rpartition(".")[0]].append(m.path)

    def node(path: str) -> TraceNode:
        return TraceNode(
            path.rpartition(".")[2], by_path[path], tuple(node(c) for c in children[path]), calls.get(path)
        )

    return node(modules[0].path)


def _structure(node: TraceNode) -> tuple:
    """What makes two layers identical here: everything recorded but the path, all the way down."""
    m, call = node.module, node.attention
    return (
        m.class_name,
        m.params,
        m.calls,
        m.inputs,
        m.outputs,
        m.flops,
        m.output_bytes,
        call and call[1:],
        tuple((c.name, _structure(c)) for c in node.children),
    )


def fold_layers(children: tuple[TraceNode, ...]) -> list[Run]:
    return fold(children, _structure)


class LayerCost(namedtuple("LayerCost", "index flops activation_bytes")):
    """One numbered layer's FLOPs and the bytes of the activations produced inside it: what
    its innermost modules output, plus the attention scores (the math kernel materializes them)."""

    __slots__ = ()


def layer_costs(trace: Trace) -> tuple[LayerCost, ...]:
    """Per layer of the model's longest ModuleList of numbered layers; () when it has none."""
    children: dict[str, list[TracedModule]] = {}
    for m in trace.modules:
        parent, _, name = m.path.rpartition(".")
        if name.isdigit():
            children.setdefault(parent, []).append(m)
    if not children:
        return ()
    layers = max(children.values(), key=len)
    parents = {m.path.rpartition(".")[0] for m in trace.modules}
    scores = {call.path: call.scores.nbytes for call in trace.attention}
    costs = []
    for layer in layers:
        prefix = layer.path + "."
        inside = [m for m in trace.modules if m.path.startswith(prefix)]
        leaves = sum(m.output_bytes for m in inside if m.path not in parents)
        attention = sum(n for path, n in scores.items() if path.startswith(prefix))
        costs.append(LayerCost(int(layer.name), layer.flops, leaves + attention))
    return tuple(costs)
