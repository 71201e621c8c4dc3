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

from ..core.catalog import Catalog, TensorInfo
from ..core.text import escape
from .schemes import COMPRESSED_TENSORS_FORMATS, DEFAULTS, OPTIONAL, QUANT_METHODS, SCHEMES, SWITCHED_BY, Mismatch
from .state import read_states


class LogicalWeight(namedtuple("LogicalWeight", "name shape scheme parts settings", defaults=(None,))):
    """One weight of the unquantized model: its name and shape, the scheme key ("" when
    stored as is), the stored tensors behind it (the main packed tensor first), and settings:
    its own when it has them (an MLX module with bits of its own; bitsandbytes' quant state
    under "state"), else None: the scheme's settings from the config hold for it."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.parts)


class QuantView(namedtuple("QuantView", "method scheme description weights problems settings", defaults=(None,))):
    """method: the quant_method as config.json spells it; scheme: a SCHEMES key, or None when
    the method is not one we read (stored elements are counted then); description: the scheme
    in words; weights: LogicalWeight per weight, in stored order; problems: (where, expected,
    found, what the count did, like) where the config and the tensors disagree; like says which
    disagreement it is, the same for its repeats in other weights: ("unreadable", the Mismatch's
    kind) a packed tensor the settings cannot read, ("missing", suffix) a part not beside its
    weight, ("shape", suffix) a part of another shape, ("none",) no packed tensor at all.
    settings: the scheme's settings from the config (bits, group_size, weight_block_size, ...),
    which hold for every weight whose own settings are None (the dequantizers read them)."""

    __slots__ = ()

    @property
    def quantized(self) -> tuple[LogicalWeight, ...]:
        return tuple(w for w in self.weights if w.scheme)

    def tensors(self) -> tuple[TensorInfo, ...]:
        """Logical weights as tensors: dtype "<scheme>" for the quantized ones, nbytes as stored."""
        label = self.scheme.upper() if self.scheme else ""
        return tuple(
            TensorInfo(
                w.name, label if w.scheme else w.parts[0].dtype, w.shape, w.parts[0].file, w.parts[0].offset, w.nbytes
            )
            for w in self.weights
        )


# What the count did about a disagreement, said in the finding.
PACKED = "the count uses the packed tensor's shape; check quantization_config in config.json"
STORED = "those tensors are counted as stored elements; check quantization_config in config.json"


def _settings(config: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, dict[str, Any]]]:
    """(quant_method as written, its settings, module -> its own settings) from config.json;
    (None, {}, {}) when not quantized. mlx-lm's mixed-precision recipes write a module's own
    bits and group size under its path in `quantization` ("model.layers.0.mlp.down_proj":
    {"bits": 6, "group_size": 64}; false for a module left unquantized, stored as is)."""
    mlx = config.get("quantization")
    if isinstance(mlx, dict) and "bits" in mlx:
        return "mlx", mlx, {name: value for name, value in mlx.items() if isinstance(value, dict)}
    q = config.get("quantization_config")
    if isinstance(q, dict):
        method = q.get("quant_method")
        if method == "compressed-tensors":
            return method, {**q, **_compressed_tensors_weights(q)}, {}
        return (str(method) if method is not None else "unknown"), q, {}
    return None, {}, {}


def _compressed_tensors_weights(q: dict[str, Any]) -> dict[str, Any]:
    """The weight settings of compressed-tensors' first integer config group, in the names the
    other schemes use (bits, group_size, sym, strategy)."""
    groups = q.get("config_groups")
    for group in groups.values() if isinstance(groups, dict) else ():
        weights = group.get("weights") if isinstance(group, dict) else None
        if isinstance(weights, dict) and weights.get("type", "int") == "int":
            names = {"bits": "num_bits", "group_size": "group_size", "sym": "symmetric", "strategy": "strategy"}
            return {ours: weights[theirs] for ours, theirs in names.items() if weights.get(theirs) is not None}
    return {}


def _from_names(names: set[str]) -> tuple[str, str, dict[str, Any]] | None:
    """(quant_method, scheme, the settings they imply) as the tensor names alone show them,
    for a checkpoint whose config does not say."""
    if any(n.endswith(".g_idx") for n in names):
        return "gptq", "gptq", {}
    if any(n.endswith("_blocks") and n[: -len("_blocks")] + "_scales" in names for n in names):
        return "mxfp4", "mxfp4", {}
    if any(n.endswith(".weight_scale_inv") for n in names):
        return "fp8", "fp8", {}
    state = next((n for n in names if n.endswith(SCHEMES["bnb4"].state)), None)
    if state is not None:
        return (
            "bitsandbytes",
            "bnb4",
            {
                "bnb_4bit_quant_type": state.rsplit("__", 1)[1],
                "bnb_4bit_use_double_quant": any(n.endswith(".weight.nested_absmax") for n in names),
            },
        )
    if any(n.endswith(".SCB") for n in names):
        return "bitsandbytes", "bnb8", {}
    return None


KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _values(scheme: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The scheme's settings from the config (defaults where it gives none); raises Mismatch
    naming the first one of the wrong kind (a hostile config: bits "4", or 0)."""
    q = dict(DEFAULTS[scheme])
    aliases = {"bits": ("bits", "w_bit"), "group_size": ("group_size", "q_group_size")}
    optional = OPTIONAL.get(scheme, {})
    for key in (*q, *optional):
        for alias in aliases.get(key, (key,)):
            if settings.get(alias) is not None:
                value = settings[alias]
                if key in optional:
                    check, words = optional[key]
                    if not check(value):
                        raise Mismatch(
                            f"{alias} {_short_repr(value)} in its quantization settings, not {words}", "settings"
                        )
                    q[key] = value
                    break
                kind = type(DEFAULTS[scheme][key])
                if (
                    type(value) is not kind
                    and not (kind is float and type(value) is int)
                    or key == "bits"
                    and not 1 <= value <= 8
                ):
                    raise Mismatch(
                        f"{alias} {_short_repr(value)} in its quantization settings, not {'an integer 1..8' if key == 'bits' else KINDS.get(kind, kind.__name__)}",
                        "settings",
                    )
                q[key] = value
                break
    return q


def _short_repr(value: Any) -> str:
    """repr() of a config value, cut short (a hostile config's value can be anything, of any size)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def view(catalog: Catalog) -> QuantView | None:
    """The logical weights of a quantized checkpoint; None when it is not quantized."""
    config = catalog.config if isinstance(catalog.config, dict) else {}
    method, settings, modules = _settings(config)
    names = {t.name for t in catalog.tensors}
    if method is None:  # no config says so: trust the names only if they group into weights
        shown = _from_names(names)
        found = _group(catalog, shown[0], shown[1], _values(shown[1], shown[2])) if shown else None
        return found if found and found.quantized else None
    scheme = QUANT_METHODS.get(method.lower(), method.lower() if method.lower() in SCHEMES else None)
    if scheme in SWITCHED_BY and settings.get(SWITCHED_BY[scheme][0]):
        scheme = SWITCHED_BY[scheme][1]
    if method.lower() == "compressed-tensors":  # its format (or its packed tensors) says which scheme
        packed = any(n.endswith(SCHEMES["pack"].main) for n in names)
        scheme = "pack" if packed else COMPRESSED_TENSORS_FORMATS.get(str(settings.get("format")), "fp8")
    as_stored = tuple(LogicalWeight(t.name, t.shape, "", (t,)) for t in catalog.tensors)
    if scheme is None:
        return QuantView(method, None, f"{method} (not a scheme llm-anatomy reads)", as_stored, ())
    try:
        q = _values(scheme, settings)
        own = {name: _values(scheme, {**settings, **value}) for name, value in modules.items()}
    except Mismatch as exc:
        problem = (
            "config.json",
            f"quantization settings llm-anatomy can read (quant_method {method!r})",
            str(exc),
            STORED,
            ("settings",),
        )
        return QuantView(method, None, f"{method} (its settings unreadable)", as_stored, (problem,))
    return _group(catalog, method, scheme, q, own)


def _group(
    catalog: Catalog, method: str, key: str, q: dict[str, Any], own: dict[str, dict[str, Any]] | None = None
) -> QuantView:
    """own: module -> the settings it has instead of q (MLX's per-module bits and group size)."""
    scheme = SCHEMES[key]
    by_name = catalog.by_name
    problems: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    taken: set[str] = set()
    logical: dict[str, LogicalWeight] = {}
    mains = [t for t in catalog.tensors if t.name.endswith(scheme.main) and t.dtype in scheme.main_dtypes]
    states = read_states(catalog, [t.name[: len(t.name) - len(scheme.main)] for t in mains], scheme.state)
    if states:  # the scheme in words says what only the states say (bitsandbytes' block size)
        q = {**q, "state": next((s for s in states.values() if isinstance(s, dict)), {})}
    own = own or {}
    other: dict[str, int] = {}  # the scheme in words of weights with their own settings -> how many
    for t in mains:
        base = t.name[: len(t.name) - len(scheme.main)]
        qw = own.get(base, q)
        words = escape(scheme.describe(qw))  # the settings are config.json's: escaped as any text from a checkpoint
        try:
            shape, expected = scheme.shape(t.shape, {**qw, "state": states.get(base)} if scheme.state else qw)
        except Mismatch as exc:
            problems.append((t.name, words, escape(str(exc)), STORED, ("unreadable", exc.kind)))
            continue
        parts = [t]
        # every part the scheme stores, and any the settings expect that it never does (a quant type bitsandbytes has no table for)
        for suffix in (*scheme.parts, *(s for s in expected if s not in scheme.parts)):
            part = by_name.get(base + suffix)
            if part is None:
                if suffix in expected:
                    problems.append(
                        (t.name, f"{escape(base + suffix)} beside it ({words})", "missing", PACKED, ("missing", suffix))
                    )
                continue
            if expected.get(suffix) is not None and tuple(part.shape) != tuple(expected[suffix]):
                problems.append(
                    (
                        part.name,
                        f"shape {list(expected[suffix])} ({words})",
                        str(list(part.shape)),
                        PACKED,
                        ("shape", suffix),
                    )
                )
            parts.append(part)
        if qw is not q:
            other[scheme.describe(qw)] = other.get(scheme.describe(qw), 0) + 1
        taken.update(p.name for p in parts)
        own_settings = {**qw, "state": states[base]} if scheme.state else (qw if qw is not q else None)
        logical[t.name] = LogicalWeight(base + scheme.logical, shape, key, tuple(parts), own_settings)
    if not logical and not problems:
        problems.append(
            (
                catalog.name,
                f"{scheme.main} tensors of {escape(scheme.describe(q))} (quant_method {escape(repr(method))} in config.json)",
                "none",
                STORED,
                ("none",),
            )
        )
    weights = tuple(
        logical.get(t.name) or LogicalWeight(t.name, t.shape, "", (t,))
        for t in catalog.tensors
        if t.name in logical or t.name not in taken
    )
    words = scheme.describe(q) + "".join(f"; {text} in {n} weight{'s' if n > 1 else ''}" for text, n in other.items())
    return QuantView(method, key, words, weights, tuple(problems), q)
