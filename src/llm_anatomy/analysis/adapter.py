"""A LoRA adapter read as what it does to its base model: which modules it adapts, with what
rank, alpha and scaling, how many parameters it trains, and whether a base model fits it.
From the headers and adapter_config.json alone, as PEFT's LoraModel would build it."""

from __future__ import annotations

import math
import struct
from collections import namedtuple

from ..core.catalog import Catalog, TensorInfo, natural_key
from ..core.errors import AnatomyError, UsageError
from ..core.text import escape
from ..hf import mlx_lora, peft

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..decode.elements import ElementReader
    from .tree import ModuleTree
    from .values import PrintOptions, ShownTensor


class AdaptedModule(
    namedtuple("AdaptedModule", "name kind rank alpha scaling in_features out_features params dora tensors")
):
    """One module of the base the adapter changes: name (the base's module name), kind ("linear"
    or "embedding"), rank, alpha and scaling as PEFT's layer holds them (scaling = alpha / r,
    alpha / sqrt(r) with use_rslora), in_features and out_features of the base's layer (for an
    embedding: vocabulary and width), params (the adapter's trained elements for it), dora (a
    magnitude vector is stored), tensors: role -> TensorInfo (hf.peft.PART_ROLES)."""

    __slots__ = ()

    @property
    def base_shape(self) -> tuple[int, int]:
        """The shape of the base weight this module's delta B @ A is added to (before fan_in_fan_out)."""
        return (
            (self.in_features, self.out_features) if self.kind == "embedding" else (self.out_features, self.in_features)
        )


class Adapter(
    namedtuple(
        "Adapter",
        "name config_file weights_file base_model base_class use_rslora use_dora fan_in_fan_out modules saved copies trainable lora_params nbytes dtypes source",
        defaults=("peft",),
    )
):
    """A PEFT LoRA adapter: name, its config and weights files, base_model (the config's
    base_model_name_or_path), base_class (auto_mapping's base_model_class, or None), the flags,
    modules (AdaptedModule, in natural name order), saved: the whole weights of modules_to_save
    (TensorInfo under the base's names), copies: base weights saved beside the LoRA of a targeted
    embedding (not trained), trainable: the count get_nb_trainable_parameters() gives first,
    lora_params: its LoRA part, nbytes: all stored bytes, dtypes: the stored dtypes; source: who
    wrote it: "peft", "gguf" (llama.cpp's convert_lora_to_gguf.py) or "mlx" (mlx-lm: its scaling
    is lora_parameters' scale itself, and alpha is None)."""

    __slots__ = ()

    @property
    def gguf(self) -> bool:
        return self.source == "gguf"


def is_adapter(catalog: Catalog) -> bool:
    return (
        peft.is_adapter_config(catalog.config)
        or mlx_lora.is_adapter_config(catalog.config)
        or (catalog.format == "gguf" and peft.is_lora_gguf(catalog.metadata))
    )


def _number(config: dict, key: str, where: str, whole: bool) -> float:
    value = config.get(key)
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise AnatomyError(
            where,
            f"a positive {'whole ' if whole else ''}number as {key}",
            escape(repr(value))[:40],
            "the adapter config is damaged",
        )
    return value


def _pattern(config: dict, key: str, where: str) -> dict:
    value = config.get(key) or {}
    if not isinstance(value, dict):
        raise AnatomyError(
            where, f"an object of module patterns as {key}", type(value).__name__, "the adapter config is damaged"
        )
    return value


def _module(
    name: str, parts: dict[str, TensorInfo], config: dict, patterns: tuple[list[str], list[str]], weights: str
) -> AdaptedModule:
    embedding = "embedding_A" in parts or "embedding_B" in parts
    a_role, b_role = ("embedding_A", "embedding_B") if embedding else ("A", "B")
    for role in (a_role, b_role):
        if role not in parts:
            raise AnatomyError(
                weights, f"lora_{role} of {escape(name)}", "none", "the adapter is incomplete; save it again"
            )
    a, b = parts[a_role], parts[b_role]
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[0] != b.shape[1]:
        raise AnatomyError(
            weights,
            f"lora_A [r, in] and lora_B [out, r] of {escape(name)}",
            f"{list(a.shape)} and {list(b.shape)}",
            "the adapter is corrupt",
        )
    rank = a.shape[0]
    rank_key = peft.pattern_key(patterns[0], name)
    alpha_key = peft.pattern_key(patterns[1], name)
    configured = config["rank_pattern"][rank_key] if rank_key is not None else config["r"]
    if isinstance(configured, bool) or not isinstance(configured, int):
        raise AnatomyError(
            weights,
            f"a whole number as the rank of {escape(name)} in {peft.ADAPTER_CONFIG}",
            escape(repr(configured))[:40],
            "the adapter config is damaged",
        )
    if configured != rank:
        said = f"rank_pattern {rank_key!r}" if rank_key is not None else "r"
        raise AnatomyError(
            weights,
            f"rank {configured} for {escape(name)} ({escape(said)} in {peft.ADAPTER_CONFIG})",
            f"lora_A {list(a.shape)}",
            "the adapter config does not belong to these weights",
        )
    alpha = config["alpha_pattern"][alpha_key] if alpha_key is not None else config["lora_alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise AnatomyError(
            weights,
            f"a number as alpha of {escape(name)} in {peft.ADAPTER_CONFIG}",
            escape(repr(alpha))[:40],
            "the adapter config is damaged",
        )
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    in_features, out_features = (a.shape[1], b.shape[0])
    params = sum(t.numel for role, t in parts.items() if role in peft.TRAINED_ROLES)
    return AdaptedModule(
        name,
        "embedding" if embedding else "linear",
        rank,
        alpha,
        scaling,
        in_features,
        out_features,
        params,
        "magnitude" in parts,
        dict(parts),
    )


def _adapter(
    catalog: Catalog, modules: tuple[AdaptedModule, ...], saved: tuple[TensorInfo, ...], **fields: Any
) -> Adapter:
    """An Adapter of catalog's tensors: what follows from its modules and saved weights (the
    trained counts, bytes and dtypes) computed alike for a PEFT folder, a LoRA GGUF and mlx-lm's."""
    lora = sum(m.params for m in modules)
    return Adapter(
        name=catalog.name,
        modules=modules,
        saved=saved,
        trainable=lora + sum(t.numel for t in saved),
        lora_params=lora,
        nbytes=catalog.total_nbytes,
        dtypes=tuple(sorted({t.dtype for t in catalog.tensors})),
        **fields,
    )


def describe(catalog: Catalog) -> Adapter:
    """The adapter in catalog (a PEFT folder: adapter_config.json and its weights; or a LoRA GGUF)."""
    if catalog.format == "gguf" and peft.is_lora_gguf(catalog.metadata):
        return describe_gguf(catalog)
    if mlx_lora.is_adapter_config(catalog.config):
        return describe_mlx(catalog)
    config = catalog.require_config()
    where = catalog.config_file or catalog.root
    weights = catalog.weights_place
    if not peft.is_adapter_config(config):
        raise AnatomyError(
            where, "a PEFT adapter_config.json (with peft_type)", "a model's config", "pass an adapter folder"
        )
    if config["peft_type"] != "LORA":
        raise AnatomyError(
            where,
            "a LoRA adapter (peft_type LORA)",
            f"peft_type {escape(config['peft_type'])}",
            "only LoRA adapters are read so far",
        )
    _number(config, "r", where, True)
    _number(config, "lora_alpha", where, False)
    config = {
        **config,
        "rank_pattern": _pattern(config, "rank_pattern", where),
        "alpha_pattern": _pattern(config, "alpha_pattern", where),
    }
    grouped: dict[str, dict[str, TensorInfo]] = {}
    saved, copies = [], []
    for t in catalog.tensors:
        module, role = peft.split_name(t.name)
        if role == "saved":
            saved.append(t._replace(name=module))
        elif role == "base_copy":
            copies.append(t._replace(name=module + ".weight"))
        else:
            grouped.setdefault(module, {})[role] = t
    patterns = (list(config["rank_pattern"]), list(config["alpha_pattern"]))
    modules = tuple(
        _module(name, grouped[name], config, patterns, weights) for name in sorted(grouped, key=natural_key)
    )
    auto = config.get("auto_mapping")
    base_class = (
        auto.get("base_model_class")
        if isinstance(auto, dict) and isinstance(auto.get("base_model_class"), str)
        else None
    )
    base_model = config.get("base_model_name_or_path")
    return _adapter(
        catalog,
        config_file=catalog.config_file,
        weights_file=weights,
        base_model=base_model if isinstance(base_model, str) and base_model else None,
        base_class=base_class,
        use_rslora=bool(config.get("use_rslora")),
        use_dora=bool(config.get("use_dora")),
        fan_in_fan_out=bool(config.get("fan_in_fan_out")),
        modules=modules,
        saved=tuple(saved),
        copies=tuple(copies),
    )


def describe_gguf(catalog: Catalog) -> Adapter:
    """A LoRA GGUF written by llama.cpp's convert_lora_to_gguf.py: one alpha for every module
    (adapter.lora.alpha), each module's rank from its tensors' shapes, modules under
    transformers' names (the GGUF name tables of hf.names)."""
    from ..core.ggml_types import KEY_ARCHITECTURE
    from ..hf.names import gguf_table, hf_name

    where = catalog.weights_place
    alpha = catalog.metadata.get(peft.GGUF_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise AnatomyError(
            where, f"a positive number as {peft.GGUF_ALPHA}", escape(repr(alpha))[:40], "the LoRA GGUF is damaged"
        )
    table = gguf_table(catalog.metadata) or {}
    grouped: dict[str, dict[str, TensorInfo]] = {}
    saved = []
    for t in catalog.tensors:
        split = peft.split_gguf_name(t.name)
        if split is None:  # mergekit-extract-lora's norms, saved whole
            saved.append(t._replace(name=hf_name(t.name, table)))
            continue
        weight = hf_name(split[0], table)
        embedding = split[0].split(".")[-2] in peft.EMBEDDING_MODULES
        role = peft.GGUF_PARTS[split[1]][0]
        grouped.setdefault(weight.removesuffix(".weight"), {})[("embedding_" if embedding else "") + role] = t
    config = {"r": None, "lora_alpha": alpha, "rank_pattern": {}, "alpha_pattern": {}}
    modules = tuple(_gguf_module(name, grouped[name], config, where) for name in sorted(grouped, key=natural_key))
    base = catalog.metadata.get("general.base_model.0.name")
    arch = catalog.metadata.get(KEY_ARCHITECTURE)
    return _adapter(
        catalog,
        config_file=None,
        weights_file=where,
        base_model=base if isinstance(base, str) and base else None,
        base_class=f"general.architecture {arch}" if isinstance(arch, str) else None,
        use_rslora=False,
        use_dora=False,
        fan_in_fan_out=False,
        modules=modules,
        saved=tuple(saved),
        copies=(),
        source="gguf",
    )


def _gguf_module(name: str, parts: dict[str, TensorInfo], config: dict, where: str) -> AdaptedModule:
    """One module of a LoRA GGUF: its rank is its lora_a's (the config has none); the token
    embedding's lora_a is stored transposed [vocab, r], as PEFT's [r, vocab] here."""
    a = parts.get("embedding_A")
    if a is not None and len(a.shape) == 2:
        parts = {**parts, "embedding_A": a._replace(shape=a.shape[::-1])}
    first = parts.get("A") or parts.get("embedding_A")
    rank = first.shape[0] if first is not None and len(first.shape) == 2 else 0
    return _module(name, parts, {**config, "r": rank}, ([], []), where)


def describe_mlx(catalog: Catalog) -> Adapter:
    """An mlx-lm adapter (adapters.safetensors and adapter_config.json, hf.mlx_lora): every module
    with lora_parameters' rank and scale, lora_a [in, r] and lora_b [r, out]."""
    config = catalog.require_config()
    where = catalog.config_file or catalog.root
    weights = catalog.weights_place
    kind = config["fine_tune_type"]
    if kind not in mlx_lora.FINE_TUNE_TYPES:
        raise AnatomyError(
            where,
            "an mlx-lm LoRA or DoRA adapter (fine_tune_type lora or dora)",
            f"fine_tune_type {escape(kind)[:40]}",
            "a full fine-tune's weights are read as a model's tensors: open adapters.safetensors alone",
        )
    parameters = config["lora_parameters"]
    rank = _number(parameters, "rank", where, True)
    scale = _number(parameters, "scale", where, False)
    grouped: dict[str, dict[str, TensorInfo]] = {}
    saved = []
    for t in catalog.tensors:
        module, role = mlx_lora.split_name(t.name)
        if role == "saved":
            saved.append(t)
        else:
            grouped.setdefault(module, {})[role] = t
    modules = tuple(_mlx_module(name, grouped[name], rank, scale, weights) for name in sorted(grouped, key=natural_key))
    base = config.get("model")
    return _adapter(
        catalog,
        config_file=catalog.config_file,
        weights_file=weights,
        base_model=base if isinstance(base, str) and base else None,
        base_class=None,
        use_rslora=False,
        use_dora=kind == "dora",
        fan_in_fan_out=False,
        modules=modules,
        saved=tuple(saved),
        copies=(),
        source="mlx",
    )


def _mlx_module(name: str, parts: dict[str, TensorInfo], rank: int, scale: float, weights: str) -> AdaptedModule:
    for role in ("A", "B"):
        if role not in parts:
            raise AnatomyError(
                weights, f"lora_{role.lower()} of {escape(name)}", "none", "the adapter is incomplete; save it again"
            )
    a, b = parts["A"], parts["B"]
    if len(a.shape) != 2 or len(b.shape) != 2 or a.shape[1] != b.shape[0]:
        raise AnatomyError(
            weights,
            f"lora_a [in, r] and lora_b [r, out] of {escape(name)}",
            f"{list(a.shape)} and {list(b.shape)}",
            "the adapter is corrupt (or not mlx-lm's: PEFT stores lora_A [r, in])",
        )
    if a.shape[1] != rank:
        raise AnatomyError(
            weights,
            f"rank {rank} for {escape(name)} (lora_parameters.rank in adapter_config.json)",
            f"lora_a {list(a.shape)}",
            "the adapter config does not belong to these weights",
        )
    return AdaptedModule(
        name,
        "embedding" if mlx_lora.is_embedding(name) else "linear",
        rank,
        None,
        scale,
        a.shape[0],
        b.shape[1],
        sum(t.numel for t in parts.values()),
        "magnitude" in parts,
        dict(parts),
    )


# A tied base stores its output head once, as the input embedding: a modules_to_save copy of the
# head is checked against that. The head's name -> the embedding's names in transformers' families.
TIED_HEADS = {
    "lm_head.weight": (
        "model.embed_tokens.weight",
        "transformer.wte.weight",
        "model.decoder.embed_tokens.weight",
        "gpt_neox.embed_in.weight",
    )
}


def _base_weight(base: Catalog, name: str) -> TensorInfo | None:
    found = base.by_name.get(name)
    if found is None and name in TIED_HEADS and base.config is not None and not peft.is_adapter_config(base.config):
        from .architecture import derive

        if derive(base.config).tied_embeddings:
            found = next((base.by_name[n] for n in TIED_HEADS[name] if n in base.by_name), None)
    return found


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_base(adapter: Adapter, base: Catalog) -> list[AnatomyError]:
    """Every way the base model does not fit the adapter, from the headers (PEFT finds them only
    when it loads the weights): a targeted module or saved weight the base lacks, a LoRA whose
    in_features or out_features differ from the base weight's, a saved weight or vocabulary of
    another size. base: the base's tensors under transformers' names."""
    found = []
    todo = (
        f"use the base model the adapter was trained on ({escape(adapter.base_model)})"
        if adapter.base_model
        else "use the base model the adapter was trained on"
    )
    where = adapter.weights_file
    for m in adapter.modules:
        weight = base.by_name.get(m.name + ".weight")
        if weight is None:
            found.append(
                AnatomyError(where, f"module {escape(m.name)} in the base {escape(base.name)}", "no such weight", todo)
            )
            continue
        expected = m.base_shape[::-1] if adapter.fan_in_fan_out and m.kind == "linear" else m.base_shape
        if tuple(weight.shape) == expected:
            continue
        if m.kind == "embedding":
            what = f"{escape(m.name)}.weight {_shape(expected)} (a vocabulary of {m.in_features:,} tokens of width {m.out_features})"
        else:
            what = f"{escape(m.name)}.weight {_shape(expected)} (in_features {m.in_features}, out_features {m.out_features})"
        found.append(AnatomyError(where, what, f"{_shape(weight.shape)} in {escape(base.name)}", todo))
    for t in adapter.saved:  # (the copies of targeted embeddings: checked with their module above)
        weight = _base_weight(base, t.name)
        if weight is None:
            found.append(
                AnatomyError(
                    where, f"{escape(t.name)} (modules_to_save) in the base {escape(base.name)}", "no such weight", todo
                )
            )
        elif tuple(weight.shape) != tuple(t.shape):
            found.append(
                AnatomyError(
                    where,
                    f"{escape(t.name)} {_shape(t.shape)} as saved",
                    f"{_shape(weight.shape)} in {escape(base.name)}",
                    todo,
                )
            )
    return found


# ---------------------------------------------------------------- merged values, as torch computes them
#
# PEFT merges with torch: delta = (B @ A) in float32 (half types are widened on the CPU), times
# scaling, cast back to the adapter's dtype, added in place to W. torch's CPU matmul computes each
# element as a chain of fused multiply-adds over k in order (checked on every element of the
# tests' adapters), so the elements asked for are computed here the same way, in Python floats,
# each float32 operation rounded once as the hardware rounds it: merge_and_unload()'s values
# without reading or multiplying the rest of B and A.

_F32 = struct.Struct("<f")
_F16 = struct.Struct("<e")


def _to_f32(x: float) -> float:
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:  # past float32's largest finite value: rounds to infinity, as torch does
        return math.copysign(math.inf, x)


def _neighbour_f32(x: float, toward: float) -> float:
    """The float32 next to float32 x on the side of `toward`."""
    if x == 0:
        return math.copysign(2.0**-149, toward)
    bits = struct.unpack("<i", _F32.pack(x))[0]
    return struct.unpack("<f", struct.pack("<i", bits + (1 if (toward > x) == (x > 0) else -1)))[0]


def _round_f32(high: float, low: float) -> float:
    """The float32 nearest to high + low (exactly; high = fl64(high + low)), ties to even: the
    float64 sum rounded again would be off where it lies exactly between two float32 values."""
    near = _to_f32(high)
    if low == 0 or near == high or not math.isfinite(near):
        return near
    other = _neighbour_f32(near, high)
    if (near + other) / 2 != high:  # high is no float32 midpoint: rounding it rounds the exact sum
        return near
    return other if (low > 0) == (other > near) else near  # the exact sum lies past the midpoint


def _add_f32(x: float, y: float) -> float:
    """round32(x + y) with one rounding (Knuth's two-sum gives the float64 sum's error)."""
    total = x + y
    virtual = total - x
    error = (x - (total - virtual)) + (y - virtual)
    return _round_f32(total, error)


def _dot_f32(row: list[float], column: list[float]) -> float:
    """One element of a float32 matmul as torch's CPU kernels compute it: fma over k in order.
    The product of two float32 is exact in float64; only the additions round."""
    total = 0.0
    for a, b in zip(row, column):
        total = _add_f32(total, a * b)
    return total


def _to_bf16(x: float) -> float:
    bits = struct.unpack("<I", _F32.pack(x))[0]
    if math.isnan(x):
        return x
    bits += 0x7FFF + ((bits >> 16) & 1)  # round to nearest, ties to even, as torch casts
    return struct.unpack("<f", struct.pack("<I", (bits >> 16 << 16) & 0xFFFFFFFF))[0]


def _to_f16(x: float) -> float:
    try:
        return _F16.unpack(_F16.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


# A dtype's values as torch casts a float32 to it (round to nearest, ties to even).
CAST = {"F32": lambda x: x, "BF16": _to_bf16, "F16": _to_f16}


def merge_base(stored: Catalog, hf: Catalog) -> Catalog:
    """The base's tensors to merge into: its catalog as stored, when transformers' names are the
    stored ones. A GGUF or Meta checkpoint stores q and k in another row order, which the merge
    does not undo: refused."""
    if hf is not stored:
        raise UsageError(
            stored.name,
            "a base in transformers' layout to merge into (safetensors or a transformers .bin)",
            f"a {escape(stored.format)} checkpoint with its own names and row order",
            "pass the Hugging Face base model",
        )
    return stored


def require_mergeable(adapter: Adapter) -> None:
    """A LoRA GGUF is not merged here: its q and k lora_b rows are in llama.cpp's rotary order, for
    llama.cpp's own base weights (verify against the PEFT adapter shows they are the same)."""
    if adapter.source in NOT_MERGED:
        raise UsageError(adapter.name, "a PEFT adapter to merge", *NOT_MERGED[adapter.source])


NOT_MERGED = {
    "gguf": ("a LoRA GGUF (laid out for llama.cpp's base weights)", "merge the PEFT adapter it was converted from"),
    "mlx": ("an mlx-lm adapter", "merged values of mlx-lm adapters are not computed yet"),
}


def merged_shown(
    reader: ElementReader, adapter: Adapter, base: Catalog, target: str, options: PrintOptions
) -> ShownTensor:
    """What print() shows of base weight `target` (a name with an optional [index]) after PEFT's
    merge_and_unload(): W + scaling * B @ A, for the rows of B and the columns of A the shown
    elements need, and nothing else. A modules_to_save weight shows the adapter's copy; a weight
    the adapter leaves alone, the base's."""
    from ..decode.elements import decoder_for
    from .values import ShownTensor, View, _read_at_once, _shown, parse_index, show, split_index

    name, index = split_index(target)
    saved = {t.name: t for t in adapter.saved}
    weight = saved.get(name) or base.get(name)
    view = View.whole(weight)
    if index is not None:
        view = view.index(target, parse_index(target, index))
    module = next((m for m in adapter.modules if name == m.name + ".weight"), None)
    if not view.shape or module is None:
        return show(reader, view, options)
    if module.dora and (module.kind == "embedding" or adapter.fan_in_fan_out):
        raise UsageError(
            target,
            "a DoRA linear module in [out, in] layout to merge",
            "a DoRA " + ("embedding" if module.kind == "embedding" else "module with fan_in_fan_out"),
            "merged DoRA embeddings and Conv1D weights are not computed yet",
        )
    a, b = (
        (module.tensors["embedding_A"], module.tensors["embedding_B"])
        if module.kind == "embedding"
        else (module.tensors["A"], module.tensors["B"])
    )
    for tensor, where in ((a, adapter.weights_file), (b, adapter.weights_file), (weight, base.name)):
        if tensor.dtype not in CAST or type(tensor) is not TensorInfo:
            raise UsageError(
                where,
                f"a float32, float16 or bfloat16 {escape(tensor.name)} to merge",
                tensor.dtype,
                "merge into an unquantized base",
            )
    summarize, indices = _shown(view, options)
    positions = _read_at_once(view, True, indices)
    # DoRA scales each row by its magnitude over the row's norm: whole rows of W and delta are computed
    computed = len({p // weight.shape[1] for p in positions}) * weight.shape[1] if module.dora and positions else 0
    if positions is None or max(len(positions), computed) > MAX_MERGED:
        raise UsageError(
            target,
            f"at most {MAX_MERGED:,} merged elements at once",
            "more",
            "index a part of the weight, e.g. NAME[0, :8]",
        )
    # delta[i, j] of W's element (i, j) is B[i] . A[:, j]; transposed (an embedding, or GPT-2's
    # [in, out] Conv1D weights with fan_in_fan_out) it is B[j] . A[:, i].
    transposed = module.kind == "embedding" or adapter.fan_in_fan_out
    pairs = [divmod(p, weight.shape[1]) for p in positions]
    pairs_ab = [(j, i) if transposed else (i, j) for i, j in pairs]
    if module.dora:  # every element of the rows shown
        pairs_ab = pairs = [(i, j) for i in sorted({i for i, _ in pairs}) for j in range(weight.shape[1])]
        shown_at = positions
        positions = [i * weight.shape[1] + j for i, j in pairs]
    r, width = module.rank, a.shape[1]
    b_rows = sorted({i for i, _ in pairs_ab})
    a_cols = sorted({j for _, j in pairs_ab})
    b_values = reader.read(b, [i * r + k for i in b_rows for k in range(r)])
    row_of_b = {i: b_values[n * r : (n + 1) * r] for n, i in enumerate(b_rows)}
    a_positions = sorted(k * width + j for k in range(r) for j in a_cols)
    a_at = dict(zip(a_positions, reader.read(a, a_positions)))
    column_of_a = {j: [a_at[k * width + j] for k in range(r)] for j in a_cols}
    scale = _to_f32(module.scaling)  # torch multiplies a float32 tensor by the scalar as a float32
    cast_lora = CAST[b.dtype]
    # LoRA adds in place (W's dtype); DoRA adds out of place, where torch promotes W + delta
    summed = weight.dtype if not module.dora or b.dtype == weight.dtype else "F32"
    cast_sum = CAST[summed]
    ordered = sorted(set(positions))
    w_at = dict(zip(ordered, reader.read(weight, ordered)))
    merged = []
    for p, (i, j) in zip(positions, pairs_ab):
        delta = cast_lora(_to_f32(_dot_f32(row_of_b[i], column_of_a[j]) * scale))  # the product is exact in float64
        merged.append(cast_sum(_add_f32(w_at[p], delta)))
    if module.dora:
        magnitude = module.tensors["magnitude"]
        dtypes = (summed, magnitude.dtype, weight.dtype)
        merged = _dora(merged, weight.shape[1], reader.read(magnitude, b_rows), dtypes)
        at = dict(zip(positions, merged))
        merged = [at[p] for p in shown_at]
    shown_width = len(indices[-1])

    def rows():
        return (merged[n : n + shown_width] for n in range(0, len(merged), shown_width))

    return ShownTensor(view.name, view.tensor, decoder_for(view.tensor), view.shape, summarize, indices, rows)


NORM_LANES = 8  # torch's float32 norm on an AVX2 CPU: 8 partial sums, one per vector lane


def _row_norm(row: list[float]) -> float:
    """torch.linalg.norm of a row as its AVX2 kernel computes it: squares rounded to float32,
    summed into NORM_LANES float32 partial sums in turn, the partial sums added in order, the
    square root rounded to float32. Matches torch bit for bit for rows of a multiple of 8
    elements on AVX2; a CPU with AVX-512 sums 16 lanes, and the last bit may differ."""
    lanes = [0.0] * NORM_LANES
    for n, v in enumerate(row):
        lanes[n % NORM_LANES] = _add_f32(lanes[n % NORM_LANES], _to_f32(v * v))
    total = 0.0
    for lane in lanes:
        total = _add_f32(total, lane)
    return _to_f32(math.sqrt(total))


def _dora(rows: list[float], width: int, magnitude: list[float], dtypes: tuple[str, str, str]) -> list[float]:
    """DoRA's merge of whole rows V = W + scaling * B @ A, as PEFT's DoraLinearVariant.merge_unsafe
    computes it: norm = ||V[i]|| over the row (torch.linalg.norm dim=1, in V's dtype: _row_norm),
    factor = magnitude[i] / norm, then factor * V[i] cast to W's dtype. dtypes: (V's, the
    magnitude's, W's); each step is rounded as torch promotes: V's dtype is W's when the
    adapter's is W's, float32 otherwise; the factor is float32 unless magnitude and V share a
    dtype (a float32 product or quotient of float32 values is exact or correctly rounded
    through float64)."""
    value, stored, weight = dtypes
    cast_v, cast_w = CAST[value], CAST[weight]
    cast_factor = cast_v if stored == value else CAST["F32"]
    out = []
    for n, m in enumerate(magnitude):
        row = rows[n * width : (n + 1) * width]
        norm = cast_v(_row_norm(row))
        factor = cast_factor(_to_f32(m / norm)) if norm else math.copysign(math.inf, m) if m else math.nan
        out += [cast_w(cast_v(_to_f32(factor * v))) for v in row]
    return out


MAX_MERGED = 1 << 20  # elements merged at once: their rows of B and columns of A are held in memory


def adapted_tree(tree: ModuleTree, adapter: Adapter) -> ModuleTree:
    """The base's module tree with the adapter's modules marked beside their class names (LoRA
    rank and alpha, DoRA; modules_to_save replaced whole): layers adapted alike still fold
    together, layers adapted differently (a rank_pattern) no longer do."""
    from .tree import TreeNode

    marks = {
        m.name: f"LoRA r={m.rank} "
        + (f"alpha={m.alpha:g}" if m.alpha is not None else f"scale={m.scaling:g}")
        + (" + DoRA" if m.dora else "")
        for m in adapter.modules
    }
    for t in adapter.saved:
        marks.setdefault(t.name.rpartition(".")[0], "saved whole by the adapter")

    def marked(node: TreeNode) -> TreeNode:
        children = tuple(marked(c) for c in node.children)
        mark = marks.get(node.path)
        class_name = node.class_name if mark is None else f"{node.class_name} + {mark}" if node.class_name else mark
        return node._replace(class_name=class_name, children=children)

    return tree._replace(root=marked(tree.root))


def peft_tree(tree: ModuleTree, adapter: Adapter, config: dict) -> ModuleTree:
    """The module tree of the model PeftModel.from_pretrained(base, adapter) gives (its
    named_children() and named_parameters() under PEFT's names, for tree --style torch): the
    base wrapped in the task's PeftModel class and a LoraModel; each adapted layer a LoRA layer
    (peft.LORA_LAYER_CHILDREN) holding the base's layer as base_layer; each module in
    modules_to_save a ModulesToSaveWrapper holding the original and its trained copy."""
    from .tree import TreeNode, TreeParameter

    adapted = {m.name: m for m in adapter.modules}
    saved = {t.name.rpartition(".")[0] for t in adapter.saved}
    dropout = config.get("lora_dropout")
    dropout_class = "Dropout" if isinstance(dropout, (int, float)) and dropout > 0 else "Identity"
    default = peft.ADAPTER_NAME
    renamed: dict[str, str] = {}  # a base parameter's name -> its name in the PEFT model

    def node(name: str, path: str, class_name: str | None, parameters=(), children=()) -> TreeNode:
        return TreeNode(name, path, class_name, tuple(parameters), 0, tuple(children))  # totals: counted()

    def moved(base: TreeNode, name: str, path: str) -> TreeNode:
        """A base module under its place in the PEFT model: its parameters renamed there."""
        for p in base.parameters:
            renamed[f"{base.path}.{p.name}".lstrip(".")] = f"{path}.{p.name}"
        children = [moved(c, c.name, f"{path}.{c.name}") for c in base.children]
        return TreeNode(name, path, base.class_name, base.parameters, base.total, tuple(children))

    def trained(name: str, path: str, class_name: str, shapes: dict[str, tuple[int, ...]]) -> TreeNode:
        parameters = [TreeParameter(n, shape, f"{path}.{n}") for n, shape in shapes.items()]
        return node(name, path, class_name, parameters)

    def lora_layer(base: TreeNode, path: str, module: AdaptedModule) -> TreeNode:
        parts = {role: tuple(t.shape) for role, t in module.tensors.items()}
        linear = module.kind != "embedding"
        contents = {
            peft.BASE_LAYER: lambda p: moved(base, peft.BASE_LAYER, p),
            "lora_dropout": lambda p: [trained(default, f"{p}.{default}", dropout_class, {})],
            "lora_A": lambda p: (
                [trained(default, f"{p}.{default}", "Linear", {"weight": parts["A"]})] if linear else []
            ),
            "lora_B": lambda p: (
                [
                    trained(
                        default,
                        f"{p}.{default}",
                        "Linear",
                        {"weight": parts["B"], **({"bias": parts["bias"]} if "bias" in parts else {})},
                    )
                ]
                if linear
                else []
            ),
            "lora_magnitude_vector": lambda p: (
                [
                    trained(
                        default,
                        f"{p}.{default}",
                        "DoraLinearLayer" if linear else "DoraEmbeddingLayer",
                        {"weight": parts["magnitude"]},
                    )
                ]
                if "magnitude" in parts
                else []
            ),
        }
        children = []
        for part, container in peft.LORA_LAYER_CHILDREN:
            part_path = f"{path}.{part}"
            if container is None:
                children.append(contents[part](part_path))
            elif container == "ParameterDict":  # an embedding's A and B: bare parameters, keyed by adapter
                role = part.removeprefix("lora_")
                shapes = {default: parts[role]} if role in parts else {}
                children.append(trained(part, part_path, container, shapes))
            else:
                children.append(node(part, part_path, container, (), contents[part](part_path)))
        # PEFT's own classes, named Linear and Embedding whatever the base layer was (a Conv1D too).
        return node(base.name, path, "Linear" if linear else "Embedding", (), children)

    def own(n: TreeNode) -> TreeNode:
        """A trained copy: its parameters its own, tied to nothing."""
        parameters = tuple(p._replace(canonical=f"{n.path}.{p.name}") for p in n.parameters)
        return n._replace(parameters=parameters, children=tuple(own(c) for c in n.children))

    def wrapper(base: TreeNode, path: str) -> TreeNode:
        copy = own(moved(base, default, f"{path}.modules_to_save.{default}"))
        original = moved(base, peft.SAVED_ORIGINAL, f"{path}.{peft.SAVED_ORIGINAL}")  # (its names win in renamed)
        holder = node("modules_to_save", f"{path}.modules_to_save", "ModuleDict", (), [copy])
        return node(base.name, path, "ModulesToSaveWrapper", (), [original, holder])

    def visit(base: TreeNode, path: str) -> TreeNode:
        if base.path in adapted:
            return lora_layer(base, path, adapted[base.path])
        if base.path in saved:
            return wrapper(base, path)
        children = [visit(c, f"{path}.{c.name}") for c in base.children]
        for p in base.parameters:
            renamed[f"{base.path}.{p.name}".lstrip(".")] = f"{path}.{p.name}"
        return TreeNode(base.name, path, base.class_name, base.parameters, base.total, tuple(children))

    model = visit(tree.root, "base_model.model")._replace(name="model")

    def canonical(n: TreeNode) -> TreeNode:
        """Tied weights point to their first name in the PEFT model, as named_parameters() dedups them."""
        parameters = tuple(p._replace(canonical=renamed.get(p.canonical, p.canonical)) for p in n.parameters)
        return n._replace(parameters=parameters, children=tuple(canonical(c) for c in n.children))

    def counted(n: TreeNode) -> tuple[TreeNode, dict[str, int]]:
        """The node with its total (tied weights once), and its distinct parameters' sizes."""
        sizes = {p.canonical: p.numel for p in n.parameters}
        children = []
        for child in n.children:
            child, below = counted(child)
            children.append(child)
            sizes.update(below)
        return n._replace(total=sum(sizes.values()), children=tuple(children)), sizes

    task = config.get("task_type")
    top = peft.PEFT_MODEL_CLASSES.get(task, "PeftModel") if isinstance(task, str) else "PeftModel"
    lora_model = node("base_model", "base_model", "LoraModel", (), [canonical(model)])
    return tree._replace(root=counted(node("", "", top, (), [lora_model]))[0])
