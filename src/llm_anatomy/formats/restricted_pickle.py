"""Read the pickle inside a torch checkpoint (data.pkl) without torch and without running it.

The pickle machine only calls what find_class returns, so find_class accepts a short
allowlist (the classes a state dict needs) and returns lightweight stand-ins that record
where each tensor's bytes are; every other global is refused by name before anything
from the file is called. This is the "Restricting Globals" recipe of the pickle docs,
the same idea as torch.load(weights_only=True) but with no torch at all."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict, namedtuple
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..errors import AnatomyError
from ..safe_text import escape

MAX_NESTING = 16  # dict-in-dict levels walked when collecting tensors


class Refused(Exception):
    """Raised inside the unpickler; turned into one AnatomyError line by load()."""


class StorageType(namedtuple("StorageType", "dtype")):
    """Stand-in for torch.FloatStorage & co.: only its element type matters."""

    __slots__ = ()


class TorchDType(namedtuple("TorchDType", "dtype")):
    """Stand-in for torch.float8_e4m3fn & co. (the dtype argument of _rebuild_tensor_v3)."""

    __slots__ = ()


class StorageRef(namedtuple("StorageRef", "key dtype numel")):
    """key: the member archive/data/<key> holding the bytes; dtype: element type of the
    storage (U8 for untyped storages); numel: elements of dtype."""

    __slots__ = ()


class TensorRef(namedtuple("TensorRef", "storage offset shape stride dtype")):
    """offset: in elements of dtype from the storage's start; shape, stride: tuples of ints."""

    __slots__ = ()


# torch's legacy storage class names (torch/storage.py _dtype_to_storage_type_map).
STORAGE_TYPES = {
    "DoubleStorage": "F64",
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64",
    "ComplexDoubleStorage": "C128",
}
UNTYPED_STORAGE = StorageType("U8")  # bytes; _rebuild_tensor_v3 names the element type

# dtypes saved as an untyped storage plus a torch dtype (torch.storage._new_dtypes()).
TORCH_DTYPES = {
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
}


def _check_tensor_args(storage: Any, offset: Any, size: Any, stride: Any) -> None:
    if not isinstance(storage, StorageRef):
        raise Refused(f"a storage as first argument of a tensor, found {type(storage).__name__}")
    ints = (offset, *size, *stride) if isinstance(size, tuple) and isinstance(stride, tuple) else None
    if ints is None or not all(type(v) is int for v in ints) or offset < 0 or any(d < 0 for d in size) or len(size) != len(stride):
        raise Refused("a tensor with an integer offset, shape and strides")


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_unused: Any) -> TensorRef:
    _check_tensor_args(storage, offset, size, stride)
    return TensorRef(storage, offset, size, stride, storage.dtype)


def _rebuild_tensor_v3(storage: Any, offset: Any, size: Any, stride: Any, _requires_grad: Any, _hooks: Any, dtype: Any, *_unused: Any) -> TensorRef:
    """Untyped (byte) storage plus a dtype: offsets and sizes count elements of dtype."""
    _check_tensor_args(storage, offset, size, stride)
    if not isinstance(dtype, TorchDType):
        raise Refused(f"a torch dtype, found {type(dtype).__name__}")
    return TensorRef(storage, offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: Any, *_unused: Any) -> Any:
    """nn.Parameter(data): for reading, the parameter is its data."""
    return data


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("torch", "UntypedStorage"): UNTYPED_STORAGE,
    ("torch.storage", "UntypedStorage"): UNTYPED_STORAGE,
    **{("torch", name): StorageType(dtype) for name, dtype in STORAGE_TYPES.items()},
    **{("torch", name): TorchDType(dtype) for name, dtype in TORCH_DTYPES.items()},
}


def _load_build(unpickler: "_Unpickler") -> None:
    """BUILD sets state on the object below it; allow it only on dicts (a state dict's
    _metadata), so a pickle cannot rewrite the stand-ins or functions it was given."""
    if not isinstance(unpickler.stack[-2], dict):
        raise Refused(f"object state only on dicts, found state for {type(unpickler.stack[-2]).__name__}")
    pickle._Unpickler.load_build(unpickler)  # type: ignore[attr-defined]


class _Unpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler: its opcode table can be narrowed (the C one cannot)."""

    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}  # type: ignore[attr-defined]

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: dict[str, StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise Refused(f"only tensors and state dicts, found the disallowed global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> StorageRef:
        """('storage', storage type, key, location, numel), as torch.save writes it."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refused("a storage reference ('storage', type, key, location, numel)")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise Refused("a storage reference of a known storage type")
        storage = StorageRef(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise Refused(f"one element type per storage, found storage {key} read as two")
        return storage


def load(path: str, data: bytes) -> Any:
    """Unpickle data.pkl; tensors come back as TensorRef, nothing in the file is executed."""
    try:
        return _Unpickler(data).load()
    except Refused as exc:
        message = str(exc)
        expected, _, found = message.partition(", found ")
        raise AnatomyError(path, escape(expected), escape(found) or "something else", "the file is not a plain state dict and may run code when loaded with torch.load; do not load it") from None
    except RecursionError:
        raise AnatomyError(path, "a pickle nested at most a few levels deep", "deeper nesting", "the file is corrupt or hostile") from None
    except Exception as exc:  # a corrupt pickle raises anything from the pickle machine
        raise AnatomyError(path, "a readable pickle (data.pkl)", escape(f"{type(exc).__name__}: {exc}")[:200], "the file is corrupt; download it again") from None


def collect(path: str, obj: Any) -> tuple[list[tuple[str, TensorRef]], dict[str, str]]:
    """Tensors of a state dict by dotted name (nested dicts as in {"model": {...}}), and
    scalar entries (an "epoch" or "step") as metadata."""
    tensors: list[tuple[str, TensorRef]] = []
    metadata: dict[str, str] = {}
    if not isinstance(obj, dict):
        found = "a single tensor" if isinstance(obj, TensorRef) else type(obj).__name__
        raise AnatomyError(path, "a state dict (a dict of tensors)", found, "save a dict such as model.state_dict()")

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, TensorRef):
            tensors.append((prefix, value))
        elif isinstance(value, dict) and depth < MAX_NESTING:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item, depth + 1)
        elif isinstance(value, (int, float, str, bool)):
            metadata[prefix] = str(value)

    walk("", obj, 0)
    return tensors, metadata
