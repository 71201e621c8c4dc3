"""The public Python API: a checkpoint seen as the model transformers would build, without loading it.

    import llm_anatomy as la
    m = la.open("meta-llama/Llama-2-7b-chat-hf")       # a folder, a weights file or a cached model id
    for name, p in m.named_parameters(): print(name, p.shape, p.dtype)
    w = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
    w[:2, -3:]                                         # a numpy array; reads only those elements

(README.md's "Python API" session is run as a doctest by tests/test_api.py.)

Names, shapes and the module tree come from the headers and the cached skeleton
(skeleton.py); values are read element by element (tensors.py), so walking a 70B model
costs megabytes. numpy is imported only when values are asked for, torch only by to_torch().
"""

from __future__ import annotations

from functools import cached_property
from math import prod

from .errors import UsageError
from .formats import open_catalog

# Everything else is imported where it is first needed: `params` (a table of the headers)
# goes through this module and must cost no more than open_catalog itself; the element
# readers (analysis.values, tensors) come in with the first values.

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Iterator

    import numpy
    import torch

    from .analysis.params import ParamListing
    from .analysis.stats import StatsReport
    from .analysis.summary import Summary
    from .analysis.tree import ModuleTree, TreeNode
    from .analysis.values import View
    from .catalog import Catalog, TensorInfo
    from .skeleton import Skeleton

__all__ = ["open", "Model", "Module", "Parameter", "Size", "SubmoduleError"]

# numpy dtype of the values of each stored (or loaded) dtype; bfloat16 and the 8-bit floats
# have no numpy type and are widened to float32, which holds each of their values exactly.
NUMPY_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "U32": "uint32",
    "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16", "F32": "float32", "F64": "float64",
    "C64": "complex64", "C128": "complex128",
}
WIDENED = "float32"  # BF16, F8_*, and GGML blocks (dequantized to float32, as transformers' GGUF loader does)


class Size(tuple):
    """A shape that prints as torch.Size does: torch.Size([4096, 4096])."""

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    def numel(self) -> int:
        return prod(self)


class SubmoduleError(UsageError, AttributeError):
    """A path get_submodule / get_parameter cannot follow. str() is torch's message
    ("LlamaModel has no attribute `foo`"), so code catching AttributeError behaves as with
    torch; line() is the project's one-line form for a command line."""

    def __init__(self, model: str, path: str, message: str) -> None:
        self.message = message
        super().__init__(model, "a path of the module tree", repr(path), message)
        self.args = (message,)  # repr() as torch's AttributeError

    def __str__(self) -> str:
        return self.message


class Parameter:
    """One parameter as the model holds it: shape, dtype, and its values read on demand.

    name: the full name named_parameters() gives it (tied weights: the first name)."""

    def __init__(self, model: "Model", name: str, shape: tuple[int, ...], tensor: "TensorInfo | None", dtype: str | None) -> None:
        self._model = model
        self.name = name
        self.shape = Size(shape)
        self.tensor = tensor  # the stored tensor it is read from; None when it is not stored under its name
        self._dtype_key = dtype  # a DTYPES key: the dtype its values have once loaded
        self._view: View | None = None

    @property
    def dtype(self) -> str:
        """torch's name of the loaded dtype: "torch.bfloat16"."""
        from .tensors import DECODERS

        key = self._dtype_key
        decoder = DECODERS.get(key) if key else None
        if decoder is not None:
            return decoder.torch_dtype
        from .dtypes import DTYPES

        return (DTYPES[key].torch_name if key in DTYPES else None) or str(key)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return prod(self.shape)

    def size(self, dim: int | None = None) -> "Size | int":
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return len(self.shape)

    def view(self) -> View:
        """The elements as the model holds them (GGUF's loader transforms applied); errors if
        transformers would convert this weight on load, as `values --style torch` does."""
        if self._view is None:
            self._view = self._model._view_of(self)
        return self._view

    def _read(self, view: View) -> "numpy.ndarray":
        import numpy

        from .analysis.values import PrintOptions, show
        from .tensors import ElementReader

        dtype = NUMPY_DTYPES.get(view.dtype or view.tensor.dtype, WIDENED)
        with ElementReader() as reader:
            shown = show(reader, view, PrintOptions(threshold=float("inf")))
            flat = numpy.fromiter(shown.values(), dtype=dtype, count=prod(view.shape))
        return flat.reshape(view.shape)

    def __getitem__(self, index: "Any") -> "numpy.ndarray":
        """w[:2, -3:]: integers, forward slices and ... as torch indexes; reads only those elements."""
        items = index if isinstance(index, tuple) else (index,)
        for item in items:
            if not (item is Ellipsis or isinstance(item, (int, slice))) or isinstance(item, bool):
                raise UsageError(self.name, "an index of integers, slices and ...", repr(item))
            if isinstance(item, slice) and item.step is not None and item.step < 1:
                raise UsageError(self.name, "a slice step of at least 1", str(item.step), "torch slices only step forwards")
        view = self.view()
        return self._read(view.index(f"{self.name}{list(items)}", items))

    def numpy(self) -> "numpy.ndarray":
        """The whole tensor, read in bounded chunks (bfloat16 and 8-bit floats as float32)."""
        return self._read(self.view())

    def to_torch(self) -> "torch.Tensor":
        """The whole tensor as a torch tensor of the loaded dtype (needs torch)."""
        from .extras import require

        require("transformers", self.name, "for to_torch()")
        import torch

        values = self.numpy()
        dtype = getattr(torch, self.dtype.removeprefix("torch."))
        if dtype == torch.bfloat16:  # the top half of the widened float32, bit for bit (torch's own cast turns NaN into 0xFFFF)
            return torch.from_numpy((values.view("uint32") >> 16).astype("uint16")).view(torch.bfloat16)
        return torch.from_numpy(values).to(dtype)

    def __str__(self) -> str:
        """Exactly what print(param) prints (torch's defaults), reading only the elements shown."""
        from .analysis.values import PrintOptions, show
        from .render.torch_values import parameter_text
        from .tensors import ElementReader

        options = PrintOptions()
        with ElementReader() as reader:
            return "".join(parameter_text(show(reader, self.view(), options), options)).removesuffix("\n")

    __repr__ = __str__


class Module:
    """A module of the model: its class name, children and parameters, navigable as nn.Module."""

    def __init__(self, model: "Model", node: TreeNode) -> None:
        self._model = model
        self._node = node

    @property
    def class_name(self) -> str | None:
        """transformers' class name ("LlamaAttention"); None when the tree is built from tensor names."""
        return self._node.class_name

    @property
    def path(self) -> str:
        return self._node.path

    def _get_name(self) -> str:
        return self._node.class_name or "Module"

    def named_children(self) -> "Iterator[tuple[str, Module]]":
        for child in self._node.children:
            yield child.name, Module(self._model, child)

    def children(self) -> "Iterator[Module]":
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> "Iterator[tuple[str, Module]]":
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> "Iterator[tuple[str, Parameter]]":
        """Module order, names relative to this module, tied weights once (as torch)."""
        seen: set[str] = set()

        def visit(node: TreeNode, at: str) -> "Iterator[tuple[str, Parameter]]":
            for p in node.parameters:
                if p.canonical not in seen:
                    seen.add(p.canonical)
                    yield at + p.name, self._model._parameter(p.canonical, p.shape)
            for child in node.children:
                yield from visit(child, f"{at}{child.name}.")

        return visit(self._node, f"{prefix}." if prefix else "")

    def parameters(self) -> "Iterator[Parameter]":
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        """sum(p.numel() for p in module.parameters()), tied weights once."""
        return self._node.total

    def get_submodule(self, target: str) -> "Module":
        """The module at a dotted path, with torch's AttributeError text for a bad one."""
        node = self._node
        for item in target.split(".") if target else ():
            child = next((c for c in node.children if c.name == item), None)
            if child is not None:
                node = child
            elif item in self._model._leaf_names(node):
                raise SubmoduleError(self._model.name, target, f"`{item}` is not an nn.Module")
            else:
                raise SubmoduleError(self._model.name, target, f"{node.class_name or 'Module'} has no attribute `{item}`")
        return Module(self._model, node)

    def get_parameter(self, target: str) -> Parameter:
        module_path, _, name = target.rpartition(".")
        node = self.get_submodule(module_path)._node
        own = next((p for p in node.parameters if p.name == name), None)
        if own is not None:
            return self._model._parameter(own.canonical, own.shape)
        if any(c.name == name for c in node.children) or name in self._model._leaf_names(node):
            raise SubmoduleError(self._model.name, target, f"`{name}` is not an nn.Parameter")
        raise SubmoduleError(self._model.name, target, f"{node.class_name or 'Module'} has no attribute `{name}`")

    def __getattr__(self, name: str) -> "Module | Parameter":
        """m.model.layers: children and parameters as attributes, as on nn.Module."""
        if name.startswith("_"):
            raise AttributeError(name)
        node = self._node
        if any(c.name == name for c in node.children) or any(p.name == name for p in node.parameters):
            return self.get_submodule(name) if any(c.name == name for c in node.children) else self.get_parameter(name)
        raise AttributeError(f"'{self._get_name()}' object has no attribute '{name}'")

    def __getitem__(self, index: int) -> "Module":
        """m.model.layers[0], as on a ModuleList."""
        children = self._node.children
        return Module(self._model, children[index])

    def __len__(self) -> int:
        return len(self._node.children)

    def __repr__(self) -> str:
        where = self.path or "(root)"
        return f"<{self._get_name()} {where}: {self.num_parameters():,} parameters>"

    def _repr_html_(self) -> str:
        """In Jupyter: the folded tree under this module with its counts, as `llm-anatomy tree --node` prints it."""
        import html

        from .render import tree as render

        # The tree's text is already free of control characters (render.text escapes names); html.escape keeps the newlines.
        return f"<pre>{html.escape(render.text(self._model.tree, self._node))}</pre>"


class Model(Module):
    """A checkpoint seen as the model transformers would build from it. Nothing is loaded:
    headers are read once by open(), values when a Parameter is indexed or printed."""

    def __init__(self, stored: "Catalog") -> None:
        self.catalog = stored  # tensors under the names the files store
        self._model = self
        self._skeleton: Skeleton | None | bool = False  # False: not looked up yet
        self._parameters: dict[str, Parameter] = {}

    @cached_property
    def tree(self) -> ModuleTree:
        """The module tree `llm-anatomy tree` shows: transformers' (class names) when it can be
        had, else the one the stored tensor names imply."""
        from .analysis.tree import build_tree

        return build_tree(self.catalog)

    @property
    def _node(self) -> TreeNode:  # type: ignore[override]
        return self.tree.root

    @cached_property
    def hf_catalog(self) -> "Catalog":
        """The tensors under transformers' names (GGUF and Meta checkpoints renamed), as from_pretrained finds them."""
        from .formats.name_maps import with_hf_names

        return with_hf_names(self.catalog)

    @cached_property
    def skeleton(self) -> "Skeleton":
        """The model as transformers builds it (cached; see skeleton.py). SkeletonUnavailable
        when transformers is missing or cannot build this config."""
        from .skeleton import load_skeleton

        return load_skeleton(self.hf_catalog)

    def parameter_listing(self, pattern: str | None = None) -> "ParamListing":
        """The record `params --style torch` renders: named_parameters() with each one's stored
        dtype, bytes and file; pattern: a shell glob over the names."""
        from .analysis.params import list_parameters

        return list_parameters(self.hf_catalog, self.skeleton, pattern)

    @property
    def name(self) -> str:
        return self.catalog.name

    @property
    def config(self) -> "dict[str, Any]":
        """config.json (or the config derived from GGUF metadata / params.json), as a dict."""
        return dict(self.catalog.require_config())

    @property
    def config_text(self) -> str:
        """Exactly str(model.config): print(m.config_text) prints what print(model.config) does."""
        from .analysis.config_view import load_config_view

        return load_config_view(self.catalog).text

    def summary(self, context: "list[int] | None" = None, batch: "list[int] | None" = None, kv_dtype: str | None = None) -> "Summary":
        """The record `llm-anatomy summary` renders: counts by component, layer and dtype; memory; KV cache."""
        from .analysis.summary import summarize

        return summarize(self.catalog, context, batch, kv_dtype)

    def stats(self, filter: str | None = None, by: str | None = None) -> "StatsReport":
        """The record `llm-anatomy stats` renders: every selected tensor read once (all cores);
        by: "layer" or "role" for one row per group. Needs numpy (the [stats] extra)."""
        from .analysis.stats import weight_stats
        from .extras import require

        require("stats", "stats", "to compute weight statistics")
        return weight_stats(self.catalog, filter, by)

    def _skeleton_or_none(self) -> "Skeleton | None":
        from .skeleton import SkeletonUnavailable

        if self._skeleton is False:
            try:
                self._skeleton = self.skeleton if self.tree.class_names else None
            except SkeletonUnavailable:
                self._skeleton = None
        return self._skeleton  # type: ignore[return-value]

    def _parameter(self, name: str, shape: tuple[int, ...]) -> Parameter:
        if name not in self._parameters:
            skeleton = self._skeleton_or_none()
            if skeleton is None:  # the tree of stored tensor names: every tensor as it is
                tensor = self.catalog.by_name.get(name)
                dtype = tensor.dtype if tensor is not None else None
            else:
                from .analysis.values import load_dtype
                from .skeleton import stored_tensor_finder
                from .tensors import CASTS, DECODERS

                if not hasattr(self, "_find"):
                    self._find = stored_tensor_finder(self.hf_catalog, skeleton)
                    self._model_dtype = load_dtype(self.hf_catalog)
                tensor = self._find(name)
                if tensor is None:  # transformers initialises it, in the dtype the model is loaded in
                    dtype = self._model_dtype or "F32"
                else:
                    dtype = self._model_dtype if tensor.dtype in CASTS and self._model_dtype else tensor.dtype
                if tensor is not None and tensor.dtype in DECODERS and DECODERS[tensor.dtype].block_elems > 1:
                    dtype = "F32"  # GGML blocks load dequantized to float32
            self._parameters[name] = Parameter(self, name, shape, tensor, dtype)
        return self._parameters[name]

    def _view_of(self, param: Parameter) -> View:
        from .analysis.values import View, gguf_loaded, parameter_view

        skeleton = self._skeleton_or_none()
        if skeleton is None:
            return View.whole(self.catalog.get(param.name))
        loaded = gguf_loaded(self.catalog) if self.catalog.format == "gguf" else None
        from .skeleton import Parameter as SkeletonParameter

        return parameter_view(self.hf_catalog, skeleton.model_class, SkeletonParameter(param.name, tuple(param.shape)), param.tensor, self._model_dtype, loaded)

    def _leaf_names(self, node: TreeNode) -> set[str]:
        """Parameters and buffers registered on this module itself: attributes that are not modules."""
        names = {p.name for p in node.parameters}
        skeleton = self._skeleton_or_none()
        if skeleton is not None:
            prefix = f"{node.path}." if node.path else ""
            names.update(b.name[len(prefix):] for b in skeleton.buffers if b.name.startswith(prefix) and "." not in b.name[len(prefix):])
        return names

    def __repr__(self) -> str:
        return f"<llm_anatomy.Model {self.name!r}: {self._get_name()}, {self.num_parameters():,} parameters, {self.catalog.format}>"


def open(model: str, revision: str | None = None) -> Model:
    """Open a checkpoint: a folder, a weights file, or a model id in the local Hugging Face
    cache (a Hub id when remote reading is on). Reads headers and config only."""
    return Model(open_catalog(str(model), revision))
