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

from ..catalog import MAX_DIM, MAX_RANK
from ..errors import AnatomyError, CorruptFile
from ..safe_text import escape

MAX_NESTING = 16  # dict-in-dict levels walked when collecting tensors
# Every object the unpickler builds costs an opcode, so counting opcodes bounds memory and
# time: ~100 bytes an opcode at worst (an empty dict and its slot on the stack), where a
# 32 MB data.pkl of one-byte opcodes would otherwise build GBs. torch.save spends ~32
# opcodes a tensor: the ceiling admits ~75,000 tensors in one file.
MAX_OPCODES = 2_500_000
MAX_LONG_BYTES = 255  # LONG1's limit; a state dict's ints fit in 9 bytes
HOSTILE = "the file is corrupt or hostile; do not load it"
NOT_A_STATE_DICT = "the file is not a plain state dict and may run code when loaded with torch.load; do not load it"


class Refused(Exception):
    """Raised inside the unpickler; turned into one AnatomyError line by load().
    The message is "EXPECTED, found FOUND"."""

    todo = NOT_A_STATE_DICT


class TooLarge(Refused):
    """A pickle that would build more than a state dict needs: a memory or time bomb."""

    todo = HOSTILE


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
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise Refused("a tensor with a shape and strides of the same rank")
    if len(size) > MAX_RANK:
        raise Refused(f"a tensor of rank at most {MAX_RANK}, found rank {len(size)}")
    ints = (offset, *size, *stride)
    if not all(type(v) is int and abs(v) <= MAX_DIM for v in ints) or offset < 0 or any(d < 0 for d in size):
        raise Refused("a tensor with an offset, shape and strides of integers in 0..2**63-1")


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


def _ordered_dict(*args: Any) -> OrderedDict:
    """OrderedDict() as torch.save pickles it: empty, then filled by SETITEMS (whose keys
    are checked); OrderedDict(pairs) would hash keys the checks never saw."""
    if args and args != ((),) and args != ([],):
        raise TooLarge(f"OrderedDict() without arguments, found {len(args)} arguments")
    return OrderedDict()


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
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


def _counted(handler: Any) -> Any:
    def step(unpickler: "_Unpickler") -> None:
        unpickler.opcodes_left -= 1
        if unpickler.opcodes_left < 0:
            raise TooLarge(f"a pickle of at most {unpickler.opcode_limit} operations, found more")
        handler(unpickler)

    return step


def _refused_opcode(what: str) -> Any:
    def refuse(unpickler: "_Unpickler") -> None:
        raise TooLarge(f"a state dict, found {what}")

    return refuse


FLAT_KEYS = (str, int, float, bool, type(None))


def _check_keys(items: list) -> None:
    """Dict keys are hashed when set, and a tuple's hash walks all of it: a tuple built of
    itself 64 levels deep through the memo takes 2**64 steps. State dicts key by name."""
    for key in items[::2]:
        if type(key) not in FLAT_KEYS:
            raise TooLarge(f"dict keys that are strings or numbers, found a key of type {type(key).__name__}")


def _load_setitem(unpickler: "_Unpickler") -> None:
    _check_keys(unpickler.stack[-2:-1])
    pickle._Unpickler.load_setitem(unpickler)  # type: ignore[attr-defined]


def _load_setitems(unpickler: "_Unpickler") -> None:
    _check_keys(unpickler.stack)
    pickle._Unpickler.load_setitems(unpickler)  # type: ignore[attr-defined]


def _load_dict(unpickler: "_Unpickler") -> None:
    _check_keys(unpickler.stack)
    pickle._Unpickler.load_dict(unpickler)  # type: ignore[attr-defined]


def _load_build(unpickler: "_Unpickler") -> None:
    """BUILD sets state on the object below it; allow it only on dicts (a state dict's
    _metadata), so a pickle cannot rewrite the stand-ins or functions it was given."""
    if not isinstance(unpickler.stack[-2], dict):
        raise Refused(f"object state only on dicts, found state for {type(unpickler.stack[-2]).__name__}")
    pickle._Unpickler.load_build(unpickler)  # type: ignore[attr-defined]


class _Unpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """The pure-Python unpickler: its opcode table can be narrowed (the C one cannot)."""

    dispatch = {
        opcode: _counted(handler)
        for opcode, handler in {
            **pickle._Unpickler.dispatch,  # type: ignore[attr-defined]
            pickle.BUILD[0]: _load_build,
            pickle.SETITEM[0]: _load_setitem,
            pickle.SETITEMS[0]: _load_setitems,
            pickle.DICT[0]: _load_dict,
            pickle.LONG4[0]: _refused_opcode(f"an integer of more than {MAX_LONG_BYTES} bytes"),
            pickle.EMPTY_SET[0]: _refused_opcode("a set"),
            pickle.ADDITEMS[0]: _refused_opcode("a set"),
            pickle.FROZENSET[0]: _refused_opcode("a frozenset"),
        }.items()
    }

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: dict[str, StorageRef] = {}
        self.opcode_limit = self.opcodes_left = MAX_OPCODES

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
        raise AnatomyError(path, escape(expected), escape(found) or "something else", exc.todo) from None
    except RecursionError:
        raise CorruptFile(path, "a pickle nested at most a few levels deep", "deeper nesting", "the file is corrupt or hostile") from None
    except Exception as exc:  # a corrupt pickle raises anything from the pickle machine
        raise CorruptFile(path, "a readable pickle (data.pkl)", escape(f"{type(exc).__name__}: {exc}")[:200], "the file is corrupt; download it again") from None


def collect(path: str, obj: Any) -> tuple[list[tuple[str, TensorRef]], dict[str, str]]:
    """Tensors of a state dict by dotted name (nested dicts as in {"model": {...}}), and
    scalar entries (an "epoch" or "step") as metadata."""
    tensors: list[tuple[str, TensorRef]] = []
    metadata: dict[str, str] = {}
    if not isinstance(obj, dict):
        found = "a single tensor" if isinstance(obj, TensorRef) else type(obj).__name__
        raise AnatomyError(path, "a state dict (a dict of tensors)", found, "save a dict such as model.state_dict()")

    walked: set[int] = set()

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, TensorRef):
            tensors.append((prefix, value))
        elif isinstance(value, dict) and depth < MAX_NESTING:
            # The memo lets one dict appear under many keys, each holding it again: walking
            # every path would be exponential (a "billion laughs"). A state dict has no such
            # sharing of non-empty dicts.
            if value and id(value) in walked:
                raise AnatomyError(path, "a state dict holding each of its dicts once", f"the dict under {escape(prefix[:200])} again", HOSTILE)
            walked.add(id(value))
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item, depth + 1)
        elif isinstance(value, (int, float, str, bool)):
            metadata[prefix] = str(value)

    walk("", obj, 0)
    return tensors, metadata
