"""The public Python API: a checkpoint seen as the model transformers would build, without loading it.

    import llm_anatomy as la
    m = la.open("meta-llama/Llama-2-7b-chat-hf")       # a folder, a weights file or a cached model id
    for name, p in m.named_parameters(): print(name, p.shape, p.dtype)
    w = m.get_parameter("model.layers.0.self_attn.q_proj.weight")
    w[:2, -3:]                                         # a numpy array; reads only those elements

(docs/python.md's session is run as a doctest by tests/project/test_docs_examples.py, and the examples
in these docstrings by tests/project/test_docs.py, on a tiny bfloat16 Llama opened as
`m = la.open("tiny-llama")`.)

Names, shapes and the module tree come from the headers and the cached skeleton
(skeleton.py); values are read element by element (tensors.py), so walking a 70B model
costs megabytes. numpy is imported only when values are asked for, torch only by to_torch().
"""

from __future__ import annotations

from collections import namedtuple
from functools import cached_property, partial
from math import prod

from .core.errors import AnatomyError, UsageError
from .locate import open_catalog

# Everything else is imported where it is first needed: `params` (a table of the headers)
# goes through this module and must cost no more than open_catalog itself; the element
# readers (analysis.values, tensors) come in with the first values.

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    import os
    from typing import Any, Callable, Iterator, KeysView, Sequence, overload

    import numpy
    import torch
    from numpy import ndarray  # in classes whose numpy() method hides the module

    from .analysis.adapter import Adapter
    from .analysis.config_view import ConfigView
    from .analysis.inventory import Row as InventoryRow
    from .analysis.diff import HeaderDiff, ValueDiff
    from .analysis.explain import Explanation
    from .analysis.params import ParamListing
    from .analysis.stats import StatsReport
    from .analysis.summary import Summary
    from .analysis.trace import Trace
    from .analysis.trace_run import RunTrace
    from .analysis.tree import ModuleTree, TreeNode
    from .analysis.verify import Verification
    from .analysis.values import View
    from .core.catalog import Catalog, FusedTensor, TensorInfo
    from .hf.skeleton import Skeleton

__all__ = [
    "open",
    "diff",
    "inventory",
    "Inventory",
    "Model",
    "Module",
    "Parameter",
    "Buffer",
    "Reshaped",
    "Config",
    "StateDict",
    "Size",
    "DType",
    "Device",
    "SubmoduleError",
    "Diff",
    "ReportFile",
]

# numpy dtype of the values of each stored (or loaded) dtype; bfloat16 and the 8-bit floats
# have no numpy type and are widened to float32, which holds each of their values exactly.
NUMPY_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "C128": "complex128",
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


class DType(str):
    """A dtype as torch names it: a str ("torch.bfloat16") whose repr is torch's (torch.bfloat16),
    equal to that string and to the torch.dtype itself.

    Examples:
        >>> dtype = m.get_parameter("lm_head.weight").dtype
        >>> dtype, dtype == "torch.bfloat16", dtype.is_floating_point
        (torch.bfloat16, True, True)
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        if (
            type(other).__name__ == "dtype" and type(other).__module__ == "torch"
        ):  # torch.bfloat16, without importing torch
            return str(other) == str(self)
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__

    @property
    def is_floating_point(self) -> bool:
        """As torch.dtype.is_floating_point: the float types (8-bit ones too), not complex."""
        return "float" in self

    @property
    def is_complex(self) -> bool:
        return "complex" in self


class Device(str):
    """A device as torch names it: a str ("cpu") whose repr is torch's (device(type='cpu'))."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"device(type={str(self)!r})"

    @property
    def type(self) -> str:
        return str(self)


# Where the values of a parameter are, as torch would say it. A Parameter holds no tensor: its
# values are read into CPU memory when asked for (numpy(), to_torch(), indexing), and
# from_pretrained without a device_map puts the model on the CPU, so a tutorial's `p.device`
# reads as it does there; "meta" would wrongly say that no value can be had.
CPU = Device("cpu")


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
        (torch.Size([64, 64]), torch.bfloat16, 4096, 64)
    """

    def __init__(
        self,
        model: Model,
        name: str,
        shape: tuple[int, ...],
        tensor: TensorInfo | FusedTensor | None,
        dtype: str | None,
    ) -> None:
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
    def dtype(self) -> DType:
        """torch's name of the loaded dtype: torch.bfloat16 (a DType: a str that prints as torch's dtype)."""
        from .decode.elements import DECODERS

        key = self._dtype_key
        decoder = DECODERS.get(key) if key else None
        if decoder is not None:
            return DType(decoder.torch_dtype)
        from .core.dtypes import DTYPES

        return DType((DTYPES[key].torch_name if key in DTYPES else None) or str(key))

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

    if TYPE_CHECKING:  # typing's overload only for type checkers: the header-only path does not import typing

        @overload
        def view(self) -> View: ...

        @overload
        def view(self, *shape: int | Sequence[int]) -> Reshaped: ...

    def view(self, *shape: int | Sequence[int]) -> View | Reshaped:
        """p.view(-1), p.view(4, 16): the same elements in another shape (one size may be -1),
        lazily, as tensor.view: a Reshaped that reads only the elements it is indexed with.

        With no shape: the View of stored elements that indexing and printing read through,
        with GGUF's loader transforms applied; it errors if transformers would convert this
        weight on load, as `values --style torch` does.

        Examples:
            >>> flat = m.get_parameter("model.layers.0.self_attn.q_proj.weight").view(-1)
            >>> flat.shape, flat[5]
            (torch.Size([4096]), array(-0.00126648, dtype=float32))
        """
        if shape:
            return self.reshape(*shape)
        if self._view is None:
            self._view = self._model._view_of(self)
        return self._view

    def _read(self, view: View) -> numpy.ndarray:
        from .core.extras import require

        require("stats", self.name, "to return values as arrays")  # MissingExtra, as the commands say it
        import numpy

        from .analysis.values import PrintOptions, show
        from .decode.elements import ElementReader

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
        from .analysis.values import check_items, index_target

        items = check_items(self.name, index if isinstance(index, tuple) else (index,))
        return self._read(self.view().index(index_target(self.name, items), items))

    def numpy(self) -> numpy.ndarray:
        """The whole tensor, read in bounded chunks (bfloat16 and 8-bit floats as float32)."""
        return self._read(self.view())

    def to_torch(self) -> torch.Tensor:
        """The whole tensor as a torch tensor of the loaded dtype, bit for bit (needs torch).

        Examples:
            >>> m.get_parameter("lm_head.weight").to_torch().dtype
            torch.bfloat16
        """
        from .core.extras import require

        require("transformers", self.name, "for to_torch()")
        import torch

        values = self.numpy()
        dtype = getattr(torch, self.dtype.removeprefix("torch."))
        if (
            dtype == torch.bfloat16
        ):  # the top half of the widened float32, bit for bit (torch's own cast turns NaN into 0xFFFF)
            return torch.from_numpy((values.view("uint32") >> 16).astype("uint16")).view(torch.bfloat16)
        return torch.from_numpy(values).to(dtype)

    @property
    def requires_grad(self) -> bool:
        """As from_pretrained gives it: True for float (and complex) parameters, which are trainable;
        torch allows no gradient on integer ones."""
        return self.dtype.is_floating_point or self.dtype.is_complex

    @property
    def device(self) -> Device:
        """cpu, as after from_pretrained without a device_map: the values, once read, are in CPU memory."""
        return CPU

    def reshape(self, *shape: int | Sequence[int]) -> Reshaped:
        """p.reshape(4, -1): as view(); a parameter's elements are in one row-major order, so it never copies."""
        return Reshaped(self, _new_shape(self.name, self.numel(), shape))

    def flatten(self) -> Reshaped:
        """p.flatten(): reshape(-1) (a 0-d parameter becomes one element)."""
        return self.reshape(-1)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> ndarray:
        """np.asarray(p): numpy() (the whole tensor read), in dtype if asked for. copy=False
        cannot be honoured (the values are read from the file into a new array) and says so."""
        return _as_array(self.name, self.numpy, dtype, copy)

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
        from .decode.elements import ElementReader

        options = PrintOptions()
        with ElementReader() as reader:
            return "".join(parameter_text(show(reader, self.view(), options), options)).removesuffix("\n")

    __repr__ = __str__

    _merged_by: Model | None = None  # the adapter whose merge this base weight shows (Model.get_parameter)

    def merged(self, *index: Any) -> ndarray:
        """For a base weight got from an adapter opened with open(adapter, base=...): its values
        after PEFT's merge_and_unload() (W + scaling * B @ A), computed as PEFT computes them
        for only the elements asked: p.merged() the whole weight, p.merged(0, slice(0, 8)) as
        p[0, :8]. A numpy array (bfloat16 widened to float32); needs numpy (the [stats] extra)."""
        opened = self._merged_by
        adapter = None if opened is None else opened.adapter
        base = None if opened is None else opened.base
        if adapter is None or base is None:
            raise UsageError(
                self.name,
                "a base weight from open(adapter, base=...).get_parameter()",
                "a parameter of a model",
                "open the adapter with its base",
            )
        from .analysis.adapter import require_mergeable
        from .core.extras import require

        require_mergeable(adapter)
        require("stats", self.name, "to return values as arrays")
        import numpy

        from .analysis.adapter import merge_base, merged_shown
        from .analysis.values import PrintOptions, check_items, index_target
        from .decode.elements import ElementReader

        target = self.name if not index else index_target(self.name, check_items(self.name, index))
        with ElementReader() as reader:
            shown = merged_shown(
                reader, adapter, merge_base(base.catalog, base.hf_catalog), target, PrintOptions(threshold=float("inf"))
            )
            dtype = NUMPY_DTYPES.get(shown.tensor.dtype, WIDENED)
            return numpy.fromiter(shown.values(), dtype=dtype, count=prod(shown.shape)).reshape(shown.shape)


def _new_shape(name: str, numel: int, shape: tuple[int | Sequence[int], ...]) -> Size:
    """The shape view(*shape) asks for (one -1 inferred), or torch's error in one line."""
    given = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape
    if not all(isinstance(size, int) and not isinstance(size, bool) for size in given):
        raise UsageError(name, "a shape of integers, as tensor.view takes", repr(shape))
    sizes: tuple[int, ...] = given  # type: ignore[assignment]  # integers, as just checked
    known = prod(size for size in sizes if size != -1)
    if sizes.count(-1) > 1 or any(size < -1 for size in sizes):
        raise UsageError(name, "a shape with sizes of at least 0 and at most one -1", repr(list(sizes)))
    if -1 in sizes:
        if known == 0 or numel % known:
            raise UsageError(
                name, f"a shape of {numel} elements", repr(list(sizes)), "one size may be -1, to be inferred"
            )
        sizes = tuple(numel // known if size == -1 else size for size in sizes)
    elif known != numel:
        raise UsageError(name, f"a shape of {numel} elements", repr(list(sizes)), "one size may be -1, to be inferred")
    return Size(sizes)


def _as_array(name: str, read: Callable[[], numpy.ndarray], dtype: Any, copy: bool | None) -> numpy.ndarray:
    """numpy's __array__ protocol (numpy 2's copy argument included) over a read of every value."""
    if copy is False:
        raise ValueError(
            f"{name}: expected copy=None or True, found copy=False; its values are read from the file into a new array, never shared (np.asarray(p) reads them)"
        )
    values = read()
    return values if dtype is None else values.astype(dtype, copy=False)


class Reshaped:
    """A parameter's elements in another shape (p.view(-1), p.reshape(4, -1)): nothing is read
    until it is indexed, and indexing reads only the elements asked for (through the
    parameter's own indexing, so its values are exactly the parameter's).

    Examples:
        >>> rows = m.get_parameter("model.norm.weight").view(4, 16)
        >>> rows
        <view of model.norm.weight: torch.Size([4, 16]), torch.bfloat16>
        >>> rows[1, :3]
        array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, parameter: Parameter, shape: Size) -> None:
        self.parameter = parameter
        """The parameter whose elements these are."""
        self.shape = shape
        """The new shape, as torch.Size."""

    @property
    def dtype(self) -> DType:
        return self.parameter.dtype

    @property
    def device(self) -> Device:
        return self.parameter.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return self.shape.numel()

    def size(self, dim: int | None = None) -> Size | int:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return len(self.shape)

    def view(self, *shape: int | Sequence[int]) -> Reshaped:
        """A view of the view: the same elements in yet another shape."""
        return Reshaped(self.parameter, _new_shape(self.parameter.name, self.numel(), shape))

    reshape = view

    def numpy(self) -> numpy.ndarray:
        """Every element, in this shape (the parameter read whole)."""
        return self.parameter.numpy().reshape(self.shape)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> ndarray:
        return _as_array(self.parameter.name, self.numpy, dtype, copy)

    def __getitem__(self, index: Any) -> ndarray:
        """v[5], v[1, :3]: integers, forward slices and ... as torch indexes; reads only those elements."""
        from .core.extras import require

        require("stats", self.parameter.name, "to return values as arrays")
        import numpy

        from .analysis.values import View

        items = index if isinstance(index, tuple) else (index,)
        for item in items:
            if not (item is Ellipsis or isinstance(item, (int, slice))) or isinstance(item, bool):
                raise UsageError(self.parameter.name, "an index of integers, slices and ...", repr(item))
            if isinstance(item, slice) and item.step is not None and item.step < 1:
                raise UsageError(
                    self.parameter.name, "a slice step of at least 1", str(item.step), "torch slices only step forwards"
                )
        # The element positions asked for, in the parameter's row-major order: its flat index.
        shape = tuple(self.shape)
        row_major = View(self.parameter.name, None, shape, tuple(prod(shape[d + 1 :]) for d in range(len(shape))), 0)
        picked = row_major.index(f"{self.parameter.name}.view({list(self.shape)}){list(items)}", items)
        flat = numpy.full(picked.shape, picked.offset, dtype=numpy.int64)
        for dim, (size, stride) in enumerate(zip(picked.shape, picked.strides)):
            flat += (numpy.arange(size, dtype=numpy.int64) * stride).reshape(
                [size if d == dim else 1 for d in range(len(picked.shape))]
            )
        wanted, where = numpy.unique(flat.ravel(), return_inverse=True)
        return _gather(self.parameter, (), tuple(self.parameter.shape), wanted)[where].reshape(picked.shape)

    def __repr__(self) -> str:
        return f"<view of {self.parameter.name}: {self.shape!r}, {self.dtype!r}>"


class Buffer(Parameter):
    """A buffer of the model (rotary inv_freq, BERT's position_ids): shape and dtype as
    named_buffers() gives them. Its values can be read only when the checkpoint stores them;
    most buffers are computed by transformers when it builds the model, and then reading says so."""

    def __init__(
        self, model: Model, name: str, shape: tuple[int, ...], tensor: TensorInfo | FusedTensor | None, persistent: bool
    ) -> None:
        stored_dtype = getattr(tensor, "loaded", tensor.dtype) if tensor is not None else None
        super().__init__(model, name, shape, tensor, stored_dtype)
        self.persistent = persistent
        """Whether state_dict() holds it (register_buffer's persistent)."""

    @property
    def dtype(self) -> DType:
        """Its dtype in transformers' model (asked of the model it builds on the meta device:
        a buffer's dtype is the model's choice, not the file's); the stored one without transformers."""
        try:
            return DType(str(self._model._meta_model().get_buffer(self.name).dtype))
        except ImportError:
            if self.tensor is None:
                raise UsageError(
                    self.name,
                    "transformers, to tell the dtype of a buffer it computes",
                    "no transformers",
                    "pip install 'llm-anatomy[transformers]'",
                ) from None
            return super().dtype

    @property
    def requires_grad(self) -> bool:
        """False: buffers are not trained."""
        return False

    def _stored(self) -> None:
        if self.tensor is None:
            raise AnatomyError(
                self._model.name,
                f"buffer {self.name} in the checkpoint",
                "none stored",
                "transformers computes it when it builds the model; read it there (from_pretrained)",
            )

    def __getitem__(self, index: Any) -> numpy.ndarray:
        self._stored()
        return super().__getitem__(index)

    def numpy(self) -> numpy.ndarray:
        self._stored()
        return super().numpy()

    def __str__(self) -> str:
        """What print(buffer) prints: a plain tensor (no requires_grad), read as a parameter is."""
        from .analysis.values import PrintOptions, show
        from .render.torch_values import tensor_text
        from .decode.elements import ElementReader

        self._stored()
        options = PrintOptions()
        with ElementReader() as reader:
            return "".join(tensor_text(show(reader, self.view(), options), options))

    def __repr__(self) -> str:
        return f"<buffer {self.name}: {self.shape!r}>"


class StateDict:
    """module.state_dict() without loading: name -> Parameter (a Buffer for a persistent buffer),
    in torch's order. Keys come from the module tree; each value is made when it is looked up,
    and reads nothing until its values are asked for. A read-only mapping (dict(sd) copies it);
    not a collections.abc.Mapping subclass, whose import the header-only commands would pay."""

    def __init__(self, model: Model, entries: list[tuple[str, str, tuple[int, ...], bool]]) -> None:
        self._model = model
        self._entries = {key: (name, shape, buffer) for key, name, shape, buffer in entries}

    def __getitem__(self, key: str) -> Parameter:
        name, shape, buffer = self._entries[key]
        if buffer:
            return dict(self._model._buffers_under(""))[name]
        return self._model._parameter(name, shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> KeysView[str]:
        return self._entries.keys()

    def values(self) -> Iterator[Parameter]:
        for key in self._entries:
            yield self[key]

    def items(self) -> Iterator[tuple[str, Parameter]]:
        for key in self._entries:
            yield key, self[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._entries else default

    def __repr__(self) -> str:
        keys = list(self._entries)
        shown = f"{keys[0]!r} ... {keys[-1]!r}" if len(keys) > 2 else ", ".join(map(repr, keys))
        return f"<state_dict of {self._model.name}: {len(keys)} tensors, {shown}>"


class Config(dict):  # type: ignore[type-arg]  # dict[str, Any]
    """model.config: config.json as the dict it is (m.config["hidden_size"]), its keys as
    attributes (m.config.hidden_size), printing exactly what print(model.config) prints.

    An attribute config.json lacks is what transformers prints (a value it derives, such as
    head_dim), else what transformers' config holds (a default of its class: asked of
    transformers, when it is installed); a nested config (text_config) is a Config too.
    """

    def __init__(self, values: dict[str, Any], model: Model | None = None) -> None:
        super().__init__(values)
        self._model = model
        self._view: ConfigView | None = None

    def _printed(self) -> ConfigView:
        if self._view is None:
            if self._model is not None:
                self._view = self._model.config_view()
            else:  # a nested config: as stored, under transformers' generic name
                from .analysis.config_view import BASE_CONFIG_CLASS, ConfigView, printout

                self._view = ConfigView(
                    "", BASE_CONFIG_CLASS, dict(self), printout(BASE_CONFIG_CLASS, dict(self)), False
                )
        return self._view

    def __getattr__(self, name: str) -> Any:
        if name in self:
            value = self[name]
            return Config(value) if isinstance(value, dict) and "model_type" in value else value
        # Private names (IPython's _repr_*_ probes, numpy's __array_interface__) never ask transformers.
        if name.startswith("_") or self._model is None:
            raise AttributeError(f"'{self._printed().class_name}' object has no attribute '{name}'")
        view = self._printed()
        if name in view.values:
            return view.values[name]
        try:
            config = self._model._meta_model().config
        except ImportError:
            raise AttributeError(
                f"'{view.class_name}' object has no attribute '{name}' in config.json or what transformers prints; its class's defaults need transformers (pip install 'llm-anatomy[transformers]')"
            ) from None
        except AnatomyError as exc:  # transformers cannot build this config: hasattr() must still answer
            raise AttributeError(
                f"'{view.class_name}' object has no attribute '{name}' in config.json or what transformers prints ({exc.line()})"
            ) from None
        try:
            return getattr(config, name)
        except AttributeError:
            raise AttributeError(f"'{view.class_name}' object has no attribute '{name}'") from None

    def __repr__(self) -> str:
        """str(model.config): the class name, then the values transformers shows as sorted JSON
        (ending in a newline, as transformers' does; print() adds one more)."""
        return self._printed().text

    __str__ = __repr__


# When the span from the first to the last wanted element holds at most this many elements per
# wanted one, it is read at once; sparser ones are read row by row (or element by element).
DENSE = 4


def _gather(
    parameter: Parameter, prefix: tuple[int, ...], shape: tuple[int, ...], flat: numpy.ndarray
) -> numpy.ndarray:
    """The values at sorted flat positions of parameter[prefix] (of this shape), read as
    parameter slices: one read of the span from the first to the last position when it is
    dense enough, else one per index of the first dimension that holds a wanted position
    (one per position in the last dimension)."""
    import numpy

    if not shape:
        return numpy.asarray(parameter[prefix] if prefix else parameter.numpy()).reshape(1)[flat]
    if not len(flat):  # nothing wanted: an empty read, for the dtype
        return parameter[prefix + (slice(0, 0),)].reshape(-1)
    block = prod(shape[1:])
    rows = flat // block
    first, last = int(rows[0]), int(rows[-1])
    if first == last and len(shape) > 1:  # all in one row: only the part of it they span
        return _gather(parameter, prefix + (first,), shape[1:], flat - first * block)
    if (last - first + 1) * block <= DENSE * len(flat):
        return parameter[prefix + (slice(first, last + 1),)].reshape(-1)[flat - first * block]
    if len(shape) == 1:  # far apart in one row: each on its own
        return numpy.concatenate([parameter[prefix + (int(i),)].reshape(1) for i in flat])
    starts = numpy.flatnonzero(numpy.diff(rows, prepend=-1))
    parts = [
        _gather(parameter, prefix + (int(rows[a]),), shape[1:], flat[a:b] - int(rows[a]) * block)
        for a, b in zip(starts, [*starts[1:], len(flat)])
    ]
    return numpy.concatenate(parts)


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
            yield child.name, self._model._module(child)

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

    def modules(self) -> Iterator[Module]:
        """This module and every module below it, as named_modules() without the paths."""
        for _, module in self.named_modules():
            yield module

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Buffer]]:
        """(name, buffer) of every buffer under this module, persistent or not, in torch's order
        (rotary inv_freq, BERT's position_ids...); none when the tree is built from tensor names.

        Examples:
            >>> [(name, b.shape, b.persistent) for name, b in m.named_buffers()]
            [('model.rotary_emb.inv_freq', torch.Size([8]), False), ('model.rotary_emb.original_inv_freq', torch.Size([8]), False)]
        """
        at = f"{prefix}." if prefix else ""
        for name, buffer in self._model._buffers_under(self.path):
            yield at + name, buffer

    def buffers(self) -> Iterator[Buffer]:
        """The buffers, as named_buffers() without the names."""
        for _, buffer in self.named_buffers():
            yield buffer

    def state_dict(self) -> StateDict:
        """name -> Parameter (or persistent Buffer), as module.state_dict() names them and in its
        order: each module's own parameters, then its persistent buffers, module by module;
        a tied weight under each of its names. Lazy: nothing is read until a value is asked for.

        Examples:
            >>> sd = m.state_dict()
            >>> len(sd), list(sd)[:2], sd["lm_head.weight"].shape
            (21, ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight'], torch.Size([128, 64]))
        """
        return StateDict(self._model, self._state_names())

    def _state_names(self) -> list[tuple[str, str, tuple[int, ...], bool]]:
        """(key, full name, shape, is a buffer) of each state_dict() entry, in torch's order."""
        persistent: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for name, buffer in self._model._buffers_under(self.path):
            if buffer.persistent:
                persistent.setdefault(buffer.name.rpartition(".")[0], []).append((name, tuple(buffer.shape)))
        entries = []
        for path, module in self.named_modules():
            at = f"{path}." if path else ""
            entries += [(at + p.name, p.canonical, tuple(p.shape), False) for p in module._node.parameters]
            entries += [
                (name, name if not self.path else f"{self.path}.{name}", shape, True)
                for name, shape in persistent.get(module.path, ())
            ]
        return entries

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
        if not target:
            return self  # as torch: the module itself
        node = self._node
        for item in target.split("."):
            child = next((c for c in node.children if c.name == item), None)
            if child is None:
                raise self._model._not_found(node, target, item, "nn.Module")
            node = child
        return self._model._module(node)

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
        return self._model._module(children[index])

    def __len__(self) -> int:
        return len(self._node.children)

    def __repr__(self) -> str:
        where = self.path or "(root)"
        return f"<{self._get_name()} {where}: {self.num_parameters():,} parameters>"

    def _repr_html_(self) -> str:
        """In Jupyter: the folded tree under this module with its counts, as `llm-anatomy tree --node` prints it."""
        from .render import tree as render
        from .render.html import notebook, pre

        # A <pre> that keeps its columns in any notebook or export (monospace, never wrapped), and
        # the figure with the report's styles (render.html.notebook).
        return notebook(pre(render.text(self._model.tree, self._node)) + self._layer_figure())

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
        return f'<div class="figure">{layer_figure(diagram, self._model.summary().architecture)}</div>'


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
        self._classes: dict[tuple[str, type], type] = {}  # transformers' class name -> its Module subclass
        self._buffers: dict[str, Buffer] = {}

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
    def adapter(self) -> Adapter | None:
        """For a PEFT LoRA adapter (adapter_config.json and its weights), what it does to its base
        model: the modules it adapts with rank, alpha and scaling, its trainable parameters
        (analysis.adapter.Adapter); None for a model."""
        from .analysis.adapter import describe, is_adapter

        return describe(self.catalog) if is_adapter(self.catalog) else None

    base: Model | None = None
    """For an adapter opened with open(adapter, base=...), the base model; else None."""

    def get_parameter(self, target: str) -> Parameter:
        """As Module.get_parameter; for an adapter opened with its base, a name the adapter does not
        store is the base's parameter, whose merged() gives it as PEFT's merge leaves it."""
        if self.base is None:
            return super().get_parameter(target)
        try:
            return super().get_parameter(target)
        except SubmoduleError:
            found = self.base.get_parameter(target)
        merged = Parameter(self.base, found.name, tuple(found.shape), found.tensor, found._dtype_key)
        merged._merged_by = self
        return merged

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """As Module.named_parameters; for a PEFT adapter opened with its base, the parameters of
        the model PEFT builds from them (get_peft_model, PeftModel.from_pretrained), under its
        names and in its order: base_model.model.<the base's name>, an adapted layer's base weight
        as base_layer.weight followed by its lora_A.default.weight, lora_B.default.weight, ...,
        a modules_to_save weight as original_module.weight and modules_to_save.default.weight."""
        base = self.base
        adapter = self.adapter if base is not None and not prefix else None
        if base is None or adapter is None or adapter.source != "peft":
            yield from super().named_parameters(prefix)
            return
        from .hf import peft

        adapted = {m.name: m for m in adapter.modules}
        saved = {t.name: t for t in adapter.saved}
        base_params = list(base.named_parameters())
        last_of = {name.rpartition(".")[0]: name for name, _ in base_params}  # a layer's last parameter
        for name, parameter in base_params:
            layer, _, leaf = name.rpartition(".")
            if layer in adapted:
                yield f"{peft.PREFIX}{layer}.{peft.BASE_LAYER}.{leaf}", parameter
                if last_of[layer] == name:
                    tensors = adapted[layer].tensors
                    for role, part in peft.LAYER_PARAMETERS.items():
                        if role in tensors:
                            full = f"{peft.PREFIX}{layer}.{part.format(adapter=peft.ADAPTER_NAME)}"
                            yield full, self._adapter_parameter(full, tensors[role])
            elif name in saved:
                yield f"{peft.PREFIX}{layer}.{peft.SAVED_ORIGINAL}.{leaf}", parameter
                full = f"{peft.PREFIX}{layer}.{peft.SAVED_COPY.format(adapter=peft.ADAPTER_NAME)}.{leaf}"
                yield full, self._adapter_parameter(full, saved[name])
            else:
                yield peft.PREFIX + name, parameter

    def _adapter_parameter(self, name: str, tensor: TensorInfo) -> Parameter:
        """A stored tensor of this adapter as a parameter of the model PEFT builds, named `name`."""
        return Parameter(self, name, tuple(tensor.shape), tensor, tensor.dtype)

    def local_base(self) -> Model | None:
        """The adapter's base_model_name_or_path opened, when it is a folder here or a model whole
        in the local Hugging Face cache (never the network); None otherwise."""
        import os

        from .locate import cached_copy

        name = self.adapter.base_model if self.adapter is not None else None
        if name is None:
            return None
        try:
            if not os.path.exists(name):
                cached_copy(name, None)
            return open(name)
        except AnatomyError as error:  # not here, or not readable: the adapter is still shown
            from .core.errors import note

            if os.path.exists(name):
                note(f"the adapter's base_model_name_or_path is not read: {error.line()}")
            return None

    def check_base(self, base: Model) -> list[AnatomyError]:
        """Every way `base` does not fit this adapter, one error each (empty: it fits), from the
        headers: targeted modules the base lacks, in/out features, modules_to_save shapes."""
        from .analysis.adapter import check_base

        if self.adapter is None:
            raise UsageError(self.name, "a PEFT adapter to check a base against", "a model", "open the adapter")
        return check_base(self.adapter, base.loaded_catalog)  # quantized weights by their logical shapes

    @cached_property
    def hf_catalog(self) -> Catalog:
        """The tensors under transformers' names (GGUF and Meta checkpoints renamed), as from_pretrained finds them."""
        from .hf.names import with_hf_names

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
        from .hf.skeleton import load_skeleton

        return load_skeleton(self.hf_catalog)

    def parameter_listing(self, pattern: str | None = None) -> ParamListing:
        """The record `params --style torch` renders: named_parameters() with each one's stored
        dtype, bytes and file; pattern: a shell glob over the names."""
        from .analysis.params import list_parameters

        return list_parameters(self.hf_catalog, self.skeleton, pattern)

    @property  # type: ignore[misc]  # read-only: the class follows from the checkpoint
    def __class__(self) -> type[Model]:  # type: ignore[override]
        """A subclass of Model named as transformers' model class (LlamaForCausalLM), so
        m.__class__.__name__ reads as on the model from_pretrained gives. A property, not the
        type open() makes: open() reads headers only, and the class is known from the module
        tree (isinstance(m, llm_anatomy.Model) holds either way). Model when the tree cannot be built."""
        try:
            return self._class_of(self._get_name(), Model)  # type: ignore[return-value]
        except AnatomyError:  # isinstance() asks for __class__ too, and must not raise for a bad checkpoint
            return Model

    @property
    def dtype(self) -> DType:
        """As model.dtype after from_pretrained: the dtype of the first float parameter."""
        last = None
        for _, p in self.named_parameters():
            if p.dtype.is_floating_point:
                return p.dtype
            last = p.dtype
        return last or DType("torch.float32")

    @property
    def device(self) -> Device:
        """cpu, as after from_pretrained without a device_map (see Parameter.device)."""
        return CPU

    @property
    def name(self) -> str:
        """The model's name: what was opened, or its folder or file name."""
        return self.catalog.name

    @cached_property
    def config(self) -> Config:
        """config.json (or the config derived from GGUF metadata / params.json), as a dict whose
        keys are attributes too, printing what print(model.config) prints.

        Examples:
            >>> m.config.hidden_size, m.config["num_hidden_layers"]
            (64, 2)
            >>> print(m.config)  # doctest: +ELLIPSIS
            LlamaConfig {
              "architectures": [
                "LlamaForCausalLM"
              ],
            ...
        """
        return Config(self.catalog.require_config(), self)

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
        it means ("en" or "zh"), then the facts derived from them. print() shows the command's
        text; Jupyter, tables."""
        from .analysis.explain import explain_config
        from .render.explain import NotebookExplanation

        return NotebookExplanation._make(explain_config(self.catalog, lang))

    def summary(
        self, context: Sequence[int] | None = None, batch: Sequence[int] | None = None, kv_dtype: str | None = None
    ) -> Summary:
        """The record `llm-anatomy summary` renders: counts by component, layer and dtype; memory; KV cache.

        print() shows what the command prints; Jupyter, its tables.

        Args:
            context: context lengths of the KV cache table (default: common ones up to the model's).
            batch: batch sizes of the KV cache table (default: 1).
            kv_dtype: the KV cache's precision, e.g. "fp8" (default: the dtype transformers loads the model in; docs/kv-cache.md).

        Examples:
            >>> s = m.summary()
            >>> s.total_params, [(c.name, c.params) for c in s.components]
            (78144, [('embeddings', 8192), ('attention', 24576), ('mlp', 36864), ('norms', 320), ('output head', 8192)])
        """
        from .analysis.summary import summarize
        from .render.summary import NotebookSummary

        return NotebookSummary._make(summarize(self.catalog, context, batch, kv_dtype))

    def stats(
        self,
        filter: str | None = None,
        by: str | None = None,
        progress: Callable[[int], None] | None = None,
        stored: bool = False,
    ) -> StatsReport:
        """The record `llm-anatomy stats` renders: every selected tensor read once (all cores),
        a quantized weight by its dequantized values.

        A tensor that cannot be read is listed in .errors, the others reported. print() shows
        what the command prints; Jupyter, the report's charts and the table. Needs numpy
        (the [stats] extra).

        Args:
            filter: only tensors whose stored names match this shell glob.
            by: "layer" or "role" for one row per group instead of one per tensor.
            progress: called with the number of bytes read, as they are.
            stored: a quantized model's tensors as stored (packed words, scales), not dequantized.
        """
        from .analysis.stats import weight_stats
        from .core.extras import require

        require("stats", "stats", "to compute weight statistics")
        from .analysis.values import dequantized

        from .render.stats import notebook_stats

        return notebook_stats(weight_stats(self.catalog if stored else dequantized(self.catalog), filter, by, progress))

    def trace(
        self,
        batch: int = 1,
        seq: int | None = None,
        decode: bool = False,
        context: int | None = None,
        node: str | None = None,
    ) -> Trace:
        """The record `llm-anatomy trace` renders: one forward pass on the meta device, built from
        the config alone (no weight is read), with every module's shapes, FLOPs and activation bytes.
        print() shows what the command prints; Jupyter, the report's charts and tables.

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
        from .render.trace import NotebookTrace

        return NotebookTrace._make(trace(self.catalog, batch, seq, context if decode else None, node))

    def trace_run(self, text: str) -> RunTrace:
        """The record `llm-anatomy trace --run` renders: the real weights loaded on CPU (small
        models only; larger ones are refused with the numbers), text run through them once,
        and per layer the hidden-state norms, largest activations, attention entropy and logit lens.

        Args:
            text: what to tokenize (with the model's own tokenizer) and run.
        """
        from .analysis.trace_run import run_trace

        return run_trace(self.catalog, text)

    def report(
        self,
        path: str = "report.html",
        stats: bool = False,
        lang: str | None = None,
        progress: Callable[[int], None] | None = None,
        trace: bool = False,
        run: str | None = None,
        compare: Model | str | os.PathLike[str] | None = None,
    ) -> ReportFile:
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
            compare: another model (B: a conversion of this one): also the section of
                verify(self, compare), its verdict and a heat map of the error per layer and
                role (reads both models' weights once; needs numpy).

        Returns:
            Where the page went, its size, the tensors the statistics or the comparison could
            not read, and the comparison's verdict (None without compare).
        """
        import os

        from .analysis.report import build_report
        from .io.files import check_output, guard_model, write_output
        from .render.explain import language_from_locale
        from .render.html import GENERATOR
        from .render.report import render_report

        if stats:
            from .core.extras import require

            require("stats", "report --stats", "to compute weight statistics")
        if trace:
            from .core.extras import require

            require("transformers", "report --trace", "to run the forward pass on the meta device")
        if compare is not None:
            from .core.extras import require

            require("stats", "report --compare", "to compare tensor values")
        catalog = self.catalog
        marker = GENERATOR.encode()  # how a page we wrote before is told from a file to leave alone
        # A single weights file protects itself, not the folder it happens to sit in. The path is
        # checked before any work, and again as the page is written.
        guard = guard_model(
            catalog.root,
            catalog.files,
            tuple(filter(None, [catalog.config_file])),
            whole_folder=not os.path.isfile(self.source),
        )
        check_output(path, guard, marker)
        if stats:
            from .analysis.stats import weight_stats
            from .analysis.values import dequantized

            weights = weight_stats(
                dequantized(catalog), progress=progress
            )  # a quantized weight: its dequantized values
        forward = self.trace() if trace else None
        ran = self.trace_run(run) if run is not None else None
        comparison = None
        if compare is not None:
            from .analysis.report import compare_view

            other = compare if isinstance(compare, Model) else open(compare, allow_truncated=True)
            found = verify(self, other, progress=progress)
            comparison = compare_view(found, catalog, other.catalog.name)
        data = render_report(
            build_report(
                catalog,
                lang=lang or language_from_locale(os.environ),
                stats=weights if stats else None,
                forward=forward,
                run=ran,
                compare=comparison,
            )
        ).encode("utf-8")
        write_output(path, data, guard, marker)
        errors = (weights.errors if stats else ()) + (comparison.errors if comparison is not None else ())
        return ReportFile(path, len(data), errors, comparison.verdict if comparison is not None else None)

    def _skeleton_or_none(self) -> Skeleton | None:
        from .hf.skeleton import SkeletonUnavailable

        if self._skeleton is False:
            try:
                self._skeleton = self.skeleton if self.tree.class_names else None
            except SkeletonUnavailable:
                self._skeleton = None
        return self._skeleton  # type: ignore[return-value]

    def _class_of(self, class_name: str | None, base: type) -> type:
        """The Module (or Model) subclass named class_name, made once per model: type(child).__name__
        is transformers' class name, and isinstance(child, llm_anatomy.Module) holds."""
        if class_name is None or class_name == base.__name__:
            return base
        key = (class_name, base)
        if key not in self._classes:
            doc = f"transformers' {class_name}, as llm_anatomy shows it: a {base.__name__} read from the checkpoint, never loaded."
            self._classes[key] = type(
                class_name, (base,), {"__module__": __name__, "__qualname__": class_name, "__doc__": doc}
            )
        return self._classes[key]

    def _module(self, node: TreeNode) -> Module:
        module: Module = self._class_of(node.class_name, Module)(self, node)
        return module

    def _buffers_under(self, path: str) -> list[tuple[str, Buffer]]:
        """(name relative to path, Buffer) of every buffer of transformers' model under path, in
        named_buffers() order; none when there is no skeleton (the tree from tensor names)."""
        skeleton = self._skeleton_or_none()
        if skeleton is None:
            return []
        prefix = f"{path}." if path else ""
        found = []
        for b in skeleton.buffers:
            if b.name.startswith(prefix):
                if b.name not in self._buffers:
                    if not hasattr(self, "_find"):
                        self._parameter_finder(skeleton)
                    self._buffers[b.name] = Buffer(self, b.name, tuple(b.shape), self._find(b.name), b.persistent)
                found.append((b.name[len(prefix) :], self._buffers[b.name]))
        return found

    def _parameter_finder(self, skeleton: Skeleton) -> None:
        from .analysis.values import load_dtype
        from .hf.skeleton import stored_tensor_finder

        self._find = stored_tensor_finder(self.loaded_catalog, skeleton)
        self._model_dtype = load_dtype(self.hf_catalog)

    def _meta_model(self) -> Any:
        """transformers' model on the meta device (built once, needs transformers): what no
        header says, such as the dtype of a buffer transformers computes."""
        if self._meta is None:
            from .hf.skeleton import config_bytes_of, meta_model, weights_dtype, with_config_file

            catalog = self.hf_catalog
            self._meta = with_config_file(
                catalog, config_bytes_of(catalog), lambda config: meta_model(config, weights_dtype(catalog))
            )
        return self._meta

    def _parameter(self, name: str, shape: tuple[int, ...]) -> Parameter:
        if name not in self._parameters:
            skeleton = self._skeleton_or_none()
            if skeleton is None:  # the tree of stored tensor names: every tensor as it is, quantized ones dequantized
                tensor: TensorInfo | FusedTensor | None = self.loaded_catalog.by_name.get(name)
                dtype = getattr(tensor, "loaded", tensor.dtype) if tensor is not None else None
            else:
                from .analysis.values import load_dtype
                from .hf.skeleton import stored_tensor_finder
                from .decode.elements import CASTS, DECODERS

                if not hasattr(self, "_find"):
                    self._find = stored_tensor_finder(self.loaded_catalog, skeleton)
                    self._model_dtype = load_dtype(self.hf_catalog)
                tensor = self._find(name)
                if tensor is None:  # transformers initialises it, in the dtype the model is loaded in
                    dtype = self._model_dtype or "F32"
                else:
                    dtype = (
                        self._model_dtype
                        if tensor.dtype in CASTS and self._model_dtype
                        else getattr(tensor, "loaded", tensor.dtype)
                    )
                if (
                    tensor is not None
                    and not hasattr(tensor, "loaded")
                    and tensor.dtype in DECODERS
                    and DECODERS[tensor.dtype].block_elems > 1
                ):
                    dtype = "F32"  # GGML blocks load dequantized to float32
            self._parameters[name] = Parameter(self, name, shape, tensor, dtype)
        return self._parameters[name]

    def _view_of(self, param: Parameter) -> View:
        from .analysis.values import View, loader_transform, parameter_view

        # Under transformers' names, the values transformers holds (GGUF's loader transforms)
        loaded = loader_transform(self.catalog) if self.hf_catalog is not self.catalog else None
        skeleton = self._skeleton_or_none()
        if skeleton is None:
            view = View.whole(self.loaded_catalog.get(param.name))
            return view if loaded is None else loaded(view)
        from .hf.skeleton import Parameter as SkeletonParameter

        return parameter_view(
            self.hf_catalog,
            skeleton.model_class,
            SkeletonParameter(param.name, tuple(param.shape)),
            param.tensor,
            self._model_dtype,
            loaded,
        )

    def _leaf_names(self, node: TreeNode) -> set[str]:
        """Parameters and buffers registered on this module itself: attributes that are not modules."""
        names = {p.name for p in node.parameters}
        skeleton = self._skeleton_or_none()
        if skeleton is not None:
            prefix = f"{node.path}." if node.path else ""
            names.update(
                b.name[len(prefix) :]
                for b in skeleton.buffers
                if b.name.startswith(prefix) and "." not in b.name[len(prefix) :]
            )
        return names

    def _not_found(self, node: TreeNode, target: str, item: str, kind: str) -> SubmoduleError:
        """torch's AttributeError for `item` of node's module, which is not a `kind`: either it
        is another kind of attribute (a child, parameter, buffer, config, method...) or none."""
        if (
            any(c.name == item for c in node.children)
            or item in self._leaf_names(node)
            or self._has_attribute(node.path, item)
        ):
            return SubmoduleError(self.name, target, f"`{item}` is not an {kind}")
        return SubmoduleError(self.name, target, f"{node.class_name or 'Module'} has no attribute `{item}`")

    def _has_attribute(self, path: str, item: str) -> bool:
        """hasattr() on transformers' module at path (built on the meta device, once): only a bad
        path asks, to tell a plain attribute (config, head_dim, forward) from none, as torch does.
        False when there is no transformers to ask."""
        if self._skeleton_or_none() is None:
            return False
        try:
            meta = self._meta_model()
        except ImportError:  # class names from the shipped skeleton, without transformers
            return False
        return hasattr(meta.get_submodule(path), item)

    def __repr__(self) -> str:
        return f"<llm_anatomy.Model {self.name!r}: {self._get_name()}, {self.num_parameters():,} parameters, {self.catalog.format}>"


def open(
    model: str | os.PathLike[str],
    revision: str | None = None,
    *,
    allow_truncated: bool = False,
    base: Model | str | os.PathLike[str] | None = None,
) -> Model:
    """Open a checkpoint: a folder, a weights file, or a model id in the local Hugging Face
    cache (read from the Hub when it is not there). Reads headers and config only.

    Args:
        model: what to open, as `llm-anatomy` takes it.
        revision: branch, tag or commit of a model id.
        allow_truncated: list the tensors of a safetensors file cut short too, so stats()
            and diff() report each unreadable one as an error and go on (as the CLI's stats
            and diff do); otherwise such a file is refused.
        base: for a PEFT LoRA adapter, its base model (a Model, or what open() takes): then
            get_parameter() of a base weight gives it with merged(), as merge_and_unload() leaves it.

    Raises:
        AnatomyError: bad input (the CLI's exit 1), with the CLI's one-line message.
        UsageError: a bad request (the CLI's exit 2), such as a model id that is not there.

    Examples:
        >>> m = la.open("tiny-llama")
        >>> m
        <llm_anatomy.Model 'tiny-llama': LlamaForCausalLM, 78,144 parameters, safetensors>
    """
    source = str(model)
    opened = Model(open_catalog(source, revision, allow_truncated), source)
    if base is not None:
        if opened.adapter is None:
            raise UsageError(source, "a PEFT adapter (adapter_config.json) with base=", "a model", "drop base=")
        opened.base = base if isinstance(base, Model) else open(base)
    return opened


class Diff(namedtuple("Diff", "header values")):
    """What `llm-anatomy diff` renders. header: a HeaderDiff (tensors only in one, shape,
    dtype and config changes, from the headers); values: a ValueDiff of the shared tensors
    (relative change, cosine, max difference, bit-identical), or None when not compared yet.
    str() is the CLI's text."""

    __slots__ = ()
    header: HeaderDiff
    values: ValueDiff | None

    def with_values(self, progress: Callable[[int], None] | None = None, low_rank: bool = False) -> Diff:
        """This diff with the shared tensors compared by value: each byte read once, on all cores;
        low_rank: each changed matrix's numerical rank too (`diff --low-rank`)."""
        from .analysis.diff import compare_values

        return self._replace(values=compare_values(self.header, progress, low_rank))

    def verdict(self) -> list[str]:
        """`diff --low-rank`'s verdict lines: the changes grouped by layer, module and rank."""
        from .analysis.low_rank import verdict

        if self.values is None:
            raise UsageError("Diff.verdict", "the values compared", "the headers only", "call with_values() first")
        header = self.header
        return verdict(
            self.values.rows,
            len(self.values.errors),
            bool(header.only_a or header.only_b or header.shape_changes),
        )

    def __str__(self) -> str:
        from .render import diff as render

        return render.header_text(self.header) + "\n" + ("" if self.values is None else render.values_text(self.values))


class ReportFile(namedtuple("ReportFile", "path nbytes errors verdict", defaults=(None,))):
    """A page Model.report() wrote: its path, its size in bytes, (name, error line) of each
    tensor the statistics or the comparison could not read (the page lists them too), and the
    comparison's verdict (pass, warn, fail; None without one)."""

    __slots__ = ()
    path: str
    nbytes: int
    errors: tuple[tuple[str, str], ...]
    verdict: str | None


def diff(
    a: Model | str | os.PathLike[str],
    b: Model | str | os.PathLike[str],
    filter: str | None = None,
    *,
    hf_names: bool = False,
    values: bool = True,
    progress: Callable[[int], None] | None = None,
    stored: bool = False,
    low_rank: bool = False,
) -> Diff:
    """What changed between two checkpoints, as `llm-anatomy diff`.

    Args:
        a: the first model: a Model, or what open() takes.
        b: the second model.
        filter: only tensors whose names match this shell glob.
        hf_names: compare under Hugging Face names (two GGUFs, say); checkpoints of two
            formats always are, with the converter's conventions undone.
        values: False to compare the headers only (then Diff.with_values() reads the values).
        progress: called with the number of bytes read, as they are.
        stored: compare quantized weights' stored tensors, not their dequantized values.
        low_rank: each changed matrix's numerical rank too (`diff --low-rank`; Diff.verdict()).

    Comparing values needs numpy (the [stats] extra).

    Examples:
        >>> d = la.diff(m, "tiny-llama")
        >>> d.header.only_a, d.values.identical
        ((), 21)
    """
    from .analysis.diff import compare_headers

    if values:
        from .core.extras import require

        require("stats", "diff", "to compare tensor values")
    models = [side if isinstance(side, Model) else open(side, allow_truncated=True) for side in (a, b)]
    catalogs = _compared_catalogs(models, hf_names, stored)
    found = Diff(compare_headers(catalogs[0], catalogs[1], filter), None)
    return found.with_values(progress, low_rank) if values else found


def _compared_catalogs(models: list[Model], hf_names: bool, stored: bool) -> list[Catalog]:
    """The two sides as diff and verify compare them. Across formats (an HF folder and its GGUF)
    tensors pair under transformers' names and are compared as transformers loads them, the
    converter's conventions undone; quantized weights by their dequantized values unless stored."""
    across = models[0].catalog.format != models[1].catalog.format
    catalogs = [m.hf_catalog if hf_names or across else m.catalog for m in models]
    if across:
        from .analysis.diff import undo_conventions

        from .analysis.experts import per_expert

        originals = [_lora_gguf_heads(m, other) for m, other in zip(models, models[::-1])]
        catalogs = [undo_conventions(c, original) for c, original in zip(catalogs, originals)]
        # stacked experts split where the other side stores them one by one
        catalogs = [
            per_expert(catalogs[0], models[0].catalog, catalogs[1]),
            per_expert(catalogs[1], models[1].catalog, catalogs[0]),
        ]
    if not stored:  # quantized weights by their dequantized values: diff(model, model_fp8) is the quantization error
        from .analysis.values import dequantized

        catalogs = [dequantized(c) for c in catalogs]
    return catalogs


HEAD_COUNTS = ("num_attention_heads", "num_key_value_heads")


def _lora_gguf_heads(model: Model, other: Model) -> Catalog:
    """model's catalog; for a LoRA GGUF paired with the PEFT adapter it came from, with the head
    counts of that adapter's base (base_model_name_or_path, when here): the converter reordered
    the rows of Llama's q and k lora_b for llama.cpp's rotary layout, which only they undo."""
    from .hf.peft import is_lora_gguf

    catalog = model.catalog
    if catalog.format != "gguf" or not is_lora_gguf(catalog.metadata) or other.catalog.format == "gguf":
        return catalog
    base = other.local_base() if other.adapter is not None else None
    config = (base.catalog.config if base is not None else None) or {}
    heads = config.get(HEAD_COUNTS[0])
    if not isinstance(heads, int):
        return catalog
    kv_heads = config.get(HEAD_COUNTS[1])
    counts = dict(zip(HEAD_COUNTS, (heads, kv_heads if isinstance(kv_heads, int) else heads)))
    return catalog._replace(config={**(catalog.config or {}), **counts})


def verify(
    a: Model | str | os.PathLike[str],
    b: Model | str | os.PathLike[str],
    filter: str | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Did converting A into B keep the model? As `llm-anatomy verify`: every paired tensor
    (names paired and conventions undone as diff() does across formats) `identical`, `same`
    within the noise the two dtypes or the quantization type allow, or `different`; a summary
    per type; the verdict (pass, warn, fail) and the findings in words, failures first.

    Args:
        a: the original: a Model, or what open() takes.
        b: the converted model.
        filter: only tensors whose names (transformers' names) match this shell glob.
        progress: called with the number of bytes read, as they are.

    Needs numpy (the [stats] extra).

    Examples:
        >>> la.verify(m, "tiny-llama").verdict
        'pass'
    """
    from .analysis.diff import compare_headers
    from .analysis.tokenizer_compare import compare_tokenizers
    from .analysis.verify import verify_pairs
    from .core.extras import require

    require("stats", "verify", "to compare tensor values")
    models = [side if isinstance(side, Model) else open(side, allow_truncated=True) for side in (a, b)]
    catalogs = _compared_catalogs(models, True, False)
    # each tensor's name as its file stores it (a GGUF's blk.0.attn_q.weight)
    places = [{(t.file, t.offset): t.name for t in model.catalog.tensors} for model in models]
    stored_names = tuple(partial(_stored_name, place) for place in places)
    tokenizers = compare_tokenizers(models[0].catalog, models[1].catalog)
    return verify_pairs(
        compare_headers(catalogs[0], catalogs[1], filter), (stored_names[0], stored_names[1]), progress, tokenizers
    )


def _stored_name(places: dict[tuple[str, int], str], tensor: TensorInfo) -> str:
    stored = getattr(tensor, "stored", None)
    if getattr(tensor, "convention", None) == "experts_stacked" and stored is not None:
        return stored.name  # one expert's slice: the stacked tensor's name and the expert's index
    return places.get((tensor.file, tensor.offset), tensor.name)


class Inventory(namedtuple("Inventory", "rows skipped")):
    """What inventory() read: rows, one analysis.inventory.Row per checkpoint read this run
    (sorted by location); skipped, how many the --out file already held for the same content."""

    __slots__ = ()
    rows: list[InventoryRow]
    skipped: int


OUT_FORMATS = (".jsonl", ".csv", ".parquet")
INVENTORY_ENGINES = ("local", "ray")


def inventory(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    workers: int = 16,
    deep: bool = False,
    authors: Sequence[str] = (),
    engine: str = "local",
    ray_address: str | None = None,
) -> Inventory:
    """One row per checkpoint under inputs: local folders (walked) and s3://, gs:// or az://BUCKET/PREFIX
    (listed), mixed; headers only, `workers` checkpoints read at once. What `llm-anatomy
    scan` writes for many models: a local checkpoint's row counts scan's findings on it.

    Args:
        inputs: folders, weights files and s3://, gs:// and az:// prefixes.
        out: a .jsonl or .csv file the rows are appended to as they come, or a .parquet
            file (the `parquet` extra) rewritten with them at the end; a rerun with the same
            file skips the checkpoints it holds for the same content (sizes and ETags or
            modification times), so an interrupted inventory resumes.
        workers: checkpoints in flight at once.
        deep: read every byte too (needs numpy, the `stats` extra): each file's sha256, NaN
            and Inf counts and absmax from every tensor's statistics, and the findings they
            show; a rerun skips only the rows written with them.
        authors: Hub users or organisations whose models are listed (HfApi.list_models'
            author) and read header-only, one row each (a gated or private one: its error).
        engine: "local" (a pool of threads here) or "ray" (each row made by a task on a Ray
            cluster, the `ray` extra; the same rows).
        ray_address: the cluster to join with engine="ray" (None: RAY_ADDRESS, else what
            ray.init finds).

    Raises:
        AnatomyError: an input that is neither a folder nor a readable prefix (an unreadable
            checkpoint is a row with its error instead).
        UsageError: an out file of another kind.
    """

    from .analysis import inventory as inv

    if deep:  # before any work: every row would need numpy
        from .core.extras import require

        require("stats", "scan --deep", "to compute weight statistics")
    if engine not in INVENTORY_ENGINES:
        raise UsageError(engine, "an engine: " + " or ".join(INVENTORY_ENGINES), "another name", "pass --engine ray")
    run = None
    if engine == "ray":
        import functools

        from .analysis import inventory_ray

        inventory_ray.connect(ray_address)  # before the out file is opened: a missing extra or cluster is one line
        run = functools.partial(inventory_ray.rows, address=ray_address)
    path = None if out is None else str(out)
    if path is not None and not path.endswith(OUT_FORMATS):
        raise UsageError(
            path,
            "an output file ending in .jsonl, .csv or .parquet",
            "another name",
            "name it FILE.jsonl, FILE.csv or FILE.parquet",
        )
    writer: _Appender | _ParquetFile | None = None
    if path is not None and path.endswith(".parquet"):
        writer = _ParquetFile(path)
        done = {(r["location"], r["content"]) for r in writer.previous if not deep or r.get("sha256")}
    elif path is not None:
        done = _written(path, deep)
        writer = _Appender(path, fresh=not done and not _has_header(path))
    else:
        done = set()
    rows: list[InventoryRow] = []
    skipped = 0

    def skip(target: inv.Target) -> bool:
        nonlocal skipped
        if (target.location, target.content) in done:
            skipped += 1
            return True
        return False

    try:
        for row in inv.inventory([str(i) for i in inputs], skip, workers, deep, authors, run):
            rows.append(row)
            if writer is not None:
                writer.write(row)
    finally:
        if writer is not None:
            writer.close()
    return Inventory(sorted(rows, key=lambda r: r.location), skipped)


def _has_header(path: str) -> bool:
    import os

    return os.path.isfile(path) and os.path.getsize(path) > 0


def _written(path: str, deep: bool = False) -> set[tuple[str, str]]:
    """(location, content) of the rows an earlier run wrote to path (a JSON line or a CSV
    record each; a line cut short by an interruption is left out, so read again); deep:
    only those with --deep's hashes."""
    import builtins
    import csv
    import json
    import os

    if not os.path.isfile(path):
        return set()
    done = set()
    with builtins.open(path, encoding="utf-8", errors="replace", newline="") as handle:
        if path.endswith(".csv"):
            for record in csv.DictReader(handle):
                if record.get("location") and record.get("content") and (not deep or record.get("sha256")):
                    done.add((record["location"], record["content"]))
        else:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if (
                    isinstance(record, dict)
                    and isinstance(record.get("location"), str)
                    and isinstance(record.get("content"), str)
                    and (not deep or record.get("sha256"))
                ):
                    done.add((record["location"], record["content"]))
    return done


class _Appender:
    """Rows appended to the out file as they come, each line whole (flushed), never through
    a link: an interrupted run leaves every row it finished."""

    def __init__(self, path: str, fresh: bool) -> None:
        import os

        from .render import inventory as render

        descriptor = os.open(
            path,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
            0o644,
        )
        self.handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        self.line = render.csv_line if path.endswith(".csv") else render.json_line
        if fresh and path.endswith(".csv"):
            self.handle.write(render.csv_header())

    def write(self, row: InventoryRow) -> None:
        self.handle.write(self.line(row))
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class _ParquetFile:
    """Rows for a Parquet file, which cannot be appended to: the rows it holds are read
    first, and the file is written anew with them and the new rows at the end (an
    interrupted run too), through a temporary file beside it, renamed over it."""

    def __init__(self, path: str) -> None:
        import os

        from .core.extras import require

        require("parquet", path, "to write Parquet")
        self.path = path
        self.previous: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        if os.path.isfile(path):
            import pyarrow.parquet

            try:
                self.previous = pyarrow.parquet.read_table(path).to_pylist()
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise AnatomyError(
                    path, "a Parquet file an inventory wrote", type(exc).__name__, "name another --out file"
                ) from None

    def write(self, row: InventoryRow) -> None:
        from dataclasses import asdict

        self.rows.append(asdict(row))

    def close(self) -> None:
        import os
        import tempfile

        import pyarrow
        import pyarrow.parquet

        descriptor, temporary = tempfile.mkstemp(
            suffix=".parquet.partial", dir=os.path.dirname(os.path.abspath(self.path))
        )
        os.close(descriptor)
        try:
            pyarrow.parquet.write_table(pyarrow.Table.from_pylist(self.previous + self.rows), temporary)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
