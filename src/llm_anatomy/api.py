"""The public Python API: a checkpoint seen as the model transformers would build, without loading it.

    import llm_anatomy as la
    m = la.open("meta-llama/Llama-2-7b-chat-hf")       # a folder, a weights file or a cached model id
    for name, p in m.named_parameters(): print(name, p.shape, p.dtype)
    w = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
    w[:2, -3:]                                         # a numpy array; reads only those elements

(docs/python.md's session is run as a doctest by tests/test_docs_examples.py, and the examples
in these docstrings by tests/test_docs.py, on a tiny bfloat16 Llama opened as
`m = la.open("tiny-llama")`.)

Names, shapes and the module tree come from the headers and the cached skeleton
(skeleton.py); values are read element by element (tensors.py), so walking a 70B model
costs megabytes. numpy is imported only when values are asked for, torch only by to_torch().
"""

from __future__ import annotations

from collections import namedtuple
from functools import cached_property
from math import prod

from .errors import UsageError
from .formats import open_catalog

# Everything else is imported where it is first needed: `params` (a table of the headers)
# goes through this module and must cost no more than open_catalog itself; the element
# readers (analysis.values, tensors) come in with the first values.

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    import os
    from typing import Any, Callable, Iterator, Sequence

    import numpy
    import torch

    from .analysis.config_view import ConfigView
    from .analysis.diff import HeaderDiff, ValueDiff
    from .analysis.explain import Explanation
    from .analysis.params import ParamListing
    from .analysis.stats import StatsReport
    from .analysis.summary import Summary
    from .analysis.trace import Trace
    from .analysis.trace_run import RunTrace
    from .analysis.tree import ModuleTree, TreeNode
    from .analysis.values import View
    from .catalog import Catalog, FusedTensor, TensorInfo
    from .skeleton import Skeleton

__all__ = ["open", "diff", "Model", "Module", "Parameter", "Size", "SubmoduleError", "Diff", "ReportFile"]

# numpy dtype of the values of each stored (or loaded) dtype; bfloat16 and the 8-bit floats
# have no numpy type and are widened to float32, which holds each of their values exactly.
NUMPY_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "U32": "uint32",
    "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16", "F32": "float32", "F64": "float64",
    "C64": "complex64", "C128": "complex128",
}
WIDENED = "float32"  # BF16, F8_*, and GGML blocks (dequantized to float32, as transformers' GGUF loader does)


class Size(tuple):
    """A shape that prints as torch.Size does, and is a tuple of ints.

    Examples:
        >>> size = la.Size((4096, 11008))
        >>> size, size == (4096, 11008), size.numel()
        (torch.Size([4096, 11008]), True, 45088768)
    """

    def __repr__(self) -> str:
        return f"torch.Size({list(self)})"

    def numel(self) -> int:
        """The number of elements: the product of the sizes."""
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

    Examples:
        >>> w = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
        >>> w.shape, w.dtype, w.numel(), w.size(1)
        (torch.Size([64, 64]), 'torch.bfloat16', 4096, 64)
    """

    def __init__(self, model: Model, name: str, shape: tuple[int, ...], tensor: TensorInfo | FusedTensor | None, dtype: str | None) -> None:
        self._model = model
        self.name = name
        """The full name named_parameters() gives it (tied weights: the first name)."""
        self.shape = Size(shape)
        """Its shape, as param.shape: torch.Size([4096, 4096])."""
        self.tensor = tensor
        """The stored tensor (TensorInfo: file, offset, dtype as stored) its values are read
        from; a FusedTensor of several when transformers fuses them on load (MoE experts);
        None when it is not stored (transformers initialises it)."""
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
        """The number of dimensions, as tensor.ndim."""
        return len(self.shape)

    def numel(self) -> int:
        """The number of elements, as tensor.numel()."""
        return prod(self.shape)

    def size(self, dim: int | None = None) -> Size | int:
        """The shape, or the size of one dimension, as tensor.size()."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        """The number of dimensions, as tensor.dim()."""
        return len(self.shape)

    def view(self) -> View:
        """The elements as the model holds them (GGUF's loader transforms applied); errors if
        transformers would convert this weight on load, as `values --style torch` does."""
        if self._view is None:
            self._view = self._model._view_of(self)
        return self._view

    def _read(self, view: View) -> numpy.ndarray:
        import numpy

        from .analysis.values import PrintOptions, show
        from .tensors import ElementReader

        dtype = NUMPY_DTYPES.get(view.dtype or getattr(view.tensor, "loaded", view.tensor.dtype), WIDENED)
        with ElementReader() as reader:
            shown = show(reader, view, PrintOptions(threshold=float("inf")))
            flat = numpy.fromiter(shown.values(), dtype=dtype, count=prod(view.shape))
        return flat.reshape(view.shape)

    def __getitem__(self, index: Any) -> numpy.ndarray:
        """w[:2, -3:]: integers, forward slices and ... as torch indexes; reads only those elements.

        A numpy array; bfloat16 and 8-bit floats are widened to float32, which holds each of
        their values exactly.

        Examples:
            >>> w = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
            >>> w[0, :4]
            array([-0.01733398,  0.02929688, -0.02038574,  0.01647949], dtype=float32)
        """
        items = index if isinstance(index, tuple) else (index,)
        for item in items:
            if not (item is Ellipsis or isinstance(item, (int, slice))) or isinstance(item, bool):
                raise UsageError(self.name, "an index of integers, slices and ...", repr(item))
            if isinstance(item, slice) and item.step is not None and item.step < 1:
                raise UsageError(self.name, "a slice step of at least 1", str(item.step), "torch slices only step forwards")
        view = self.view()
        return self._read(view.index(f"{self.name}{list(items)}", items))

    def numpy(self) -> numpy.ndarray:
        """The whole tensor, read in bounded chunks (bfloat16 and 8-bit floats as float32)."""
        return self._read(self.view())

    def to_torch(self) -> torch.Tensor:
        """The whole tensor as a torch tensor of the loaded dtype, bit for bit (needs torch).

        Examples:
            >>> m.get_parameter("lm_head.weight").to_torch().dtype
            torch.bfloat16
        """
        from .extras import require

        require("transformers", self.name, "for to_torch()")
        import torch

        values = self.numpy()
        dtype = getattr(torch, self.dtype.removeprefix("torch."))
        if dtype == torch.bfloat16:  # the top half of the widened float32, bit for bit (torch's own cast turns NaN into 0xFFFF)
            return torch.from_numpy((values.view("uint32") >> 16).astype("uint16")).view(torch.bfloat16)
        return torch.from_numpy(values).to(dtype)

    def __str__(self) -> str:
        """Exactly what print(param) prints (torch's defaults), reading only the elements shown.

        Examples:
            >>> print(m.model.norm.weight)
            Parameter containing:
            tensor([1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.,
                    1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.,
                    1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1., 1.,
                    1., 1., 1., 1., 1., 1., 1., 1., 1., 1.], dtype=torch.bfloat16,
                   requires_grad=True)
        """
        from .analysis.values import PrintOptions, show
        from .render.torch_values import parameter_text
        from .tensors import ElementReader

        options = PrintOptions()
        with ElementReader() as reader:
            return "".join(parameter_text(show(reader, self.view(), options), options)).removesuffix("\n")

    __repr__ = __str__


class Module:
    """A module of the model: its class name, children and parameters, navigable as nn.Module.

    Children and parameters are attributes too, and a ModuleList indexes:

    Examples:
        >>> layer = m.model.layers[0]
        >>> layer
        <LlamaDecoderLayer model.layers.0: 30,848 parameters>
        >>> [name for name, _ in layer.named_children()]
        ['self_attn', 'mlp', 'input_layernorm', 'post_attention_layernorm']
    """

    def __init__(self, model: Model, node: TreeNode) -> None:
        self._model = model
        self._node = node

    @property
    def class_name(self) -> str | None:
        """transformers' class name ("LlamaAttention"); None when the tree is built from tensor names."""
        return self._node.class_name

    @property
    def path(self) -> str:
        """Its dotted path from the model ("model.layers.0"); "" for the model itself."""
        return self._node.path

    def _get_name(self) -> str:
        return self._node.class_name or "Module"

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of each direct child, in transformers' order.

        Examples:
            >>> list(m.named_children())
            [('model', <LlamaModel model: 69,952 parameters>), ('lm_head', <Linear lm_head: 8,192 parameters>)]
        """
        for child in self._node.children:
            yield child.name, Module(self._model, child)

    def children(self) -> Iterator[Module]:
        """The direct children, as named_children() without the names."""
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(path, module) of this module and every module below it, depth first, as torch.

        Examples:
            >>> [path for path, _ in m.named_modules()][:4]
            ['', 'model', 'model.embed_tokens', 'model.layers']
        """
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) in module order, names relative to this module, tied weights once (as torch).

        Examples:
            >>> [(name, p.shape) for name, p in m.model.layers[0].self_attn.named_parameters()][:2]
            [('q_proj.weight', torch.Size([64, 64])), ('k_proj.weight', torch.Size([32, 64]))]
        """
        seen: set[str] = set()

        def visit(node: TreeNode, at: str) -> Iterator[tuple[str, Parameter]]:
            for p in node.parameters:
                if p.canonical not in seen:
                    seen.add(p.canonical)
                    yield at + p.name, self._model._parameter(p.canonical, p.shape)
            for child in node.children:
                yield from visit(child, f"{at}{child.name}.")

        return visit(self._node, f"{prefix}." if prefix else "")

    def parameters(self) -> Iterator[Parameter]:
        """The parameters, as named_parameters() without the names."""
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        """sum(p.numel() for p in module.parameters()), tied weights once.

        Examples:
            >>> m.num_parameters(), m.model.layers[0].num_parameters()
            (78144, 30848)
        """
        return self._node.total

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path, as nn.Module.get_submodule finds it.

        A bad path raises SubmoduleError (an AttributeError) with torch's own text:

        Examples:
            >>> m.get_submodule("model.layers.0.self_attn").class_name
            'LlamaAttention'
            >>> m.get_submodule("model.layers.0.self_attn.q_proj.weight")
            Traceback (most recent call last):
              ...
            llm_anatomy.api.SubmoduleError: `weight` is not an nn.Module
        """
        node = self._node
        for item in target.split(".") if target else ():
            child = next((c for c in node.children if c.name == item), None)
            if child is None:
                raise self._model._not_found(node, target, item, "nn.Module")
            node = child
        return Module(self._model, node)

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at a dotted path, as nn.Module.get_parameter finds it (torch's errors).

        Examples:
            >>> m.get_parameter("model.norm.weight").shape
            torch.Size([64])
            >>> m.get_parameter("model.norm.bias")
            Traceback (most recent call last):
              ...
            llm_anatomy.api.SubmoduleError: LlamaRMSNorm has no attribute `bias`
        """
        module_path, _, name = target.rpartition(".")
        node = self.get_submodule(module_path)._node
        own = next((p for p in node.parameters if p.name == name), None)
        if own is None:
            raise self._model._not_found(node, target, name, "nn.Parameter")
        return self._model._parameter(own.canonical, own.shape)

    def __getattr__(self, name: str) -> Module | Parameter:
        """m.model.layers: children and parameters as attributes, as on nn.Module."""
        if name.startswith("_"):
            raise AttributeError(name)
        node = self._node
        if any(c.name == name for c in node.children) or any(p.name == name for p in node.parameters):
            return self.get_submodule(name) if any(c.name == name for c in node.children) else self.get_parameter(name)
        raise AttributeError(f"'{self._get_name()}' object has no attribute '{name}'")

    def __getitem__(self, index: int) -> Module:
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
        return f"<pre>{html.escape(render.text(self._model.tree, self._node))}</pre>" + self._layer_figure()

    def _layer_figure(self) -> str:
        """The report's layer diagram, under the model and under each of its numbered layers."""
        from .analysis.report import layer_diagram
        from .render.report import layer_figure

        diagram = layer_diagram(self._model.hf_catalog)
        if diagram is None:
            return ""
        number = self.path[len(diagram.prefix) :] if self.path.startswith(diagram.prefix) else ""
        if self.path and not number.isdigit():
            return ""
        return f"<div>{layer_figure(diagram, self._model.summary().architecture)}</div>"


class Model(Module):
    """A checkpoint seen as the model transformers would build from it. Nothing is loaded:
    headers are read once by open(), values when a Parameter is indexed or printed."""

    def __init__(self, stored: Catalog, source: str | None = None) -> None:
        self.catalog = stored
        """The stored tensors (TensorInfo) under the names the files store, with the config."""
        self.source = stored.name if source is None else source
        """What was opened, as typed."""
        self._model = self
        self._skeleton: Skeleton | None | bool = False  # False: not looked up yet
        self._parameters: dict[str, Parameter] = {}
        self._meta: Any = None  # transformers' model on the meta device, built only for _has_attribute

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
    def hf_catalog(self) -> Catalog:
        """The tensors under transformers' names (GGUF and Meta checkpoints renamed), as from_pretrained finds them."""
        from .formats.name_maps import with_hf_names

        return with_hf_names(self.catalog)

    @cached_property
    def loaded_catalog(self) -> Catalog:
        """hf_catalog with each quantized weight one tensor of dequantized values (quant.dequant),
        as from_pretrained loads it on the CPU."""
        from .analysis.values import dequantized

        return dequantized(self.hf_catalog)

    @cached_property
    def skeleton(self) -> Skeleton:
        """The model as transformers builds it (cached; see skeleton.py). SkeletonUnavailable
        when transformers is missing or cannot build this config."""
        from .skeleton import load_skeleton

        return load_skeleton(self.hf_catalog)

    def parameter_listing(self, pattern: str | None = None) -> ParamListing:
        """The record `params --style torch` renders: named_parameters() with each one's stored
        dtype, bytes and file; pattern: a shell glob over the names."""
        from .analysis.params import list_parameters

        return list_parameters(self.hf_catalog, self.skeleton, pattern)

    @property
    def name(self) -> str:
        """The model's name: what was opened, or its folder or file name."""
        return self.catalog.name

    @property
    def config(self) -> dict[str, Any]:
        """config.json (or the config derived from GGUF metadata / params.json), as a dict.

        Examples:
            >>> m.config["hidden_size"], m.config["num_hidden_layers"]
            (64, 2)
        """
        return dict(self.catalog.require_config())

    @property
    def config_text(self) -> str:
        """Exactly str(model.config): print(m.config_text) prints what print(model.config) does.

        Examples:
            >>> m.config_text.splitlines()[:2]
            ['LlamaConfig {', '  "architectures": [']
        """
        return self.config_view().text

    def config_view(self) -> ConfigView:
        """The record `llm-anatomy config` renders: the config as transformers prints it after
        from_pretrained (config.json as stored, printed the same way, without transformers)."""
        from .analysis.config_view import load_config_view

        return load_config_view(self.catalog)

    def explain(self, lang: str = "en") -> Explanation:
        """The record `llm-anatomy config --explain` renders: every field with its value and what
        it means ("en" or "zh"), then the facts derived from them."""
        from .analysis.explain import explain_config

        return explain_config(self.catalog, lang)

    def summary(self, context: Sequence[int] | None = None, batch: Sequence[int] | None = None, kv_dtype: str | None = None) -> Summary:
        """The record `llm-anatomy summary` renders: counts by component, layer and dtype; memory; KV cache.

        In Jupyter it shows as tables.

        Args:
            context: context lengths of the KV cache table (default: common ones up to the model's).
            batch: batch sizes of the KV cache table (default: 1).
            kv_dtype: the KV cache's precision, e.g. "fp8" (default: the config's dtype).

        Examples:
            >>> s = m.summary()
            >>> s.total_params, [(c.name, c.params) for c in s.components]
            (78144, [('embeddings', 8192), ('attention', 24576), ('mlp', 36864), ('norms', 320), ('output head', 8192)])
        """
        from .analysis.summary import summarize

        return summarize(self.catalog, context, batch, kv_dtype)

    def stats(self, filter: str | None = None, by: str | None = None, progress: Callable[[int], None] | None = None, stored: bool = False) -> StatsReport:
        """The record `llm-anatomy stats` renders: every selected tensor read once (all cores),
        a quantized weight by its dequantized values.

        A tensor that cannot be read is listed in .errors, the others reported. Needs numpy
        (the [stats] extra).

        Args:
            filter: only tensors whose stored names match this shell glob.
            by: "layer" or "role" for one row per group instead of one per tensor.
            progress: called with the number of bytes read, as they are.
            stored: a quantized model's tensors as stored (packed words, scales), not dequantized.
        """
        from .analysis.stats import weight_stats
        from .extras import require

        require("stats", "stats", "to compute weight statistics")
        from .analysis.values import dequantized

        return weight_stats(self.catalog if stored else dequantized(self.catalog), filter, by, progress)

    def trace(self, batch: int = 1, seq: int | None = None, decode: bool = False, context: int | None = None, node: str | None = None) -> Trace:
        """The record `llm-anatomy trace` renders: one forward pass on the meta device, built from
        the config alone (no weight is read), with every module's shapes, FLOPs and activation bytes.

        Needs transformers (the [transformers] extra).

        Args:
            batch: sequences in the batch.
            seq: tokens per sequence of a prefill (default: the config's context or 2048, whichever is smaller).
            decode: one decoding step instead (a new token per sequence) over a KV cache of `context` tokens.
            context: with decode, the tokens already in the cache (default: as for seq).
            node: only this submodule and what is under it (a path as `tree` shows it).
        """
        from .analysis.trace import default_seq, trace

        if decode and context is None:
            context = default_seq(self.catalog.require_config())
        return trace(self.catalog, batch, seq, context if decode else None, node)

    def trace_run(self, text: str) -> RunTrace:
        """The record `llm-anatomy trace --run` renders: the real weights loaded on CPU (small
        models only; larger ones are refused with the numbers), text run through them once,
        and per layer the hidden-state norms, largest activations, attention entropy and logit lens.

        Args:
            text: what to tokenize (with the model's own tokenizer) and run.
        """
        from .analysis.trace_run import run_trace

        return run_trace(self.catalog, text)

    def report(self, path: str = "report.html", stats: bool = False, lang: str | None = None, progress: Callable[[int], None] | None = None, trace: bool = False, run: str | None = None) -> ReportFile:
        """Write the page `llm-anatomy report` writes (one self-contained HTML file) to path.

        A previous report there is replaced; any other file, and anything of the model (its
        folder, its files, through links too), is refused before any work.

        Args:
            path: where to write the page.
            stats: also read every weight once for the weight statistics (needs numpy).
            lang: "en" or "zh" (default: from the locale, as the CLI).
            progress: with stats, called with the number of bytes read, as they are.
            trace: also the forward pass section, as `trace` computes it (needs transformers;
                the model runs on the meta device, no weight is read).
            run: a text: also the section of `trace --run` on it (loads the weights on CPU;
                small models only).

        Returns:
            Where the page went, its size, and the tensors the statistics could not read.
        """
        import os

        from .analysis.report import build_report
        from .output_file import check_output, guard_model, write_output
        from .render.explain import language_from_locale
        from .render.html import GENERATOR
        from .render.report import render_report

        if stats:
            from .extras import require

            require("stats", "report --stats", "to compute weight statistics")
        if trace:
            from .extras import require

            require("transformers", "report --trace", "to run the forward pass on the meta device")
        catalog = self.catalog
        marker = GENERATOR.encode()  # how a page we wrote before is told from a file to leave alone
        # A single weights file protects itself, not the folder it happens to sit in. The path is
        # checked before any work, and again as the page is written.
        guard = guard_model(catalog.root, catalog.files, tuple(filter(None, [catalog.config_file])), whole_folder=not os.path.isfile(self.source))
        check_output(path, guard, marker)
        if stats:
            from .analysis.stats import weight_stats
            from .analysis.values import dequantized

            weights = weight_stats(dequantized(catalog), progress=progress)  # a quantized weight: its dequantized values
        forward = self.trace() if trace else None
        ran = self.trace_run(run) if run is not None else None
        data = render_report(build_report(catalog, lang=lang or language_from_locale(os.environ), stats=weights if stats else None, forward=forward, run=ran)).encode("utf-8")
        write_output(path, data, guard, marker)
        return ReportFile(path, len(data), weights.errors if stats else ())

    def _skeleton_or_none(self) -> Skeleton | None:
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
            if skeleton is None:  # the tree of stored tensor names: every tensor as it is, quantized ones dequantized
                tensor: TensorInfo | FusedTensor | None = self.loaded_catalog.by_name.get(name)
                dtype = getattr(tensor, "loaded", tensor.dtype) if tensor is not None else None
            else:
                from .analysis.values import load_dtype
                from .skeleton import stored_tensor_finder
                from .tensors import CASTS, DECODERS

                if not hasattr(self, "_find"):
                    self._find = stored_tensor_finder(self.loaded_catalog, skeleton)
                    self._model_dtype = load_dtype(self.hf_catalog)
                tensor = self._find(name)
                if tensor is None:  # transformers initialises it, in the dtype the model is loaded in
                    dtype = self._model_dtype or "F32"
                else:
                    dtype = self._model_dtype if tensor.dtype in CASTS and self._model_dtype else getattr(tensor, "loaded", tensor.dtype)
                if tensor is not None and not hasattr(tensor, "loaded") and tensor.dtype in DECODERS and DECODERS[tensor.dtype].block_elems > 1:
                    dtype = "F32"  # GGML blocks load dequantized to float32
            self._parameters[name] = Parameter(self, name, shape, tensor, dtype)
        return self._parameters[name]

    def _view_of(self, param: Parameter) -> View:
        from .analysis.values import View, gguf_loaded, parameter_view

        skeleton = self._skeleton_or_none()
        if skeleton is None:
            return View.whole(self.loaded_catalog.get(param.name))
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

    def _not_found(self, node: TreeNode, target: str, item: str, kind: str) -> SubmoduleError:
        """torch's AttributeError for `item` of node's module, which is not a `kind`: either it
        is another kind of attribute (a child, parameter, buffer, config, method...) or none."""
        if any(c.name == item for c in node.children) or item in self._leaf_names(node) or self._has_attribute(node.path, item):
            return SubmoduleError(self.name, target, f"`{item}` is not an {kind}")
        return SubmoduleError(self.name, target, f"{node.class_name or 'Module'} has no attribute `{item}`")

    def _has_attribute(self, path: str, item: str) -> bool:
        """hasattr() on transformers' module at path (built on the meta device, once): only a bad
        path asks, to tell a plain attribute (config, head_dim, forward) from none, as torch does.
        False when there is no transformers to ask."""
        if self._skeleton_or_none() is None:
            return False
        if self._meta is None:
            from .skeleton import config_bytes_of, meta_model, weights_dtype, with_config_file

            catalog = self.hf_catalog
            try:
                self._meta = with_config_file(catalog, config_bytes_of(catalog), lambda config: meta_model(config, weights_dtype(catalog)))
            except ImportError:  # class names from the shipped skeleton, without transformers
                return False
        return hasattr(self._meta.get_submodule(path), item)

    def __repr__(self) -> str:
        return f"<llm_anatomy.Model {self.name!r}: {self._get_name()}, {self.num_parameters():,} parameters, {self.catalog.format}>"


def open(model: str | os.PathLike[str], revision: str | None = None, *, allow_truncated: bool = False) -> Model:
    """Open a checkpoint: a folder, a weights file, or a model id in the local Hugging Face
    cache (read from the Hub when it is not there). Reads headers and config only.

    Args:
        model: what to open, as `llm-anatomy` takes it.
        revision: branch, tag or commit of a model id.
        allow_truncated: list the tensors of a safetensors file cut short too, so stats()
            and diff() report each unreadable one as an error and go on (as the CLI's stats
            and diff do); otherwise such a file is refused.

    Raises:
        AnatomyError: bad input (the CLI's exit 1), with the CLI's one-line message.
        UsageError: a bad request (the CLI's exit 2), such as a model id that is not there.

    Examples:
        >>> m = la.open("tiny-llama")
        >>> m
        <llm_anatomy.Model 'tiny-llama': LlamaForCausalLM, 78,144 parameters, safetensors>
    """
    source = str(model)
    return Model(open_catalog(source, revision, allow_truncated), source)


class Diff(namedtuple("Diff", "header values")):
    """What `llm-anatomy diff` renders. header: a HeaderDiff (tensors only in one, shape,
    dtype and config changes, from the headers); values: a ValueDiff of the shared tensors
    (relative change, cosine, max difference, bit-identical), or None when not compared yet.
    str() is the CLI's text."""

    __slots__ = ()
    header: HeaderDiff
    values: ValueDiff | None

    def with_values(self, progress: Callable[[int], None] | None = None) -> Diff:
        """This diff with the shared tensors compared by value: each byte read once, on all cores."""
        from .analysis.diff import compare_values

        return self._replace(values=compare_values(self.header, progress))

    def __str__(self) -> str:
        from .render import diff as render

        return render.header_text(self.header) + "\n" + ("" if self.values is None else render.values_text(self.values))


class ReportFile(namedtuple("ReportFile", "path nbytes errors")):
    """A page Model.report() wrote: its path, its size in bytes, and (name, error line) of each
    tensor the statistics could not read (the page lists them too)."""

    __slots__ = ()
    path: str
    nbytes: int
    errors: tuple[tuple[str, str], ...]


def diff(a: Model | str | os.PathLike[str], b: Model | str | os.PathLike[str], filter: str | None = None, *, hf_names: bool = False, values: bool = True, progress: Callable[[int], None] | None = None, stored: bool = False) -> Diff:
    """What changed between two checkpoints, as `llm-anatomy diff`.

    Args:
        a: the first model: a Model, or what open() takes.
        b: the second model.
        filter: only tensors whose names match this shell glob.
        hf_names: compare under Hugging Face names, so a GGUF pairs with its original.
        values: False to compare the headers only (then Diff.with_values() reads the values).
        progress: called with the number of bytes read, as they are.
        stored: compare quantized weights' stored tensors, not their dequantized values.

    Comparing values needs numpy (the [stats] extra).

    Examples:
        >>> d = la.diff(m, "tiny-llama")
        >>> d.header.only_a, d.values.identical
        ((), 21)
    """
    from .analysis.diff import compare_headers

    if values:
        from .extras import require

        require("stats", "diff", "to compare tensor values")
    models = [side if isinstance(side, Model) else open(side, allow_truncated=True) for side in (a, b)]
    catalogs = [m.hf_catalog if hf_names else m.catalog for m in models]
    if not stored:  # quantized weights by their dequantized values: diff(model, model_fp8) is the quantization error
        from .analysis.values import dequantized

        catalogs = [dequantized(c) for c in catalogs]
    found = Diff(compare_headers(catalogs[0], catalogs[1], filter), None)
    return found.with_values(progress) if values else found
