"""Render an Adapter (analysis.adapter): what a LoRA adapter changes in its base model, as text
(the section `params` adds, `summary`'s page) and JSON."""

from __future__ import annotations

from ..analysis.adapter import Adapter
from ..core.text import escape
from .text import counted, human_bytes, shape_text, table, thousands, to_json


def _number(value: float | None) -> str:
    """alpha and scaling as Python prints them, without a needless .0: 16, 0.5, 2.828; "-" for
    the alpha an mlx-lm adapter does not have."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def modules_table(adapter: Adapter) -> list[str]:
    rows = [
        (
            m.name,
            m.kind + (" + DoRA" if m.dora else ""),
            str(m.rank),
            _number(m.alpha),
            _number(m.scaling),
            str(m.in_features),
            str(m.out_features),
            thousands(m.params),
        )
        for m in adapter.modules
    ]
    return table(("module", "kind", "rank", "alpha", "scaling", "in", "out", "params"), rows, right=(2, 3, 4, 5, 6, 7))


def saved_table(adapter: Adapter) -> list[str]:
    return table(
        ("weight", "shape", "params"),
        [(t.name, shape_text(t.shape), thousands(t.numel)) for t in adapter.saved],
        right=(2,),
    )


def peft_line(adapter: Adapter, base_params: int) -> str:
    """PEFT's print_trainable_parameters(): all params are the base's plus the adapter's trained ones."""
    total = base_params + adapter.trainable
    return f"trainable params: {adapter.trainable:,} || all params: {total:,} || trainable%: {100 * adapter.trainable / total:.4f}"


def mlx_line(adapter: Adapter, base_params: int) -> str:
    """mlx-lm's print_trainable_parameters(): its total counts the leaf modules, which the LoRA
    layers (holding lora_a and lora_b beside their base layer) are not: the base's parameters."""
    return f"Trainable parameters: {adapter.trainable * 100 / base_params:.3f}% ({adapter.trainable / 10**6:.3f}M/{base_params / 10**6:.3f}M)"


def heading(adapter: Adapter) -> list[str]:
    base = escape(adapter.base_model) if adapter.base_model else "an unnamed base"
    if adapter.base_class:
        base += f" ({escape(adapter.base_class)})"
    scaling = (
        "scale (mlx-lm's lora_parameters)"
        if adapter.source == "mlx"
        else "alpha / sqrt(r) (rsLoRA)"
        if adapter.use_rslora
        else "alpha / r"
    )
    kind = "LoRA" + (" (DoRA)" if adapter.use_dora else "")
    ranks = sorted({m.rank for m in adapter.modules})
    rank = "-" if not ranks else str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]} to {ranks[-1]}"
    lines = [
        f"{escape(adapter.name)}: {kind} adapter of {base}",
        f"adapted modules: {len(adapter.modules):,}, rank {rank}, scaling = {scaling}",
        f"trainable parameters: {adapter.trainable:,} (LoRA {adapter.lora_params:,}, modules_to_save {adapter.trainable - adapter.lora_params:,})",
        f"stored: {human_bytes(adapter.nbytes)} in {', '.join(adapter.dtypes) or '-'}",
    ]
    if adapter.copies:
        lines.append(
            f"also stored: {counted(len(adapter.copies), 'base weight')} of the targeted embeddings, not trained ({', '.join(escape(t.name) for t in adapter.copies)})"
        )
    return lines


def sections(adapter: Adapter) -> list[str]:
    lines = ["", "Adapted modules:"] + ["  " + line for line in modules_table(adapter)]
    if adapter.saved:
        lines += ["", "Saved whole (modules_to_save):"] + ["  " + line for line in saved_table(adapter)]
    return lines


def text(adapter: Adapter, base_name: str | None = None, base_params: int | None = None) -> str:
    """summary's page for an adapter; with its base, PEFT's line of trainable parameters."""
    lines = heading(adapter)
    if base_params is not None:
        if adapter.source == "mlx":
            lines.append(f"on {escape(base_name or '')}, as mlx-lm prints it: {mlx_line(adapter, base_params)}")
        else:
            lines.append(f"on {escape(base_name or '')}, as PEFT prints it: {peft_line(adapter, base_params)}")
    return "\n".join(lines + sections(adapter)) + "\n"


def json_text(adapter: Adapter, base_name: str | None = None, base_params: int | None = None) -> str:
    return to_json(json_data(adapter, base_name, base_params)) + "\n"


def json_data(adapter: Adapter, base_name: str | None = None, base_params: int | None = None) -> dict:
    """summary --json of an adapter, and the `adapter` object params --json adds."""
    data = {
        "adapter": adapter.name,
        "peft_type": "LORA",
        "source": adapter.source,
        "base_model": adapter.base_model,
        "base_class": adapter.base_class,
        "use_rslora": adapter.use_rslora,
        "use_dora": adapter.use_dora,
        "trainable_params": adapter.trainable,
        "lora_params": adapter.lora_params,
        "nbytes": adapter.nbytes,
        "modules": [
            {
                "name": m.name,
                "kind": m.kind,
                "rank": m.rank,
                "alpha": m.alpha,
                "scaling": m.scaling,
                "in_features": m.in_features,
                "out_features": m.out_features,
                "params": m.params,
                "dora": m.dora,
            }
            for m in adapter.modules
        ],
        "modules_to_save": [{"name": t.name, "shape": list(t.shape), "params": t.numel} for t in adapter.saved],
    }
    if base_params is not None:
        data["base"] = {"model": base_name, "params": base_params, "all_params": base_params + adapter.trainable}
    return data
