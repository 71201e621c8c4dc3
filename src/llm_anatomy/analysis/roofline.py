"""Roofline lower bounds for a traced forward pass on a device: no kernel can finish before
its FLOPs at the device's peak, nor before its bytes at the device's bandwidth, so the larger
of the two bounds the time from below (real kernels reach neither roof)."""

from __future__ import annotations

from collections import namedtuple

from .devices import Device
from .trace import ELEMENT_BYTES, AttentionCall, Trace, TracedModule


class Bound(namedtuple("Bound", "label flops bytes seconds_compute seconds_memory")):
    """One bound: FLOPs over the peak, bytes over the bandwidth; the time is at least the larger."""

    __slots__ = ()

    @property
    def seconds(self) -> float:
        return max(self.seconds_compute, self.seconds_memory)

    @property
    def limit(self) -> str:
        return "compute" if self.seconds_compute >= self.seconds_memory else "memory"


class Intensity(namedtuple("Intensity", "path flops bytes")):
    """A module's (or an attention core's, path + "/attention") FLOPs per byte it moves."""

    __slots__ = ()

    @property
    def value(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


class Roofline(namedtuple("Roofline", "device prefill decode context intensities")):
    """prefill: Bound for this prefill (None when decoding); decode: Bound for one decoding step
    (batch new tokens) over `context` cached tokens: measured when the trace decoded, else with
    the prefill's FLOPs per token and its KV cache, None for an encoder (it never decodes);
    intensities: by module path."""

    __slots__ = ()


def module_bytes(m: TracedModule, weight_element: int) -> int:
    """Its weights, its inputs (first call) and what it outputs: what it must move at least."""
    return m.params * weight_element + sum(t.nbytes for t in m.inputs) + m.output_bytes


def core_bytes(call: AttentionCall) -> int:
    """q, k and v in, the output out (q's shape with v's head size); a fused kernel keeps the scores on chip."""
    q = call.query.nbytes
    out = q // call.query.shape[-1] * call.value.shape[-1] if call.query.shape[-1] else 0
    return q + call.key.nbytes + call.value.nbytes + out


def _bound(label: str, flops: int, nbytes: int, device: Device) -> Bound:
    return Bound(label, flops, nbytes, flops / device.peak_flops, nbytes / device.bandwidth)


def roofline(trace: Trace, device: Device) -> Roofline:
    element = ELEMENT_BYTES.get(trace.param_dtype, 0)
    intensities = [Intensity(m.path, m.flops, module_bytes(m, element)) for m in trace.modules if m.flops]
    paths = {m.path for m in trace.modules}
    intensities += [
        Intensity(call.path + "/attention", call.flops, core_bytes(call))
        for call in trace.attention
        if call.path in paths
    ]
    # The weights are read once per forward; the KV cache is written by a prefill, read (and
    # extended) by a decoding step.
    if trace.decode:
        prefill = None
        decode = _bound("decoding step", trace.total_flops, trace.weight_bytes + trace.cache_bytes, device)
        context = trace.context
    else:
        prefill = _bound("prefill", trace.total_flops, trace.weight_bytes + trace.cache_bytes, device)
        per_token = trace.total_flops // trace.tokens if trace.tokens else 0
        # The next step reads the cache as decoding holds it (`summary`'s row): a prefill's
        # sliding-window layers still hold all its tokens, of which that step keeps the window.
        cache = trace.kv_cache.nbytes if trace.kv_cache is not None else trace.cache_bytes
        decode = (
            _bound("decoding step", per_token * trace.batch, trace.weight_bytes + cache, device)
            if trace.generates
            else None
        )
        context = trace.seq
    return Roofline(device, prefill, decode, context, {i.path: i for i in intensities})
