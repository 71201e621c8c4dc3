"""Pickles as `scan` reads them: every global outside the loader's allowlist, how a load
would reach it, and the oddities around it, without running or building anything.

The loader's restricted unpickler (formats/restricted_pickle) stops at the first thing it
refuses, as a loader must; a scan has to go on past it to list everything. So the scan
follows the opcodes with the standard library's reader (pickletools.genops, which decodes
arguments and never executes) over a stack of symbols: strings stay strings (to name the
globals STACK_GLOBAL builds), globals stay globals (to see which ones REDUCE, NEWOBJ,
INST, OBJ or BUILD reach), everything else is a placeholder, so no container is ever
built and a pickle bomb costs what its opcodes cost. The allowlist is the loader's own
(ALLOWED): what the readers load is exactly what the scan does not report."""

from __future__ import annotations

import io
import pickletools
import zipfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from ...core.text import escape
from ...formats.restricted_pickle import ALLOWED, MAX_KEY_INT, MAX_OPCODES
from ...formats.signatures import LEGACY_TORCH_MAGIC, ZIP_MAGIC
from ...core.errors import AnatomyError
from ...formats.torch_zip import MAX_MEMBERS, MAX_PICKLE_BYTES, _check_directory
from .rules import Finding

# Plain data types torch's weights_only unpickler accepts too: nothing runs through them.
DATA_GLOBALS = {
    ("builtins", "set"),
    ("__builtin__", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "frozenset"),
    ("builtins", "bytearray"),
    ("__builtin__", "bytearray"),
    ("builtins", "complex"),
    ("__builtin__", "complex"),
    ("collections", "Counter"),
    ("torch", "device"),
}
# torch.save before 1.6: magic number, protocol, system info, the object, storage keys; then raw storages.
LEGACY_PICKLES = 5
MAX_PICKLES = 16  # pickles followed one after the other in one file
MAX_NESTING = 2  # pickles in byte strings in pickles, followed this deep
NESTED_MAGIC = (ZIP_MAGIC, b"\x80")  # a zip, or a pickle of protocol 2 or later
CALLS = {"REDUCE", "NEWOBJ", "NEWOBJ_EX", "INST", "OBJ", "BUILD"}
STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
NUMBERS = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
TUPLES = {"TUPLE", "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"}
PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
GETS = {"GET", "BINGET", "LONG_BINGET"}
UNKNOWN = object()  # any value the scan does not follow


class _Global:
    """A global as the pickle names it: the first byte naming it, and how loading reaches it."""

    def __init__(self, module: str, name: str, at: int) -> None:
        self.module, self.name, self.at = module, name, at
        self.count = 0
        self.uses: set[str] = set()

    @property
    def allowed(self) -> bool:
        return (self.module, self.name) in ALLOWED


class _Made:
    """What calling something returns; dict-like when it is an allowed OrderedDict()."""

    def __init__(self, of: Any) -> None:
        self.of = of
        self.dictlike = isinstance(of, _Global) and (of.module, of.name) == ("collections", "OrderedDict")


class _Dict:
    """A dict the pickle builds (EMPTY_DICT, DICT): where BUILD may set state."""


class _Tuple:
    """A tuple: as a dict key, hashing it walks all of it (and what the memo shares, again)."""


class _Scan:
    """One pickle followed from `start` in `data`: its stack of symbols, marks and memo, and
    the globals it names. Findings go to `out`; `place` turns an offset into a location."""

    def __init__(self, data: bytes, file: str, place: Callable[[int], str], out: list[Finding], depth: int) -> None:
        self.data, self.file, self.place, self.out, self.depth = data, file, place, out, depth
        self.stack: list = []
        self.marks: list[list] = []
        self.memo: dict[Any, Any] = {}
        self.globals: dict[tuple[str, str], _Global] = {}
        self.bad_key = False  # one finding per pickle for keys that hash at unbounded cost

    def pop(self) -> Any:
        return self.stack.pop() if self.stack else UNKNOWN  # a loader would fail here; the scan goes on

    def top(self) -> Any:
        return self.stack[-1] if self.stack else UNKNOWN

    def pop_mark(self) -> list:
        items = self.stack
        self.stack = self.marks.pop() if self.marks else []
        return items

    def name_global(self, module: str, name: str, at: int) -> _Global:
        found = self.globals.setdefault((module, name), _Global(module, name, at))
        found.count += 1
        return found

    def check_keys(self, keys: list, at: int) -> None:
        """Keys a loader hashes when it sets them: a tuple (a tuple of itself through the memo,
        64 deep, takes 2**64 steps) or integers past MAX_KEY_INT (which can all share a hash)."""
        if self.bad_key:
            return
        for key in keys:
            if isinstance(key, _Tuple) or (type(key) is int and not -MAX_KEY_INT <= key <= MAX_KEY_INT):
                self.bad_key = True
                kind = "a tuple" if isinstance(key, _Tuple) else f"an integer of {key.bit_length()} bits"
                self.add("LA-PICKLE-010", at, f"a dict key that is {kind}")
                return

    def reach(self, value: Any, how: str) -> None:
        if isinstance(value, _Global):
            value.uses.add(how)

    def add(self, rule: str, at: int, message: str, symbol: tuple[str, str] = ("", "")) -> None:
        self.out.append(Finding(rule, self.file, self.place(at), message, escape(symbol[0]), escape(symbol[1])))

    def run(self, start: int) -> int | None:
        """Follow one pickle; the offset after its STOP, or None when it cannot be followed."""
        stream = io.BytesIO(self.data)
        stream.seek(start)
        operations = 0
        try:
            for op, arg, at in pickletools.genops(stream):
                operations += 1
                if operations > MAX_OPCODES:
                    self.add("LA-PICKLE-008", at, f"more than {MAX_OPCODES} operations; the scan stopped here")
                    return None
                if op.name == "STOP":
                    return stream.tell()
                self.step(op, arg, at)
        except (
            Exception
        ) as exc:  # pickletools' readers raise ValueError, UnicodeDecodeError, struct errors, ... on damaged bytes
            self.add("LA-PICKLE-007", stream.tell(), escape(f"{type(exc).__name__}: {exc}")[:200])
            return None
        finally:
            self.report_globals()
        return None  # not reached: genops raises when the data ends before a STOP

    def report_globals(self) -> None:
        for (module, name), found in self.globals.items():
            if found.allowed:
                continue
            what = escape(f"{module}.{name}")
            times = f" ({found.count} times)" if found.count > 1 else ""
            if (module, name) in DATA_GLOBALS:
                self.add("LA-PICKLE-003", found.at, f"{what}{times}", (module, name))
            elif found.uses:
                self.add(
                    "LA-PICKLE-001",
                    found.at,
                    f"{what} reached by {'/'.join(sorted(found.uses))}{times}",
                    (module, name),
                )
            else:
                self.add("LA-PICKLE-002", found.at, f"{what} named, never called{times}", (module, name))

    def step(self, op: Any, arg: Any, at: int) -> None:
        name = op.name
        handler = HANDLERS.get(name)
        if handler is not None:
            handler(self, arg, at)
        elif name in STRINGS:
            self.stack.append(arg if isinstance(arg, str) else UNKNOWN)
        elif name in NUMBERS:
            self.stack.append(arg if type(arg) is int else UNKNOWN)
        elif name in TUPLES:
            self.generic(op)
            self.stack[-1] = _Tuple()
        elif name in BYTES:
            self.stack.append(UNKNOWN)
            if (
                isinstance(arg, (bytes, bytearray))
                and self.depth < MAX_NESTING
                and bytes(arg[:4]).startswith(NESTED_MAGIC)
            ):
                self.nested(bytes(arg), at)
        elif name in PUTS:
            self.memo[arg] = self.top()
        elif name in GETS:
            self.stack.append(self.memo.get(arg, UNKNOWN))
        else:
            self.generic(op)

    def generic(self, op: Any) -> None:
        """Any other operation by its documented stack effect: what it takes off, placeholders on."""
        before = op.stack_before
        if pickletools.markobject in before:
            self.pop_mark()
            before = before[: before.index(pickletools.markobject)]
        for _ in before:
            self.pop()
        self.stack.extend(UNKNOWN for _ in op.stack_after)

    def nested(self, blob: bytes, at: int) -> None:
        """A pickle or zip inside a byte string: code in the pickle can load it (torch.load(BytesIO(...)))."""
        self.add("LA-PICKLE-009", at, f"a byte string of {len(blob)} bytes starting {escape(repr(blob[:4]))}")
        inner = f"{self.place(at)} > "
        if blob.startswith(ZIP_MAGIC):
            try:
                _check_directory(_Blob(blob, self.file))  # the loader's bounds, before zipfile builds the directory
            except AnatomyError as exc:
                self.out.append(
                    Finding(
                        "LA-ZIP-003", self.file, inner + "zip directory", f"expected {exc.expected}, found {exc.found}"
                    )
                )
                return
            scan_zip(io.BytesIO(blob), self.file, self.out, inner, self.depth + 1)
        else:
            scan_pickles(blob, self.file, self.out, inner, self.depth + 1)


class _Blob:
    """Bytes as the byte source torch_zip's directory check reads from."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.size, self.name = data, len(data), name

    def read(self, start: int, length: int, what: str) -> bytes:
        return self.data[start : start + length]


def _mark(s: _Scan, arg: Any, at: int) -> None:
    s.marks.append(s.stack)
    s.stack = []


def _dup(s: _Scan, arg: Any, at: int) -> None:
    s.stack.append(s.top())


def _memoize(s: _Scan, arg: Any, at: int) -> None:
    s.memo[len(s.memo)] = s.top()


def _global(s: _Scan, arg: Any, at: int) -> None:
    module, _, name = str(arg).partition(" ")
    s.stack.append(s.name_global(module, name, at))


def _stack_global(s: _Scan, arg: Any, at: int) -> None:
    name, module = s.pop(), s.pop()
    if isinstance(module, str) and isinstance(name, str):
        s.stack.append(s.name_global(module, name, at))
    else:
        s.add("LA-PICKLE-004", at, "STACK_GLOBAL of a module and name that are not plain strings in the pickle")
        s.stack.append(UNKNOWN)


def _extension(s: _Scan, arg: Any, at: int) -> None:
    s.add("LA-PICKLE-004", at, f"extension code {arg} (copyreg's registry names the global)")
    s.stack.append(UNKNOWN)


def _inst(s: _Scan, arg: Any, at: int) -> None:
    module, _, name = str(arg).partition(" ")
    s.pop_mark()
    found = s.name_global(module, name, at)
    s.reach(found, "INST")
    s.stack.append(_Made(found))


def _obj(s: _Scan, arg: Any, at: int) -> None:
    items = s.pop_mark()
    target = items[0] if items else UNKNOWN
    s.reach(target, "OBJ")
    s.stack.append(_Made(target))


def _call(how: str, arguments: int) -> Callable[[_Scan, Any, int], None]:
    def call(s: _Scan, arg: Any, at: int) -> None:
        for _ in range(arguments):
            s.pop()
        target = s.pop()
        s.reach(target, how)
        s.stack.append(_Made(target))

    return call


def _build(s: _Scan, arg: Any, at: int) -> None:
    s.pop()
    target = s.top()
    if isinstance(target, _Dict) or (isinstance(target, _Made) and target.dictlike):
        return
    if isinstance(target, _Global) and not target.allowed:
        s.reach(target, "BUILD")
    elif isinstance(target, _Made) and isinstance(target.of, _Global) and not target.of.allowed:
        s.reach(target.of, "BUILD")
    else:
        kind = (
            f"the global {target.module}.{target.name}"
            if isinstance(target, _Global)
            else "an object the scan does not follow"
        )
        s.add("LA-PICKLE-005", at, escape(f"state set on {kind}"))


def _new_dict(s: _Scan, arg: Any, at: int) -> None:
    s.stack.append(_Dict())


def _dict(s: _Scan, arg: Any, at: int) -> None:
    s.check_keys(s.pop_mark()[::2], at)
    s.stack.append(_Dict())


def _setitem(s: _Scan, arg: Any, at: int) -> None:
    s.pop()
    s.check_keys([s.pop()], at)


def _setitems(s: _Scan, arg: Any, at: int) -> None:
    s.check_keys(s.pop_mark()[::2], at)


def _add_marked(s: _Scan, arg: Any, at: int) -> None:
    """APPENDS, ADDITEMS: the target stays on the stack as it was."""
    s.pop_mark()


def _append(s: _Scan, arg: Any, at: int) -> None:
    s.pop()


HANDLERS: dict[str, Callable[[_Scan, Any, int], None]] = {
    "MARK": _mark,
    "DUP": _dup,
    "MEMOIZE": _memoize,
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "EXT1": _extension,
    "EXT2": _extension,
    "EXT4": _extension,
    "INST": _inst,
    "OBJ": _obj,
    "REDUCE": _call("REDUCE", 1),
    "NEWOBJ": _call("NEWOBJ", 1),
    "NEWOBJ_EX": _call("NEWOBJ_EX", 2),
    "BUILD": _build,
    "EMPTY_DICT": _new_dict,
    "DICT": _dict,
    "SETITEM": _setitem,
    "SETITEMS": _setitems,
    "APPENDS": _add_marked,
    "ADDITEMS": _add_marked,
    "APPEND": _append,
}


def _at(prefix: str, base: int = 0) -> Callable[[int], str]:
    return lambda at: f"{prefix}byte {at - base}"


def scan_pickles(
    data: bytes, file: str, out: list[Finding], prefix: str = "", depth: int = 0, leading: int | None = None
) -> None:
    """Every pickle in data, one after the other as a loader that reads on would see them.
    leading: the format puts that many pickles first, then raw bytes (a legacy torch file's
    five, then its storages; the one of a tar checkpoint's `storages` member)."""
    if leading is None and data.startswith(LEGACY_TORCH_MAGIC):
        leading = LEGACY_PICKLES
    limit = leading or MAX_PICKLES
    place = _at(prefix)
    end = _Scan(data, file, place, out, depth).run(0)
    followed = 1
    while end is not None and end < len(data) and followed < limit:
        if leading is None and followed == 1:
            out.append(
                Finding("LA-PICKLE-006", file, place(end), f"{len(data) - end} bytes after the STOP at byte {end - 1}")
            )
        # Bytes after STOP are followed as another pickle only when one reads to its STOP:
        # random trailing bytes are reported once, above, not as a damaged pickle.
        trial: list[Finding] = []
        next_end = _Scan(data, file, place, trial, depth).run(end) if leading or data[end] in b"\x80(c}]" else None
        if next_end is None and not leading:
            return
        out.extend(trial)
        end, followed = next_end, followed + 1


# torch.save's format before 0.4 (torch.load still reads it): a tar of these members.
TAR_PICKLES = {
    "sys_info": None,
    "pickle": None,
    "tensors": 1,
    "storages": 1,
}  # name -> leading pickles (None: pickles only)
MAX_TAR_MEMBERS = 1024


TAR_BLOCK = 512
MAX_TAR_HEADER_DATA = 1 << 20  # a long name or pax header of more is no checkpoint's
HEADER_TYPES = b"LKxg"  # GNU long name and link, pax extended and global headers: tarfile reads their data whole


def _tar_headers_bounded(fileobj: Any) -> str | None:
    """None when no long-name or pax header holds more than MAX_TAR_HEADER_DATA bytes (tarfile
    reads those into memory whole), else what was found: checked header by header first."""
    at = 0
    for _ in range(MAX_TAR_MEMBERS + 1):
        fileobj.seek(at)
        header = fileobj.read(TAR_BLOCK)
        if len(header) < TAR_BLOCK or header == bytes(TAR_BLOCK):
            return None
        try:
            size = int(header[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            return None  # left to tarfile to refuse
        if header[156:157] and header[156:157] in HEADER_TYPES and size > MAX_TAR_HEADER_DATA:
            return f"a {header[156:157].decode()} header of {size} bytes"
        at += TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK
    return None


def scan_tar(fileobj: Any, file: str, out: list[Finding]) -> None:
    """A tar checkpoint: names escaping it, then each member torch.load unpickles."""
    import tarfile

    oversized = _tar_headers_bounded(fileobj)
    if oversized:
        out.append(Finding("LA-ZIP-003", file, "tar", oversized))
        return
    fileobj.seek(0)
    try:
        archive = tarfile.open(fileobj=fileobj, mode="r:")
        members = []
        for member in archive:  # one header at a time: a tar has no directory to size first
            members.append(member)
            if len(members) > MAX_TAR_MEMBERS:
                out.append(Finding("LA-ZIP-003", file, "tar", f"more than {MAX_TAR_MEMBERS} members"))
                return
    except (tarfile.TarError, OSError) as exc:
        out.append(Finding("LA-ZIP-003", file, "tar", escape(f"{type(exc).__name__}: {exc}")[:200]))
        return
    for member in members:
        where = escape(member.name)
        if _escapes(member.name):
            out.append(Finding("LA-ZIP-002", file, where, f"entry name {where!r}"))
        if not member.isfile() or not (member.name in TAR_PICKLES or member.name.endswith(".pkl")):
            continue
        if member.size > MAX_PICKLE_BYTES and TAR_PICKLES.get(member.name) is None:
            out.append(
                Finding("LA-ZIP-003", file, where, f"a pickle of {member.size} bytes, more than {MAX_PICKLE_BYTES}")
            )
            continue
        handle = archive.extractfile(member)
        if handle is not None:
            scan_pickles(handle.read(MAX_PICKLE_BYTES), file, out, f"{where}, ", leading=TAR_PICKLES.get(member.name))


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts


def scan_zip(fileobj: Any, file: str, out: list[Finding], prefix: str = "", depth: int = 0) -> None:
    """A zip as torch.save writes it: entry names (twice, or escaping), then every .pkl entry's pickles."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except Exception as exc:  # zipfile raises many types on a damaged directory
        out.append(
            Finding(
                "LA-ZIP-003", file, prefix.rstrip(" >") or "zip directory", escape(f"{type(exc).__name__}: {exc}")[:200]
            )
        )
        return
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            out.append(
                Finding("LA-ZIP-003", file, prefix + "zip directory", f"{len(infos)} entries, more than {MAX_MEMBERS}")
            )
            return
        seen: dict[str, int] = {}
        for info in infos:
            seen[info.filename] = seen.get(info.filename, 0) + 1
            if seen[info.filename] == 2:
                out.append(
                    Finding(
                        "LA-ZIP-001",
                        file,
                        prefix + escape(info.filename),
                        f"entry {escape(info.filename)} stored more than once",
                    )
                )
            if _escapes(info.filename):
                out.append(
                    Finding("LA-ZIP-002", file, prefix + escape(info.filename), f"entry name {escape(info.filename)!r}")
                )
        for info in infos:
            if info.filename.endswith(".pkl"):
                _scan_member(archive, info, file, out, prefix, depth)


def _scan_member(archive: Any, info: Any, file: str, out: list[Finding], prefix: str, depth: int) -> None:
    where = prefix + escape(info.filename)
    if info.file_size > MAX_PICKLE_BYTES:
        out.append(
            Finding("LA-ZIP-003", file, where, f"a pickle of {info.file_size} bytes, more than {MAX_PICKLE_BYTES}")
        )
        return
    try:
        with archive.open(info) as member:
            data = member.read(MAX_PICKLE_BYTES + 1)
    except Exception as exc:  # as above: CRC errors, unsupported compression, encryption, zlib errors
        out.append(Finding("LA-ZIP-003", file, where, escape(f"{type(exc).__name__}: {exc}")[:200]))
        return
    if len(data) > MAX_PICKLE_BYTES:
        out.append(Finding("LA-ZIP-003", file, where, f"a pickle of more than {MAX_PICKLE_BYTES} bytes"))
        return
    scan_pickles(data, file, out, f"{where}, ", depth)
