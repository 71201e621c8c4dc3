"""Quantized checkpoints read as the models they are: the stored tensors of each quantized
weight (packed words, scales, zeros, indices) grouped into one logical weight with the name,
shape and parameter count of the unquantized model, and the bytes actually stored.

The scheme comes from config.json (quantization_config.quant_method, or MLX's
`quantization`) and is checked against the tensor names; what disagrees becomes a finding."""

from __future__ import annotations

from collections import namedtuple
from math import prod
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..catalog import Catalog, TensorInfo
from .schemes import DEFAULTS, QUANT_METHODS, SCHEMES, Mismatch


class LogicalWeight(namedtuple("LogicalWeight", "name shape scheme parts")):
    """One weight of the unquantized model: its name and shape, the scheme key ("" when
    stored as is) and the stored tensors behind it (the main packed tensor first)."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.parts)


class QuantView(namedtuple("QuantView", "method scheme description weights problems")):
    """method: the quant_method as config.json spells it; scheme: a SCHEMES key, or None when
    the method is not one we read (stored elements are counted then); description: the scheme
    in words; weights: LogicalWeight per weight, in stored order; problems: (where, expected,
    found, what the count did) where the config and the tensors disagree."""

    __slots__ = ()

    @property
    def quantized(self) -> tuple[LogicalWeight, ...]:
        return tuple(w for w in self.weights if w.scheme)

    def tensors(self) -> tuple[TensorInfo, ...]:
        """Logical weights as tensors: dtype "<scheme>" for the quantized ones, nbytes as stored."""
        label = self.scheme.upper() if self.scheme else ""
        return tuple(
            TensorInfo(w.name, label if w.scheme else w.parts[0].dtype, w.shape, w.parts[0].file, w.parts[0].offset, w.nbytes)
            for w in self.weights
        )


# What the count did about a disagreement, said in the finding.
PACKED = "the count uses the packed tensor's shape; check quantization_config in config.json"
STORED = "those tensors are counted as stored elements; check quantization_config in config.json"


def _settings(config: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(quant_method as written, its settings) from config.json; (None, {}) when not quantized."""
    mlx = config.get("quantization")
    if isinstance(mlx, dict) and "bits" in mlx:
        return "mlx", mlx
    q = config.get("quantization_config")
    if isinstance(q, dict):
        method = q.get("quant_method")
        return (str(method) if method is not None else "unknown"), q
    return None, {}


def _from_names(names: set[str]) -> str | None:
    """The scheme the tensor names alone show, for a checkpoint whose config does not say."""
    if any(n.endswith(".g_idx") for n in names):
        return "gptq"
    if any(n.endswith("_blocks") and n[: -len("_blocks")] + "_scales" in names for n in names):
        return "mxfp4"
    if any(n.endswith(".weight_scale_inv") for n in names):
        return "fp8"
    return None


def _values(scheme: str, settings: dict[str, Any]) -> dict[str, Any]:
    q = dict(DEFAULTS[scheme])
    aliases = {"bits": ("bits", "w_bit"), "group_size": ("group_size", "q_group_size")}
    for key in (*q, "weight_block_size"):
        for alias in aliases.get(key, (key,)):
            if settings.get(alias) is not None:
                q[key] = settings[alias]
                break
    return q


def view(catalog: Catalog) -> QuantView | None:
    """The logical weights of a quantized checkpoint; None when it is not quantized."""
    config = catalog.config if isinstance(catalog.config, dict) else {}
    method, settings = _settings(config)
    names = {t.name for t in catalog.tensors}
    if method is None:  # no config says so: trust the names only if they group into weights
        method = _from_names(names)
        found = _group(catalog, method, method, _values(method, {})) if method else None
        return found if found and found.quantized else None
    scheme = QUANT_METHODS.get(method.lower(), method.lower() if method.lower() in SCHEMES else None)
    if scheme is None:
        weights = tuple(LogicalWeight(t.name, t.shape, "", (t,)) for t in catalog.tensors)
        return QuantView(method, None, f"{method} (not a scheme llm-anatomy reads)", weights, ())
    return _group(catalog, method, scheme, _values(scheme, settings))


def _group(catalog: Catalog, method: str, key: str, q: dict[str, Any]) -> QuantView:
    scheme = SCHEMES[key]
    by_name = catalog.by_name
    problems: list[tuple[str, str, str]] = []
    taken: set[str] = set()
    logical: dict[str, LogicalWeight] = {}
    for t in catalog.tensors:
        if not t.name.endswith(scheme.main) or t.dtype not in scheme.main_dtypes:
            continue
        base = t.name[: len(t.name) - len(scheme.main)]
        try:
            shape, expected = scheme.shape(t.shape, q)
        except Mismatch as exc:
            problems.append((t.name, scheme.describe(q), str(exc), STORED))
            continue
        parts = [t]
        for suffix in scheme.parts:
            part = by_name.get(base + suffix)
            if part is None:
                if suffix in expected:
                    problems.append((t.name, f"{base + suffix} beside it ({scheme.describe(q)})", "missing", PACKED))
                continue
            if suffix in expected and tuple(part.shape) != tuple(expected[suffix]):
                problems.append((part.name, f"shape {list(expected[suffix])} ({scheme.describe(q)})", str(list(part.shape)), PACKED))
            parts.append(part)
        taken.update(p.name for p in parts)
        logical[t.name] = LogicalWeight(base + scheme.logical, shape, key, tuple(parts))
    if not logical and not problems:
        problems.append((catalog.name, f"{scheme.main} tensors of {scheme.describe(q)} (quant_method {method!r} in config.json)", "none", STORED))
    weights = tuple(logical.get(t.name) or LogicalWeight(t.name, t.shape, "", (t,)) for t in catalog.tensors if t.name in logical or t.name not in taken)
    return QuantView(method, key, scheme.describe(q), weights, tuple(problems))
