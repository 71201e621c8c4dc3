"""The model's skeleton as transformers builds it: modules with class names, parameters in
transformers' order, buffers, tied weights, and the config as transformers prints it.

Built once per (config, transformers version) on torch's meta device (no weights are
read or allocated) and cached as JSON in the user cache folder, so later calls need
neither torch nor transformers."""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from collections import namedtuple

TYPE_CHECKING = False  # typing, pathlib and hashlib cost ~9 ms to import: tree and config run on every call
if TYPE_CHECKING:
    from typing import Any, Callable

from ..io.bounded_json import MAX_CONFIG_BYTES
from ..io.sources import Unreadable, is_local, read_capped
from ..io.cache_dir import cache_dir
from ..core.catalog import Catalog, FusedTensor, TensorInfo
from ..core.config_schema import refuse_to_build
from ..core.dtypes import DTYPES
from ..core.errors import AnatomyError, note
from ..core.text import escape

SCHEMA_VERSION = 3  # 2: config_text carries the dtype from_pretrained infers from the weights; 3: "key" stored


class SkeletonUnavailable(AnatomyError):
    """transformers is not installed or cannot build this config; views fall back to names."""


# Named tuples, not dataclasses: this module is on the path of every `tree` and `config` call
# (see catalog.py for the cost). Fields are documented on each record.


class Module(namedtuple("Module", "path class_name parameters")):
    """path: "" for the root, else "model.layers.0.self_attn"; class_name; parameters:
    local names of the parameters registered on this module itself."""

    __slots__ = ()


class Parameter(namedtuple("Parameter", "name shape")):
    __slots__ = ()


class Buffer(namedtuple("Buffer", "name shape persistent")):
    __slots__ = ()


class Skeleton(
    namedtuple("Skeleton", "transformers_version model_class modules parameters buffers tied config_text config_class")
):
    """modules in named_modules() order; parameters in named_parameters() order, tied weights
    once; buffers; tied: alias -> the name named_parameters() shows; config_text: exactly
    str(model.config); config_class: its class name."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "transformers_version": self.transformers_version,
            "model_class": self.model_class,
            "modules": [
                {"path": m.path, "class_name": m.class_name, "parameters": list(m.parameters)} for m in self.modules
            ],
            "parameters": [{"name": p.name, "shape": list(p.shape)} for p in self.parameters],
            "buffers": [{"name": b.name, "shape": list(b.shape), "persistent": b.persistent} for b in self.buffers],
            "tied": dict(self.tied),
            "config_text": self.config_text,
            "config_class": self.config_class,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Skeleton":
        """The skeleton to_json() wrote; ValueError, KeyError or TypeError for anything else
        (a cache entry is a file other programs can damage or forge)."""
        return cls(
            transformers_version=_checked(str, data["transformers_version"]),
            model_class=_checked(str, data["model_class"]),
            modules=tuple(
                Module(_checked(str, m["path"]), _checked(str, m["class_name"]), _strings(m["parameters"]))
                for m in _checked(list, data["modules"])
            ),
            parameters=tuple(
                Parameter(_checked(str, p["name"]), _shape(p["shape"])) for p in _checked(list, data["parameters"])
            ),
            buffers=tuple(
                Buffer(_checked(str, b["name"]), _shape(b["shape"]), _checked(bool, b["persistent"]))
                for b in _checked(list, data["buffers"])
            ),
            tied={_checked(str, alias): _checked(str, name) for alias, name in _checked(dict, data["tied"]).items()},
            config_text=_checked(str, data["config_text"]),
            config_class=_checked(str, data["config_class"]),
        )


def _checked(kind: type, value: Any) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(_checked(str, item) for item in _checked(list, value))


# A shape read back from the cache: what torch could hold (rank and sizes), so that counts
# stay ints a float can still show.
MAX_RANK, MAX_DIM = 16, 2**63


def _shape(value: Any) -> tuple[int, ...]:
    shape = tuple(_checked(int, item) for item in _checked(list, value))
    if len(shape) > MAX_RANK or any(isinstance(d, bool) or not 0 <= d < MAX_DIM for d in shape):
        raise ValueError(f"expected a tensor shape, found {len(shape)} dimensions")
    return shape


def _find_spec(name: str) -> Any:
    """importlib.util.find_spec(name) for a top-level module: sys.meta_path's finders asked as
    the import system asks them. Importing importlib.util (with contextlib) would cost every
    cached `tree` or `trace` ~1 ms."""
    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__spec__", None)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec(name, None) if find_spec is not None else None
        if spec is not None:
            return spec
    return None


def installed_transformers_version() -> str | None:
    """Read transformers' version from its __init__.py: importing it (or importlib.metadata) costs 50+ ms."""
    spec = _find_spec("transformers")
    if spec is None or spec.origin is None:
        return None
    with open(spec.origin, encoding="utf-8") as handle:
        for _, line in zip(range(200), handle):
            match = re.match(r"""__version__\s*=\s*["']([^"']+)["']""", line)
            if match:
                return match.group(1)
    return "unknown"


def cache_key(config_bytes: bytes, version: str, weights_dtype: str | None) -> str:
    """Everything a skeleton depends on, stored in the entry and compared on reading, so the
    file name can be a cheap checksum (zlib rather than hashlib) without risking a mix-up."""
    return "%d\0%s\0%s\0%s" % (SCHEMA_VERSION, version, weights_dtype or "", config_bytes.decode("utf-8", "replace"))


def cache_path(key: str, kind: str = "skeletons") -> str:
    raw = key.encode()
    return os.path.join(cache_dir(), kind, f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}.json")


# DeepSeek-V3's skeleton is ~3 MB of JSON; an entry past this is not one we wrote.
MAX_ENTRY_BYTES = 64 * 2**20


def _read_entry(path: str) -> bytes:
    """The bytes of an entry through io's capped reader (never blocked by a FIFO planted in the
    cache); OSError when it cannot be read (absent: not cached yet), ValueError when what is
    there is no entry (not a regular file, past MAX_ENTRY_BYTES)."""
    try:
        return read_capped(path, MAX_ENTRY_BYTES, "a skeleton cache entry", "")
    except Unreadable as exc:
        raise OSError(exc.line()) from None
    except AnatomyError:
        raise ValueError("not a cache entry") from None


def _read_cached(path: str, key: str) -> Skeleton | str | None:
    """The entry at path if it was written for this key: a Skeleton, or why transformers could
    not build one (so an unsupported config costs the transformers import once, not every call);
    None if absent or stale. A damaged entry is None too, with a note: it is rebuilt."""
    try:
        data = json.loads(_read_entry(path))
    except OSError:  # absent, or a cache that cannot be read: writing it will say so
        return None
    except (ValueError, RecursionError) as exc:
        note(f"ignoring the skeleton cache entry {path} ({type(exc).__name__}); building the skeleton again")
        return None
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    try:
        return _checked(str, data["unbuildable"]) if "unbuildable" in data else Skeleton.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        note(f"ignoring the skeleton cache entry {path} ({type(exc).__name__}); building the skeleton again")
        return None


def write_cached(path: str, entry: dict[str, Any]) -> None:
    """Store an entry; a cache that cannot be written (no permission, a file where its folder
    should be, a full disk) leaves the command working without it, with a note."""
    from ..io.cache_dir import write_file

    try:
        write_file(path, json.dumps(entry).encode())
    except OSError as exc:
        note(
            f"cannot write the skeleton cache in {os.path.dirname(path)} ({exc.strerror or type(exc).__name__}); continuing without it"
        )


# Failures of this machine (a broken torch, no memory), not of the config: never cached.
NOT_THE_CONFIGS_FAULT = (ImportError, OSError, MemoryError)


# Characters of transformers' message relayed (some quote the whole config).
MAX_WHY = 300


# transformers names the folder it read in its messages ("Unrecognized model in FOLDER."); the
# cache is keyed by the config's bytes alone, so its entry says this instead, and the model
# shown gets its own folder back: never another model's path, nor a temporary one.
CONFIG_FOLDER = "{config folder}"


def _config_folder(catalog: Catalog) -> str:
    """Where the model's config is, as the user named it (a GGUF's folder for a derived one)."""
    return os.path.dirname(catalog.config_file or (catalog.files[0] if catalog.files else "")) or catalog.name


def _unbuildable(catalog: Catalog, why: str) -> SkeletonUnavailable:
    """why: transformers' message (or a cached one) with CONFIG_FOLDER for the folder it read:
    this model's folder put back, escaped and cut, as it reaches the terminal."""
    why = escape(why.replace(CONFIG_FOLDER, _config_folder(catalog)))
    why = why if len(why) <= MAX_WHY else why[: MAX_WHY - 3] + "..."
    return SkeletonUnavailable(
        catalog.config_file or catalog.name,
        "a config transformers can build",
        why,
        "class names and parameter order fall back to tensor names",
    )


# torch.is_floating_point() dtypes that transformers accepts as a model's default dtype.
DTYPES_FLOATING = re.compile(r"torch\.(float(16|32|64)|bfloat16|half|double)$")


# GGUF architectures of transformers' newer GGUF path (integrations/gguf GGUF_ARCHS): a file of
# plain float tensors only loads in its half type (GgufHeader.dtype). Every other GGUF goes
# through the loader that dequantizes each tensor to float32 (F16 ones too) and loads the model
# in torch's default dtype, float32; so does a file with block types on the newer path.
GGUF_HEADER_DTYPE_ARCHS = frozenset({"qwen35", "qwen35moe", "lfm2"})
GGUF_PLAIN_FLOATS = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}  # the half type first


def _gguf_dtype(catalog: Catalog) -> str:
    from ..core.ggml_types import KEY_ARCHITECTURE

    types = {t.dtype for t in catalog.tensors}
    if catalog.metadata.get(KEY_ARCHITECTURE) in GGUF_HEADER_DTYPE_ARCHS and types <= GGUF_PLAIN_FLOATS.keys():
        return next(name for key, name in GGUF_PLAIN_FLOATS.items() if key in types or key == "F32")
    return "float32"


def weights_dtype(catalog: Catalog) -> str | None:
    """The dtype from_pretrained(dtype="auto") settles on when config.json names none, else None.

    A GGUF: float32, but see GGUF_HEADER_DTYPE_ARCHS. Other weights: transformers takes the first floating, non-fp8/fp4 dtype among the first weight
    file's tensors in name order (the first dtype if none is floating) and writes it into
    model.config, so `print(model.config)` shows it; _from_config alone would not."""
    config = catalog.config or {}
    if config.get("dtype") is not None or config.get("torch_dtype") is not None or not catalog.files:
        return None
    if catalog.format == "gguf":
        return _gguf_dtype(catalog)
    first = sorted((t for t in catalog.tensors if t.file == catalog.files[0]), key=lambda t: t.name)
    torch_names = [DTYPES[t.dtype].torch_name or "" for t in first if t.dtype in DTYPES]
    floating = [n for n in torch_names if DTYPES_FLOATING.match(n)]
    chosen = (floating or torch_names or ["torch.float32"])[0]
    return chosen.removeprefix("torch.") or None


def meta_model(config_file: str, dtype: str | None = None, experts_implementation: str | None = None) -> Any:
    """The model transformers builds for this config, on the meta device (no memory for weights);
    experts_implementation: how a mixture of experts runs (transformers' names; None: its default)."""
    import torch
    import transformers

    folder = os.path.dirname(config_file)
    # trust_remote_code stays False: a checkpoint's own Python code is never run.
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
    if dtype is not None:
        config.dtype = getattr(torch, dtype)
    options = {"experts_implementation": experts_implementation} if experts_implementation else {}
    with torch.device("meta"):
        return model_class_for(config)._from_config(config, **options)


def model_class_for(config: Any) -> Any:
    """The class a config's `architectures` names (when transformers has it), else the causal LM
    class for its model type, else the bare model: what `tree`, `trace` and `trace --run` build."""
    import transformers

    architectures = getattr(config, "architectures", None) or []
    named = (getattr(transformers, a, None) for a in architectures if isinstance(a, str))
    # Only model classes: the names come from the checkpoint, and transformers' namespace also
    # holds functions and other classes (pipeline, AutoTokenizer) that would be called with it.
    model_class = next((c for c in named if isinstance(c, type) and issubclass(c, transformers.PreTrainedModel)), None)
    if model_class is not None:
        return model_class
    try:
        return transformers.AutoModelForCausalLM._model_mapping[type(config)]
    except KeyError:
        return transformers.AutoModel._model_mapping[type(config)]


def _build(config_file: str, dtype: str | None = None) -> Skeleton:
    """Build the model on the meta device and record what transformers reports."""
    import transformers

    model = meta_model(config_file, dtype)
    every_param = list(model.named_parameters(remove_duplicate=False))
    first_name_of: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in every_param:
        if id(param) in first_name_of:
            tied[name] = first_name_of[id(param)]
        else:
            first_name_of[id(param)] = name
    persistent = {name for name in model.state_dict() if name not in dict(every_param)}
    return Skeleton(
        transformers_version=transformers.__version__,
        model_class=type(model).__name__,
        modules=tuple(
            Module(path, type(module).__name__, tuple(n for n, _ in module.named_parameters(recurse=False)))
            for path, module in model.named_modules()
        ),
        parameters=tuple(Parameter(name, tuple(p.shape)) for name, p in model.named_parameters()),
        buffers=tuple(Buffer(name, tuple(b.shape), name in persistent) for name, b in model.named_buffers()),
        tied=tied,
        config_text=str(model.config),
        config_class=type(model.config).__name__,
    )


def with_config_file(catalog: Catalog, config_bytes: bytes, build: Callable[[str], Any]) -> Any:
    """build(path of config.json): the model's own, or for a config derived from GGUF metadata
    or params.json, or one in an object store (transformers would take s3://... for a repo id),
    a temporary one (never in the model's folder), deleted once built."""
    if catalog.config_file and is_local(catalog.config_file):
        return build(catalog.config_file)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llm-anatomy-config-") as folder:
        config_file = os.path.join(folder, "config.json")
        with open(config_file, "wb") as handle:
            handle.write(config_bytes)
        return build(config_file)


def config_bytes_of(catalog: Catalog) -> bytes:
    """The bytes a skeleton is keyed by: config.json as stored, else the derived config as JSON."""
    if catalog.config_file:  # capped as when it was parsed: it may have grown since
        todo = f"fix or re-download {escape(os.path.basename(catalog.config_file))}"
        return read_capped(catalog.config_file, MAX_CONFIG_BYTES, "a config file", todo)
    return json.dumps(catalog.require_config(), indent=2, sort_keys=True).encode()


# Skeletons shipped with the package (layouts/skeletons/NAME.json), as transformers built them:
# `demo` shows class names and transformers' config printout without torch or transformers.
# tests/hf/test_shipped_skeleton.py rebuilds each with the installed transformers and compares.
SHIPPED = ("Llama-2-7b-chat-hf",)


def shipped_path(name: str) -> str:
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "replicas", "skeletons", f"{name}.json")


def shipped_skeleton(config: dict[str, Any], dtype: str | None) -> Skeleton | None:
    """The shipped skeleton built from exactly this config (and weights dtype), else None."""
    for name in SHIPPED:
        with open(shipped_path(name), encoding="utf-8") as handle:
            data = json.load(handle)
        if data["config"] == config and data["weights_dtype"] == dtype:
            return Skeleton.from_json(data)
    return None


def load_skeleton(catalog: Catalog) -> Skeleton:
    """The cached skeleton for this config, building (and caching) it when needed; without
    transformers, the shipped one when the config is one of theirs."""
    config = catalog.require_config()
    version = installed_transformers_version()
    if version is None:
        shipped = shipped_skeleton(config, weights_dtype(catalog))
        if shipped is not None:
            return shipped
        raise SkeletonUnavailable(
            catalog.name,
            "transformers for class names and parameter order",
            "it is not installed",
            "pip install 'llm-anatomy[transformers]'",
        )
    # Before transformers sees it. A config derived from GGUF metadata comes from the first file.
    refuse_to_build(config, catalog.config_file or (catalog.files[0] if catalog.files else catalog.name))
    config_bytes = config_bytes_of(catalog)
    dtype = weights_dtype(catalog)
    key = cache_key(config_bytes, version, dtype)
    path = cache_path(key)
    cached = _read_cached(path, key)
    if isinstance(cached, str):
        raise _unbuildable(catalog, cached)
    if cached is not None:
        return cached
    from ..core.notice import announced  # only when building: seconds anyway

    read_from: list[str] = []

    def build(config_file: str) -> Skeleton:  # absolute: a relative "." is no text to replace
        config_file = os.path.abspath(config_file)
        read_from.append(os.path.dirname(config_file))
        return _build(config_file, dtype)

    try:
        with announced("build"):
            skeleton = with_config_file(catalog, config_bytes, build)
    except Exception as exc:  # transformers rejects configs in many ways; say which, in one line
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if read_from:
            why = why.replace(read_from[0], CONFIG_FOLDER)
        if not isinstance(exc, NOT_THE_CONFIGS_FAULT):
            write_cached(path, {"key": key, "unbuildable": why})
        raise _unbuildable(catalog, why) from exc
    write_cached(path, {"key": key, **skeleton.to_json()})
    return skeleton


def stored_tensor_finder(catalog: Catalog, skeleton: Skeleton) -> Callable[[str], TensorInfo | FusedTensor | None]:
    """How from_pretrained finds a parameter's tensor: by its name, by the name of a weight
    tied to it, or across the base model's prefix (GPT-2's 'h.0.attn...' loaded into
    GPT2LMHeadModel's 'transformer.h.0.attn...', or 'bert.embeddings...' into BertModel),
    after its checkpoint conversion mapping renamed the stored names; a parameter it fuses
    from several stored tensors (MoE experts) is a FusedTensor of them."""
    from .conversions import fused_parameter, renamer
    from ..core.ggml_types import KEY_ARCHITECTURE

    model_type = (catalog.config or {}).get("model_type")
    gguf_arch = catalog.metadata.get(KEY_ARCHITECTURE) if catalog.format == "gguf" else None
    rename = renamer(model_type) if gguf_arch is None else None
    stored = catalog.by_name if rename is None else {rename(t.name): t for t in catalog.tensors}
    aliases = {canonical: alias for alias, canonical in skeleton.tied.items()}
    without_prefix = {name.partition(".")[2]: t for name, t in stored.items()}
    shapes = {p.name: p.shape for p in skeleton.parameters}

    def stored_tensor(name: str) -> TensorInfo | None:
        return stored.get(name) or stored.get(name.partition(".")[2]) or without_prefix.get(name)

    def find(name: str) -> TensorInfo | FusedTensor | None:
        for candidate in (name, aliases.get(name)):
            if candidate is not None:
                tensor = stored_tensor(candidate)
                if tensor is not None:
                    return tensor
        return fused_parameter(name, shapes.get(name, ()), model_type, gguf_arch, stored_tensor)

    return find
