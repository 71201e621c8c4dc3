"""Read the pickle inside a torch checkpoint (data.pkl) without torch and without running it.

A small pickle machine of its own (the opcode loop in Machine.run), as torch's
weights-only unpickler is, rather than Python's pickle with its handlers narrowed: it
knows only the operations a state dict needs (OPERATIONS), looks globals up in a short
allowlist (ALLOWED) of lightweight stand-ins that record where each tensor's bytes are,
calls nothing but those, sets items only on dicts, appends only to lists, takes object
state only on dicts (and drops it), and counts every operation against a budget. Every
other operation, global or target is refused by name before anything is built from it.
It uses no private API of the pickle module, so a Python upgrade cannot change it."""

from __future__ import annotations

import struct
from collections import OrderedDict, namedtuple

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..core.catalog import MAX_DIM, MAX_RANK
from ..core.errors import AnatomyError, CorruptFile
from ..core.text import escape

MAX_NESTING = 16  # dict-in-dict levels walked when collecting tensors
# Every object the unpickler builds costs an opcode, so counting opcodes bounds memory and
# time: ~100 bytes an opcode at worst (an empty dict and its slot on the stack), where a
# 32 MB data.pkl of one-byte opcodes would otherwise build GBs. torch.save spends ~32
# opcodes a tensor: the ceiling admits ~75,000 tensors in one file.
MAX_OPCODES = 2_500_000
MAX_LONG_BYTES = 255  # LONG1's limit; a state dict's ints fit in 9 bytes
# Python hashes an int to itself modulo 2**61 - 1, so ints below that size never share a
# hash, and neither do str keys (hashed with a per-process secret): a dict of such keys is
# built in linear time. Larger ints collide at will (k + i * (2**61 - 1)): 100,000 such
# keys took 43 s. A state dict keys by name; an optimizer's by small parameter numbers.
# (A float shares its hash only with the few dozen floats x * 2**(61 * k) a double holds.)
MAX_KEY_INT = 2**61 - 2
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


def _rebuild_tensor_v3(
    storage: Any, offset: Any, size: Any, stride: Any, _requires_grad: Any, _hooks: Any, dtype: Any, *_unused: Any
) -> TensorRef:
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


# What REDUCE may call: the functions among the allowed globals (not the storage and dtype stand-ins).
CALLABLE = {id(value) for value in ALLOWED.values() if callable(value)}


class Corrupt(Exception):
    """The bytes are not a pickle the machine can follow (cut short, an unknown operation,
    an empty stack): one "expected a readable pickle" line."""


FLAT_KEYS = (str, int, float, bool, type(None))


def _check_keys(keys: list) -> None:
    """Dict keys are hashed when set: a tuple's hash walks all of it (a tuple built of
    itself 64 levels deep through the memo takes 2**64 steps), and large ints can all share
    one hash (MAX_KEY_INT). State dicts key by name."""
    for key in keys:
        kind = type(key)
        if kind not in FLAT_KEYS:
            raise TooLarge(f"dict keys that are strings or numbers, found a key of type {kind.__name__}")
        if kind is int and not -MAX_KEY_INT <= key <= MAX_KEY_INT:
            raise TooLarge(f"integer dict keys below 2**61, found an integer key of {key.bit_length()} bits")


U8, U16, U32, I32, U64, F64 = (struct.Struct(code) for code in ("<B", "<H", "<I", "<i", "<Q", ">d"))


class Machine:
    """The state of one unpickling: the bytes and where the next operation starts, the
    stack, the marks (stacks set aside by MARK), the memo, the storages met, and the
    operations followed so far (at most MAX_OPCODES)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.stack: list = []
        self.marks: list[list] = []
        self.memo: dict[int, Any] = {}
        self.storages: dict[str, StorageRef] = {}
        self.operations = 0

    def run(self) -> Any:
        """Follow the operations up to STOP; return the object on top of the stack."""
        data, size, operations = self.data, len(self.data), BY_BYTE
        count = 0  # a local in the loop, self.operations after it: the loop runs ~30 times a tensor
        try:
            while True:
                at = self.pos
                if at >= size:
                    raise Corrupt("the pickle cut short before its STOP")
                op = data[at]
                self.pos = at + 1
                count += 1
                if count > MAX_OPCODES:
                    raise TooLarge(f"a pickle of at most {MAX_OPCODES} operations, found more")
                if op == STOP:
                    return self.pop()
                handler = operations[op]
                if handler is None:
                    _refuse_operation(op, at)
                handler(self)
        finally:
            self.operations = count

    # Reading the operation's argument bytes, never past the end.
    def cut_short(self, count: int) -> Corrupt:
        return Corrupt(f"{count} bytes at byte {self.pos} of a pickle of {len(self.data)} bytes")

    def empty(self) -> Corrupt:
        return Corrupt(f"an object on the stack at byte {self.pos - 1}")

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise self.cut_short(count)
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, layout: struct.Struct) -> Any:
        at = self.pos
        if at + layout.size > len(self.data):
            raise self.cut_short(layout.size)
        self.pos = at + layout.size
        return layout.unpack_from(self.data, at)[0]

    def line(self) -> str:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise Corrupt(f"a line ending at byte {self.pos}")
        text = self.data[self.pos : end]
        self.pos = end + 1
        return text.decode("utf-8", "surrogateescape")

    # The stack.
    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise self.empty()
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.empty()
        return self.stack[-1]

    def pop_mark(self) -> list:
        """The objects pushed since the last MARK; the stack before it comes back."""
        if not self.marks:
            raise Corrupt(f"a MARK before byte {self.pos - 1}")
        items, self.stack = self.stack, self.marks.pop()
        return items

    # What the operations build.
    def find_global(self, module: str, name: str) -> None:
        value = ALLOWED.get((module, name))
        if value is None:
            raise Refused(f"only tensors and state dicts, found the disallowed global {module}.{name}")
        self.push(value)

    def persistent(self, pid: Any) -> StorageRef:
        """('storage', storage type, key, location, numel), as torch.save writes it."""
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
            raise Refused("a storage reference ('storage', type, key, location, numel)")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, StorageType) or type(key) is not str or type(numel) is not int or numel < 0:
            raise Refused("a storage reference of a known storage type")
        storage = StorageRef(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise Refused(f"one element type per storage, found storage {key} read as two")
        return storage

    def set_items(self, target: Any, items: list) -> None:
        if not isinstance(target, dict):
            raise Refused(f"items set only on dicts, found items set on {type(target).__name__}")
        if len(items) % 2:
            raise Corrupt("key and value pairs")
        _check_keys(items[::2])
        for at in range(0, len(items), 2):
            target[items[at]] = items[at + 1]

    def append(self, target: Any, items: list) -> None:
        if type(target) is not list:
            raise Refused(f"items appended only to lists, found items appended to {type(target).__name__}")
        target.extend(items)

    def remember(self, index: int) -> None:
        if not self.stack:
            raise self.empty()
        self.memo[index] = self.stack[-1]

    def recall(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise Corrupt(f"memo entry {index}") from None


def _reduce(m: Machine) -> None:
    """REDUCE: call an allowed function (a tensor rebuilt, an OrderedDict made) on a tuple."""
    args = m.pop()
    function = m.pop()
    if id(function) not in CALLABLE:
        raise Refused(f"calls of the allowed functions only, found a call of {type(function).__name__}")
    if type(args) is not tuple:
        raise Corrupt(f"a tuple of arguments, found {type(args).__name__}")
    m.push(function(*args))


def _build(m: Machine) -> None:
    """BUILD sets state on the object below it; allow it only on dicts (a state dict's
    _metadata), so a pickle cannot rewrite the stand-ins or functions it was given. The
    state itself is not used: the tensors are the dict's items."""
    m.pop()
    if not isinstance(m.top(), dict):
        raise Refused(f"object state only on dicts, found state for {type(m.top()).__name__}")


def _setitem(m: Machine) -> None:
    value = m.pop()
    key = m.pop()
    m.set_items(m.top(), [key, value])


def _setitems(m: Machine) -> None:
    items = m.pop_mark()
    m.set_items(m.top(), items)


def _dict(m: Machine) -> None:
    items = m.pop_mark()
    target: dict = {}
    m.set_items(target, items)
    m.push(target)


def _appends(m: Machine) -> None:
    items = m.pop_mark()
    m.append(m.top(), items)


def _append(m: Machine) -> None:
    value = m.pop()
    target = m.top()
    if type(target) is not list:
        m.append(target, [value])  # refused there
    target.append(value)


def _tuple_of(count: int) -> Any:
    def build(m: Machine) -> None:
        if len(m.stack) < count:
            raise Corrupt(f"{count} objects on the stack at byte {m.pos - 1}")
        items = tuple(m.stack[len(m.stack) - count :])
        del m.stack[len(m.stack) - count :]
        m.push(items)

    return build


def _text(length: struct.Struct) -> Any:
    """A UTF-8 string, its byte count first (in the layout `length`)."""

    def read(m: Machine) -> None:
        m.stack.append(m.take(m.unpack(length)).decode("utf-8", "surrogatepass"))

    return read


def _ascii(length: struct.Struct) -> Any:
    """A protocol-2 byte string (Python 2's str), read as torch reads it: ASCII text."""

    def read(m: Machine) -> None:
        m.push(m.take(m.unpack(length)).decode("ascii"))

    return read


def _bytes(length: struct.Struct) -> Any:
    def read(m: Machine) -> None:
        m.push(m.take(m.unpack(length)))

    return read


def _constant(value: Any) -> Any:
    def push(m: Machine) -> None:
        m.stack.append(value)

    return push


def _number(layout: struct.Struct) -> Any:
    size, unpack_from = layout.size, layout.unpack_from  # inlined: ints come in every tensor's sizes

    def push(m: Machine) -> None:
        at = m.pos
        if at + size > len(m.data):
            raise m.cut_short(size)
        m.pos = at + size
        m.stack.append(unpack_from(m.data, at)[0])

    return push


def _long1(m: Machine) -> None:
    m.push(int.from_bytes(m.take(m.unpack(U8)), "little", signed=True))


def _proto(m: Machine) -> None:
    version = m.unpack(U8)
    if version > 5:
        raise Corrupt(f"a pickle protocol of at most 5, found {version}")


def _frame(m: Machine) -> None:
    """FRAME only says how many bytes the next operations take: a hint for reading files."""
    m.unpack(U64)


def _global(m: Machine) -> None:
    module = m.line()
    m.find_global(module, m.line())


def _stack_global(m: Machine) -> None:
    name = m.pop()
    module = m.pop()
    if type(module) is not str or type(name) is not str:
        raise Corrupt("a module and a name as strings")
    m.find_global(module, name)


def _binpersid(m: Machine) -> None:
    m.push(m.persistent(m.pop()))


def _mark(m: Machine) -> None:
    m.marks.append(m.stack)
    m.stack = []


def _put(layout: struct.Struct) -> Any:
    size, unpack_from = layout.size, layout.unpack_from  # inlined: torch.save memoizes nearly every object

    def put(m: Machine) -> None:
        at = m.pos
        if at + size > len(m.data):
            raise m.cut_short(size)
        if not m.stack:
            raise m.empty()
        m.pos = at + size
        m.memo[unpack_from(m.data, at)[0]] = m.stack[-1]

    return put


def _get(layout: struct.Struct) -> Any:
    def get(m: Machine) -> None:
        m.recall(m.unpack(layout))

    return get


def _memoize(m: Machine) -> None:
    m.remember(len(m.memo))


def _empty(kind: type) -> Any:
    def push(m: Machine) -> None:
        m.push(kind())

    return push


def _list(m: Machine) -> None:
    m.push(m.pop_mark())


def _tuple(m: Machine) -> None:
    m.push(tuple(m.pop_mark()))


STOP = ord(".")
# Every operation the machine follows (pickletools documents each), by its byte: what
# protocols 2 to 5 write for a state dict of tensors, strings, numbers, lists and tuples.
OPERATIONS: dict[int, Any] = {
    ord(op): handler
    for op, handler in {
        "\x80": _proto,  # PROTO
        "\x95": _frame,  # FRAME
        "(": _mark,  # MARK
        "N": _constant(None),  # NONE
        "\x88": _constant(True),  # NEWTRUE
        "\x89": _constant(False),  # NEWFALSE
        "J": _number(I32),  # BININT
        "K": _number(U8),  # BININT1
        "M": _number(U16),  # BININT2
        "\x8a": _long1,  # LONG1
        "G": _number(F64),  # BINFLOAT
        "X": _text(U32),  # BINUNICODE
        "\x8c": _text(U8),  # SHORT_BINUNICODE
        "\x8d": _text(U64),  # BINUNICODE8
        "U": _ascii(U8),  # SHORT_BINSTRING
        "T": _ascii(I32),  # BINSTRING
        "C": _bytes(U8),  # SHORT_BINBYTES
        "B": _bytes(U32),  # BINBYTES
        ")": _constant(()),  # EMPTY_TUPLE
        "t": _tuple,  # TUPLE
        "\x85": _tuple_of(1),  # TUPLE1
        "\x86": _tuple_of(2),  # TUPLE2
        "\x87": _tuple_of(3),  # TUPLE3
        "]": _empty(list),  # EMPTY_LIST
        "l": _list,  # LIST
        "a": _append,  # APPEND
        "e": _appends,  # APPENDS
        "}": _empty(dict),  # EMPTY_DICT
        "d": _dict,  # DICT
        "s": _setitem,  # SETITEM
        "u": _setitems,  # SETITEMS
        "q": _put(U8),  # BINPUT
        "r": _put(U32),  # LONG_BINPUT
        "\x94": _memoize,  # MEMOIZE
        "h": _get(U8),  # BINGET
        "j": _get(U32),  # LONG_BINGET
        "c": _global,  # GLOBAL
        "\x93": _stack_global,  # STACK_GLOBAL
        "R": _reduce,  # REDUCE
        "b": _build,  # BUILD
        "Q": _binpersid,  # BINPERSID
    }.items()
}

BY_BYTE = [OPERATIONS.get(op) for op in range(256)]  # a list: indexing it beats a dict lookup in the loop

# Operations a pickle may hold that the machine refuses by name: those that build what a
# state dict never holds (sets, huge ints), and those that create objects, call or look up
# things other than through the allowlist, or belong to protocols 0 and 1.
REFUSED: dict[int, tuple[str, type]] = {
    ord(op): refusal
    for op, refusal in {
        "\x8b": (f"an integer of more than {MAX_LONG_BYTES} bytes", TooLarge),  # LONG4
        "\x8f": ("a set", TooLarge),  # EMPTY_SET
        "\x90": ("a set", TooLarge),  # ADDITEMS
        "\x91": ("a frozenset", TooLarge),  # FROZENSET
        **{
            op: (f"the pickle operation {name}", Refused)
            for op, name in {
                "i": "INST",
                "o": "OBJ",
                "\x81": "NEWOBJ",
                "\x92": "NEWOBJ_EX",
                "P": "PERSID",
                "\x82": "EXT1",
                "\x83": "EXT2",
                "\x84": "EXT4",
                "\x96": "BYTEARRAY8",
                "\x97": "NEXT_BUFFER",
                "\x98": "READONLY_BUFFER",
                "0": "POP",
                "1": "POP_MARK",
                "2": "DUP",
                "I": "INT",
                "L": "LONG",
                "F": "FLOAT",
                "S": "STRING",
                "V": "UNICODE",
                "p": "PUT",
                "g": "GET",
                "\x8e": "BINBYTES8",
            }.items()
        },
    }.items()
}


def _refuse_operation(op: int, at: int) -> None:
    refusal = REFUSED.get(op)
    if refusal is None:
        raise Corrupt(f"an unknown operation {op:#04x} at byte {at}")
    found, kind = refusal
    raise kind(f"a state dict, found {found}")


def load(path: str, data: bytes) -> Any:
    """Unpickle data.pkl; tensors come back as TensorRef, nothing in the file is executed."""
    try:
        return Machine(data).run()
    except Refused as exc:
        message = str(exc)
        expected, _, found = message.partition(", found ")
        raise AnatomyError(path, escape(expected), escape(found) or "something else", exc.todo) from None
    except Corrupt as exc:
        raise CorruptFile(
            path, "a readable pickle (data.pkl)", escape(str(exc))[:200], "the file is corrupt; download it again"
        ) from None
    except (
        UnicodeDecodeError,
        TypeError,
    ) as exc:  # text that is not UTF-8; an allowed function given the wrong number of arguments
        raise CorruptFile(
            path,
            "a readable pickle (data.pkl)",
            escape(f"{type(exc).__name__}: {exc}")[:200],
            "the file is corrupt; download it again",
        ) from None


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
                raise AnatomyError(
                    path,
                    "a state dict holding each of its dicts once",
                    f"the dict under {escape(prefix[:200])} again",
                    HOSTILE,
                )
            walked.add(id(value))
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item, depth + 1)
        elif isinstance(value, (int, float, str, bool)):
            metadata[prefix] = str(value)

    walk("", obj, 0)
    return tensors, metadata
