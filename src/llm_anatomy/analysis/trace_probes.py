"""Instruments for the meta-device forward pass of `trace`: what happens inside attention
(q, k and v after the head split, the scores, the FLOPs of the attention core) and the peak of
live activation bytes. Imported only once torch and transformers are."""

from __future__ import annotations

import sys
import weakref
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class AttentionRecorder:
    """Wraps the attention functions transformers dispatches to (the AttentionInterface's and
    each modeling module's own eager_attention_forward), so every call records, by the path of
    the module that called it: q, k, v as passed (after the head split, RoPE and the cache
    update), the scores' shape q k^T ([batch, query heads, queries, keys]: the tensor eager
    attention materializes), and the FLOPs FlopCounterMode counted inside the call."""

    def __init__(self, model: Any, counter: Any) -> None:
        self.paths = {id(module): path for path, module in model.named_modules()}
        self.counter = counter
        self.calls: dict[str, dict[str, Any]] = {}
        self._inside = False
        self._model = model

    def _wrap(self, function: Callable) -> Callable:
        def recorded(module: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            if self._inside:  # an attention function calling another: record the outer call
                return function(module, query, key, value, *args, **kwargs)
            self._inside = True
            before = self.counter.get_total_flops()
            try:
                result = function(module, query, key, value, *args, **kwargs)
            finally:
                self._inside = False
            path = self.paths.get(id(module))
            if path is not None and path not in self.calls:
                dtype = str(query.dtype).removeprefix("torch.")
                scores = (*query.shape[:-1], key.shape[-2])
                self.calls[path] = {
                    "query": (tuple(query.shape), dtype),
                    "key": (tuple(key.shape), str(key.dtype).removeprefix("torch.")),
                    "value": (tuple(value.shape), str(value.dtype).removeprefix("torch.")),
                    "scores": (scores, dtype),
                    "flops": self.counter.get_total_flops() - before,
                }
            return result

        recorded.__wrapped__ = function
        return recorded

    @contextmanager
    def installed(self) -> Iterator[None]:
        from transformers.modeling_utils import AttentionInterface

        patched: list[tuple[Any, str, Any]] = []
        mapping = AttentionInterface._global_mapping
        for name, function in list(mapping.items()):
            patched.append((mapping, name, function))
        modules = {sys.modules.get(type(m).__module__) for m in self._model.modules()}
        for module in modules:
            function = getattr(module, "eager_attention_forward", None)
            if callable(function):
                patched.append((module, "eager_attention_forward", function))
        try:
            for owner, name, function in patched:
                if isinstance(owner, dict):
                    owner[name] = self._wrap(function)
                else:
                    setattr(owner, name, self._wrap(function))
            yield
        finally:
            for owner, name, function in patched:
                if isinstance(owner, dict):
                    owner[name] = function
                else:
                    setattr(owner, name, function)


class LiveBytes(TorchDispatchMode):
    """Bytes held by tensors the forward creates, each storage counted once (views share it)
    from the op that makes it until its last tensor is freed: `events` in order, `peak()` the
    most held at once. Tensors that existed before (weights, buffers, the input, a prefilled KV
    cache) are not counted, nor gathers of weight rows (the batched_mm experts gather each
    token's expert matrices, which a real MoE kernel reads in place)."""

    def __init__(self, existing: list[Any], weights: list[Any]) -> None:
        super().__init__()
        self.existing = {t.untyped_storage()._cdata for t in existing}
        self.weights = {t.untyped_storage()._cdata for t in weights}
        self.live = 0
        # (allocation number, bytes gained or freed): numbered because a freed storage's address
        # (its _cdata) is soon another's
        self.events: list[tuple[int, int]] = []
        self._tensors: dict[int, int] = {}  # live storage -> how many live tensors use it
        self._sizes: dict[int, tuple[int, int]] = {}  # live storage -> (allocation number, bytes)
        self._seen: set[int] = set()

    def _release(self, tensor_id: int, storage: int) -> None:
        self._seen.discard(tensor_id)
        self._tensors[storage] -= 1
        if not self._tensors[storage]:
            del self._tensors[storage]
            number, size = self._sizes.pop(storage)
            self.live -= size
            self.events.append((number, -size))

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        gather_of_weights = func is torch.ops.aten.index.Tensor and args[0].untyped_storage()._cdata in self.weights
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor) or id(tensor) in self._seen:
                continue
            storage = tensor.untyped_storage()._cdata
            if storage in self.existing:
                continue
            if storage not in self._tensors:
                self._tensors[storage] = 0
                size = 0 if gather_of_weights else tensor.untyped_storage().nbytes()
                self._sizes[storage] = (len(self.events), size)
                self.live += size
                self.events.append((len(self.events), size))
            self._tensors[storage] += 1
            self._seen.add(id(tensor))
            weakref.finalize(tensor, self._release, id(tensor), storage)
        return out

    def peak(self, leaving_out: Any = ()) -> int:
        """The most bytes held at once, the live storages in leaving_out (the KV cache) not counted."""
        skip = {self._sizes[storage][0] for storage in leaving_out if storage in self._sizes}
        live = peak = 0
        for number, delta in self.events:
            if number not in skip:
                live += delta
                peak = max(peak, live)
        return peak
