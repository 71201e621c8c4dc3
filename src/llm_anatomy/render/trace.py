"""Render a forward-pass trace: the module tree folded like `tree` with each module's input
and output shapes, FLOPs and activation bytes, then the totals; or JSON (unfolded)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ..analysis.trace import Trace, TraceNode, TracedModule, fold_layers, nest
from .text import human_bytes, shape_text, table, thousands, to_json
from .tree import BRANCH, LAST_BRANCH, PIPE, SPACE

HEADER = ("module", "input", "output", "dtype", "FLOPs", "output bytes")
FLOP_UNITS = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def flops_text(n: int) -> str:
    """Decimal, as FLOPs are quoted: 1700001742848 -> '1.70 T'; '-' for none."""
    if not n:
        return "-"
    for threshold, prefix in FLOP_UNITS:
        if n >= threshold:
            return f"{n / threshold:.2f} {prefix}"
    return str(n)


def _first_shape(metas: tuple) -> str:
    """The first tensor's shape, '+N' when more tensors go with it (masks, position embeddings)."""
    if not metas:
        return "-"
    more = f" +{len(metas) - 1}" if len(metas) > 1 else ""
    return shape_text(metas[0].shape) + more


def _cells(m: TracedModule) -> tuple[str, str, str, str, str]:
    if not m.calls:
        return ("(not called)", "", "", "", "")
    dtype = m.outputs[0].dtype if m.outputs else "-"
    return (_first_shape(m.inputs), _first_shape(m.outputs), dtype, flops_text(m.flops), human_bytes(m.output_bytes) if m.output_bytes else "-")


def _folded_summary(node: TraceNode) -> str:
    runs = fold_layers(node.children)
    if not node.children or not all(c.name.isdigit() for c in node.children) or len(runs) == len(node.children):
        return ""
    classes = {c.module.class_name for c in node.children}
    kind = f" x {next(iter(classes))}" if len(classes) == 1 else " blocks"
    return f"  {len(node.children)}{kind}"


def _rows(node: TraceNode, indent: str, depth: int | None) -> list[tuple[str, ...]]:
    if depth == 0:
        return []
    runs = fold_layers(node.children)
    rows = []
    for i, run in enumerate(runs):
        last = i == len(runs) - 1
        child = run.first
        each = " (each)" if run.count > 1 else ""
        label = f"{run.label}: {child.module.class_name}{each}{_folded_summary(child)}"
        rows.append((indent + (LAST_BRANCH if last else BRANCH) + label,) + _cells(child.module))
        rows += _rows(child, indent + (SPACE if last else PIPE), None if depth is None else depth - 1)
    return rows


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


def totals(trace: Trace) -> list[str]:
    """The totals under the table, each with the numbers it is made of."""
    tokens = f"{trace.batch} x {trace.seq} tokens"
    lines = [
        f"prefill: {thousands(trace.total_flops)} FLOPs ({flops_text(trace.total_flops)}) for {tokens}, as torch's FlopCounterMode counts them (matrix products only: norms, activations and softmax count 0)",
        f"2 x parameters rule: 2 x {thousands(trace.params)} x {thousands(trace.tokens)} tokens = {thousands(trace.rule_flops)} ({flops_text(trace.rule_flops)}); prefill / rule = {_ratio(trace.total_flops, trace.rule_flops)}",
    ]
    if trace.kv_cache is not None:
        lines.append(f"KV cache after the prefill: {thousands(trace.kv_cache.nbytes)} bytes ({human_bytes(trace.kv_cache.nbytes)}, {trace.kv_dtype}) for {tokens}, as `summary` computes it")
    elif trace.kv_note:
        lines.append(f"KV cache: none ({trace.kv_note})")
    return lines


def text(trace: Trace, depth: int | None = None) -> str:
    root = nest(trace.modules)
    rows = [(f"{root.module.class_name}{_folded_summary(root)}",) + _cells(root.module)]
    rows += _rows(root, "", depth)
    lines = [f"{trace.model_class} forward on input_ids [{trace.batch}, {trace.seq}] (meta device, transformers {trace.transformers_version})"]
    lines += table(HEADER, rows, right=(4, 5))
    return "\n".join(lines + totals(trace)) + "\n"


def _meta_json(metas: tuple) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": t.dtype} for t in metas]


def json_text(trace: Trace) -> str:
    """Unfolded: every module with its path, in module order."""
    kv = trace.kv_cache
    return to_json({
        "model": trace.model,
        "model_class": trace.model_class,
        "transformers_version": trace.transformers_version,
        "batch": trace.batch,
        "seq": trace.seq,
        "total_flops": trace.total_flops,
        "params": trace.params,
        "rule_flops": trace.rule_flops,
        "kv_cache": None if kv is None else {"bytes": kv.nbytes, "dtype": trace.kv_dtype, "context": kv.context, "batch": kv.batch},
        "kv_cache_note": trace.kv_note,
        "modules": [
            {
                "path": m.path,
                "class": m.class_name,
                "params": m.params,
                "calls": m.calls,
                "inputs": _meta_json(m.inputs),
                "outputs": _meta_json(m.outputs),
                "flops": m.flops,
                "output_bytes": m.output_bytes,
            }
            for m in trace.modules
        ],
    }) + "\n"
