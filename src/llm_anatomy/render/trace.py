"""Render a forward-pass trace: the module tree folded like `tree` with each module's input
and output shapes, FLOPs and activation bytes, then the totals; or JSON (unfolded)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: roofline is imported with --device
    from typing import Any

    from ..analysis.devices import Device
    from ..analysis.roofline import Bound, Roofline

from ..analysis.trace import AttentionCall, CacheLayer, Trace, TraceNode, TracedModule, fold_layers, nest
from .text import human_bytes, printed, shape_text, table, thousands, to_json
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


def si(n: float, unit: str) -> str:
    """Decimal prefixes, as bandwidths and datasheets quote them: 3.35e12, 'B/s' -> '3.35 TB/s'."""
    for threshold, prefix in FLOP_UNITS:
        if n >= threshold:
            return f"{n / threshold:.2f} {prefix}{unit}"
    return f"{n:g} {unit}"


def _first_shape(metas: tuple) -> str:
    """The first tensor's shape, '+N' when more tensors go with it (masks, position embeddings)."""
    if not metas:
        return "-"
    more = f" +{len(metas) - 1}" if len(metas) > 1 else ""
    return shape_text(metas[0].shape) + more


def _cells(m: TracedModule, roof: Roofline | None = None) -> tuple[str, ...]:
    if not m.calls:
        return ("(not called)", "", "", "", "")
    if roof is not None:
        return _cells(m) + (_intensity(roof, m.path),)
    dtype = m.outputs[0].dtype if m.outputs else "-"
    return (
        _first_shape(m.inputs),
        _first_shape(m.outputs),
        dtype,
        flops_text(m.flops),
        human_bytes(m.output_bytes) if m.output_bytes else "-",
    )


def _folded_summary(node: TraceNode) -> str:
    runs = fold_layers(node.children)
    if not node.children or not all(c.name.isdigit() for c in node.children) or len(runs) == len(node.children):
        return ""
    classes = {c.module.class_name for c in node.children}
    kind = f" x {next(iter(classes))}" if len(classes) == 1 else " blocks"
    return f"  {len(node.children)}{kind}"


def _intensity(roof: Roofline, path: str) -> str:
    found = roof.intensities.get(path)
    return f"{found.value:,.1f}" if found else ""


def _attention_rows(call: AttentionCall, indent: str, roof: Roofline | None) -> list[tuple[str, ...]]:
    """Inside the attention core (not modules, hence the parentheses): q, k and v after the head
    split, then the scores with the core's FLOPs and the bytes the scores take."""
    q, k, v, scores = call.query, call.key, call.value, call.scores
    kv_heads = "KV heads" if k.shape[1:2] != q.shape[1:2] else "heads"
    items = [
        (f"(q: {q.shape[1]} heads)", q, "", ""),
        (f"(k: {k.shape[1]} {kv_heads})", k, "", ""),
        (f"(v: {v.shape[1]} {kv_heads})", v, "", ""),
        ("(scores = q k^T; softmax; x v)", scores, flops_text(call.flops), human_bytes(scores.nbytes)),
    ]
    rows = []
    for i, (label, meta, flops, nbytes) in enumerate(items):
        last = i == len(items) - 1
        row = (
            indent + (LAST_BRANCH if last else BRANCH) + label,
            "",
            shape_text(meta.shape),
            meta.dtype,
            flops,
            nbytes,
        )
        rows.append(row + ((_intensity(roof, call.path + "/attention") if last else "",) if roof else ()))
    return rows


def _rows(node: TraceNode, indent: str, depth: int | None, roof: Roofline | None = None) -> list[tuple[str, ...]]:
    if depth == 0:
        return []
    runs = fold_layers(node.children)
    rows = []
    for i, run in enumerate(runs):
        last = i == len(runs) - 1 and node.attention is None
        child = run.first
        each = " (each)" if run.count > 1 else ""
        label = f"{run.label}: {child.module.class_name}{each}{_folded_summary(child)}"
        below = None if depth is None else depth - 1
        rows.append(
            (indent + (LAST_BRANCH if last else BRANCH) + label + _hidden_run_suffix(child, below),)
            + _cells(_shown_module(child, below), roof)
        )
        rows += _rows(child, indent + (SPACE if last else PIPE), below, roof)
    if node.attention is not None:
        rows += _attention_rows(node.attention, indent, roof)
    return rows


def _hidden_run(node: TraceNode, depth: int | None) -> TraceNode | None:
    """The layer that stands for a container --depth hides: a ModuleList is never called
    itself, so its row shows its layers' (each) when they all fold into one run."""
    if depth != 0 or node.module.calls or not node.children:
        return None
    runs = fold_layers(node.children)
    return runs[0].first if len(runs) == 1 and runs[0].first.module.calls else None


def _hidden_run_suffix(node: TraceNode, depth: int | None) -> str:
    return " (each)" if _hidden_run(node, depth) is not None and len(node.children) > 1 else ""


def _shown_module(node: TraceNode, depth: int | None) -> TracedModule:
    layer = _hidden_run(node, depth)
    return node.module if layer is None else layer.module


def _ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else "-"


ATTENTION_TERM = "{n} {layers} x 2 x batch {b} x heads {h} x queries {nq} x keys {nk} x (head_dim {dk} + {dv})"
CACHE_GROUP = "{n} x {kind} keys {keys} values {values} {dtype}{held}"
CACHE_HELD = " (views of the last {last} of {tokens} tokens held)"


def attention_formula(calls: tuple[AttentionCall, ...], term: str = ATTENTION_TERM) -> str:
    """The attention core's FLOPs as the shapes give them: q k^T and scores x v are each
    2 x batch x heads x queries x keys x head_dim, summed over the layers with the same shapes.
    term: the words of one group (the report's other languages)."""
    groups: dict[tuple[int, ...], int] = {}
    for call in calls:
        b, h, nq, dk = call.query.shape
        shape = (b, h, nq, call.key.shape[-2], dk, call.value.shape[-1])
        groups[shape] = groups.get(shape, 0) + 1
    terms = [
        term.format(n=n, layers="layer" if n == 1 else "layers", b=b, h=h, nq=nq, nk=nk, dk=dk, dv=dv)
        for (b, h, nq, nk, dk, dv), n in groups.items()
    ]
    value = sum(n * 2 * b * h * nq * nk * (dk + dv) for (b, h, nq, nk, dk, dv), n in groups.items())
    return f"{' + '.join(terms)} = {thousands(value)}"


def cache_text(trace: Trace, group: str = CACHE_GROUP, held: str = CACHE_HELD) -> str:
    """The cache's layers grouped by their shapes: '2 x DynamicLayer keys [1, 2, 8, 16] values
    [1, 2, 8, 16] float32', and where a layer's tensors are views of a larger storage, its tokens
    ('(views of the last 3 of 4 tokens held)'); group and held: the words (the report's other languages)."""
    groups: dict[tuple, int] = {}
    for layer in trace.cache:
        groups[layer] = groups.get(layer, 0) + 1
    return ", ".join(
        group.format(
            n=n,
            kind=layer.kind,
            keys=shape_text(layer.keys.shape),
            values=shape_text(layer.values.shape),
            dtype=layer.keys.dtype,
            held=_held_text(layer, held),
        )
        for layer, n in groups.items()
    )


def _held_text(layer: CacheLayer, held: str) -> str:
    if layer.held <= layer.nbytes:
        return ""
    return held.format(last=layer.keys.shape[-2], tokens=layer.held_tokens)


def totals(trace: Trace) -> list[str]:
    """The totals under the table, each with the numbers it is made of."""
    tokens = f"{trace.batch} x {trace.seq} tokens"
    new = f"{trace.batch} new token{'s' if trace.batch != 1 else ''}"
    counted = "as torch's FlopCounterMode counts them (matrix products only: norms, activations and softmax count 0)"
    attention = trace.attention_flops
    weights = trace.total_flops - attention
    if trace.decode:
        lines = [
            f"decoding step: {thousands(trace.total_flops)} FLOPs ({flops_text(trace.total_flops)}) for {new} (1 per sequence) over a KV cache of {trace.context} tokens, {counted}"
        ]
    else:
        lines = [
            f"prefill: {thousands(trace.total_flops)} FLOPs ({flops_text(trace.total_flops)}) for {tokens}, {counted}"
        ]
    lines.append(
        f"  matrix products with the weights: {thousands(weights)} = 2 x {thousands(trace.weight_macs_per_token)} multiply-adds per token x {thousands(trace.tokens)} token{'s' if trace.tokens != 1 else ''}; the 2 x parameters rule: 2 x {thousands(trace.params)} x {thousands(trace.tokens)} token{'s' if trace.tokens != 1 else ''} = {thousands(trace.rule_flops)} ({flops_text(trace.rule_flops)}); weights / rule = {_ratio(weights, trace.rule_flops)}"
    )
    if trace.attention:
        grows = "linearly with the context" if trace.decode else "with the square of the length"
        lines.append(
            f"  attention (q k^T and scores x v, counted {thousands(attention)}): {attention_formula(trace.attention)}; it grows {grows}"
        )
    per_token = trace.total_flops // trace.tokens if trace.tokens else 0
    keys = trace.context + trace.seq if trace.decode else trace.seq
    how = (
        "this step's FLOPs / batch"
        if trace.decode
        else f"prefill / tokens, each query counted against all {trace.seq} keys as the meta device's attention does; --decode --context {trace.seq} measures it"
    )
    if trace.generates:
        lines.append(
            f"FLOPs per generated token at {keys} tokens of context: {thousands(per_token)} ({flops_text(per_token)}; {how})"
        )
    else:  # an encoder reads its input in one pass: there is no decoding step to point to
        lines.append(
            f"FLOPs per token of an input of {keys} tokens: {thousands(per_token)} ({flops_text(per_token)}; prefill / tokens, each query counted against all {keys} keys; an encoder generates no tokens)"
        )
    if trace.experts is not None:
        lines.append(
            f"experts: each token runs its router's top {trace.experts.top_k} of {trace.experts.experts} experts, counted as run (transformers' batched_mm experts); the meta device has no values to route by, so these are the expected FLOPs: exact per token, whichever experts are picked"
        )
    shape = (
        f"batch {trace.batch}, 1 new token per sequence over {trace.context} cached"
        if trace.decode
        else f"batch {trace.batch}, {trace.seq} tokens"
    )
    lines.append(
        f"peak activation memory: {thousands(trace.peak_bytes)} bytes ({human_bytes(trace.peak_bytes)}) held at once by the tensors this forward creates at {shape} (weights and the KV cache not included; attention as the math kernel runs it, scores materialized)"
    )
    if trace.cache:
        lines.append(
            f"KV cache after this forward: {thousands(trace.cache_bytes)} bytes ({human_bytes(trace.cache_bytes)}) held by {cache_text(trace)}"
        )
    if trace.kv_cache is not None:
        lines.append(
            f"  `summary` computes {thousands(trace.kv_cache.nbytes)} bytes ({human_bytes(trace.kv_cache.nbytes)}, {trace.kv_dtype}) for {trace.batch} x {trace.kv_cache.context} tokens{_prefill_held_text(trace)}"
        )
    elif trace.kv_note:
        lines.append(f"KV cache: none ({trace.kv_note})")
    return lines


def _prefill_held_text(trace: Trace) -> str:
    """Why a prefill's cache can hold more than `summary` counts: sliding-window layers."""
    beyond = trace.kv_cache is not None and trace.cache_bytes > trace.kv_cache.nbytes
    if trace.decode or not beyond or not any(layer.held > layer.nbytes for layer in trace.cache):
        return ""
    return ", what decoding holds (a sliding-window layer: the window); until the first decoding step, these layers still hold the prefill's tokens"


def heading(trace: Trace) -> str:
    where = f"(meta device, transformers {trace.transformers_version})"
    node = f"{trace.node} of " if trace.node else ""
    if trace.decode:
        return f"{node}{trace.model_class} decoding step: input_ids [{trace.batch}, 1] over a KV cache of {trace.context} tokens {where}"
    return f"{node}{trace.model_class} forward on input_ids [{trace.batch}, {trace.seq}] {where}"


def seconds_text(seconds: float) -> str:
    """4.04e-3 -> '4.04 ms'."""
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _bound_line(bound: Bound, device: Device, parts: str, what: str) -> str:
    return (
        f"  {bound.label} >= {seconds_text(bound.seconds)} ({bound.limit}-bound{what}): the larger of "
        f"{thousands(bound.flops)} FLOPs / {si(device.peak_flops, 'FLOP/s')} = {seconds_text(bound.seconds_compute)} and "
        f"{parts} = {si(bound.bytes, 'B')} / {si(device.bandwidth, 'B/s')} = {seconds_text(bound.seconds_memory)}"
    )


def roofline_lines(trace: Trace, roof: Roofline) -> list[str]:
    device = roof.device

    def moved(bound: Bound) -> str:
        return f"(weights {si(trace.weight_bytes, 'B')} + KV cache {si(bound.bytes - trace.weight_bytes, 'B')})"

    lines = [
        f"roofline on {device.name}: {si(device.peak_flops, 'FLOP/s')} dense {device.precision}, {si(device.bandwidth, 'B/s')} ({device.source}); "
        f"ridge {device.ridge:,.1f} FLOP/byte: a module whose FLOP/B (FLOPs / (weight + input + output bytes)) is below it is memory-bound",
        "  lower bounds, not predictions: no kernel beats either roof, real ones reach neither",
    ]
    if roof.prefill is not None:
        lines.append(_bound_line(roof.prefill, device, moved(roof.prefill), ""))
    how = (
        ""
        if trace.decode
        else f", estimated from the prefill's FLOPs per token; --decode --context {roof.context} measures it"
    )
    tokens = f"{trace.batch} new token{'s' if trace.batch != 1 else ''}, 1 per sequence"
    if roof.decode is not None:
        lines.append(
            _bound_line(roof.decode, device, moved(roof.decode), f"; {tokens}, over {roof.context} cached{how}")
        )
    return lines


def text(trace: Trace, depth: int | None = None, roof: Roofline | None = None) -> str:
    root = nest(trace.modules, trace.attention)
    label = f"{root.name}: {root.module.class_name}" if trace.node else root.module.class_name
    rows = [(f"{label}{_folded_summary(root)}",) + _cells(root.module, roof)]
    rows += _rows(root, "", depth, roof)
    lines = [heading(trace)]
    header = HEADER + ("FLOP/B",) if roof else HEADER
    lines += table(header, [row + ("",) * (len(header) - len(row)) for row in rows], right=(4, 5, 6))
    return "\n".join(lines + totals(trace) + (roofline_lines(trace, roof) if roof else [])) + "\n"


def _meta_json(metas: tuple) -> list[dict[str, Any]]:
    return [{"shape": list(t.shape), "dtype": t.dtype} for t in metas]


def _bound_json(bound: Bound | None) -> dict[str, Any] | None:
    if bound is None:
        return None
    return {
        "flops": bound.flops,
        "bytes": bound.bytes,
        "seconds_compute": bound.seconds_compute,
        "seconds_memory": bound.seconds_memory,
        "seconds": bound.seconds,
        "limit": bound.limit,
    }


def roofline_json(roof: Roofline) -> dict[str, Any]:
    d = roof.device
    return {
        "device": {
            "name": d.name,
            "peak_flops": d.peak_flops,
            "bandwidth": d.bandwidth,
            "precision": d.precision,
            "source": d.source,
        },
        "prefill": _bound_json(roof.prefill),
        "decode": _bound_json(roof.decode),
        "decode_context": roof.context,
        "intensity": {
            path: {"flops": i.flops, "bytes": i.bytes, "flops_per_byte": i.value}
            for path, i in roof.intensities.items()
        },
    }


def json_text(trace: Trace, roof: Roofline | None = None) -> str:
    """Unfolded: every module with its path, in module order."""
    kv = trace.kv_cache
    subtree = {m.path for m in trace.modules}
    return (
        to_json(
            {
                "model": trace.model,
                "model_class": trace.model_class,
                "transformers_version": trace.transformers_version,
                "mode": "decode" if trace.decode else "prefill",
                "batch": trace.batch,
                "seq": trace.seq,
                "context": trace.context,
                "node": trace.node,
                "total_flops": trace.total_flops,
                "attention_flops": trace.attention_flops,
                "params": trace.params,
                "rule_flops": trace.rule_flops,
                "weight_macs_per_token": trace.weight_macs_per_token,
                "flops_per_token": trace.total_flops // trace.tokens if trace.tokens else 0,
                "peak_activation_bytes": trace.peak_bytes,
                "experts": None
                if trace.experts is None
                else {"top_k": trace.experts.top_k, "experts": trace.experts.experts},
                "kv_cache": None
                if kv is None
                else {"bytes": kv.nbytes, "dtype": trace.kv_dtype, "context": kv.context, "batch": kv.batch},
                "kv_cache_note": trace.kv_note,
                "weight_bytes": trace.weight_bytes,
                "roofline": roofline_json(roof) if roof else None,
                "cache_layers": [
                    {
                        "kind": layer.kind,
                        "keys": _meta_json((layer.keys,))[0],
                        "values": _meta_json((layer.values,))[0],
                        "bytes": layer.nbytes,
                        "held_bytes": layer.held,
                    }
                    for layer in trace.cache
                ],
                "attention": [
                    {
                        "path": call.path,
                        "query": _meta_json((call.query,))[0],
                        "key": _meta_json((call.key,))[0],
                        "value": _meta_json((call.value,))[0],
                        "scores": _meta_json((call.scores,))[0],
                        "flops": call.flops,
                    }
                    for call in trace.attention
                    if call.path in subtree
                ],
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
            }
        )
        + "\n"
    )


def forward_section(forward: Trace, words: dict) -> str:
    """The forward pass on the meta device: FLOPs and activation bytes per layer, then the totals with how each is made."""
    from ..analysis.trace import layer_costs
    from .html import element, esc, section
    from .html import table as html_table
    from .svg import Series, column_chart

    note = words["forward_note"].format(
        batch=forward.batch, seq=forward.seq, model_class=forward.model_class, version=forward.transformers_version
    )
    parts = [element("p", esc(note), class_="note")]
    costs = layer_costs(forward)
    if costs:
        categories = [str(c.index) for c in costs]
        for title, axis, values, text in (
            (
                words["forward_flops_chart"],
                words["flops_axis"],
                [c.flops for c in costs],
                lambda v: flops_text(int(v)) if v else "0",
            ),
            (
                words["forward_bytes_chart"],
                words["bytes_axis"],
                [c.activation_bytes for c in costs],
                lambda v: human_bytes(v) if v else "0",
            ),
        ):
            chart = column_chart(
                categories, [Series(title, tuple(float(v) for v in values))], text, words["layer_axis"], axis, title
            )
            parts += [element("h3", esc(title)), element("div", chart, class_="figure")]
    weights = forward.total_flops - forward.attention_flops
    per_token = forward.total_flops // forward.tokens if forward.tokens else 0
    rows = [
        (
            words["prefill_flops"],
            f"{thousands(forward.total_flops)} ({flops_text(forward.total_flops)})",
            words["prefill_how"].format(batch=forward.batch, seq=forward.seq),
        ),
        (
            words["weights_flops"],
            thousands(weights),
            f"{words['rule_flops']}: 2 x {thousands(forward.params)} x {thousands(forward.tokens)} = {thousands(forward.rule_flops)}",
        ),
        (
            words["attention_flops"],
            thousands(forward.attention_flops),
            attention_formula(forward.attention, words.get("attention_term", ATTENTION_TERM))
            if forward.attention
            else "-",
        ),
        # An encoder generates nothing: its FLOPs are per token of the input.
        (
            words["per_token_flops" if forward.generates else "per_input_token_flops"],
            f"{thousands(per_token)} ({flops_text(per_token)})",
            words["per_token_how"].format(
                total=thousands(forward.total_flops), tokens=thousands(forward.tokens), seq=forward.seq
            ),
        ),
        (
            words["peak_activation"],
            f"{thousands(forward.peak_bytes)} ({human_bytes(forward.peak_bytes)})",
            words["peak_how"],
        ),
    ]
    if forward.cache:
        rows.append(
            (
                words["kv_cache_forward"],
                f"{thousands(forward.cache_bytes)} ({human_bytes(forward.cache_bytes)})",
                cache_text(forward, words.get("cache_group", CACHE_GROUP), words.get("cache_held", CACHE_HELD)),
            )
        )
    parts.append(
        html_table(
            (words["forward"], words["forward_total"], words["forward_formula"]),
            [tuple(esc(c) for c in row) for row in rows],
            numeric=(1,),
        )
    )
    if forward.experts is not None:
        parts.append(
            element(
                "p",
                esc(words["experts_counted"].format(top_k=forward.experts.top_k, experts=forward.experts.experts)),
                class_="note",
            )
        )
    return section("forward", words["forward"], "".join(parts))


class NotebookTrace(Trace):
    """The Trace Model.trace() returns: print() shows what `llm-anatomy trace` prints, its repr
    is one line, and Jupyter shows the report's charts (FLOPs and activation bytes per layer),
    its totals table, and the module table as text."""

    __slots__ = ()

    def __str__(self) -> str:
        return printed(text(self))

    def __repr__(self) -> str:
        node = f" {self.node}" if self.node else ""
        step = f" decode over {self.context}" if self.decode else ""
        return f"<Trace {self.model_class}{node} [{self.batch}, {self.seq}]{step}: {flops_text(self.total_flops)}FLOPs>"

    def _repr_html_(self) -> str:
        from .html import notebook, pre
        from .wording import labels

        return notebook(forward_section(self, labels()["en"]) + pre(text(self)))
