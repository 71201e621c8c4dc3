"""The one JSON loader for everything a checkpoint carries (safetensors headers, shard
indexes, config.json, params.json): a byte cap per kind, a nesting bound and a value-count
bound checked before json.loads, and one line for whatever json.loads refuses.

json.loads recurses once per nesting level (100,000 levels is a RecursionError) and
allocates ~50 bytes per value (a 100 MB header of `"a":{}` pairs is gigabytes), so both
are measured first on the bytes outside strings, at C speed: strip escaped backslashes and
quotes, split on quotes, keep the even pieces."""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from .sources import read_capped
from ..core.errors import AnatomyError
from ..core.text import escape

MAX_DEPTH = 64  # config.json nests 4 levels, tokenizer.json 6; torch and transformers never 64
DELETE_ALL_BUT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{},')  # translate() deletes these bytes
BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
INT_DIGITS = 4300  # Python's int/str conversion limit (sys.get_int_max_str_digits())

# Byte caps per kind of file. The largest real ones: DeepSeek-V3's index is 9 MB; configs
# are a few KB (id2label tables a few hundred KB).
MAX_INDEX_BYTES = 20 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _outside_strings(raw: bytes) -> bytes:
    """The brackets and commas of raw that lie outside strings, in order. Fast path: keep
    only quotes, brackets and commas, then drop the "" pairs; when no quote is left, every
    string held none of them and the pairing was exact. Otherwise split on the quotes."""
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    reduced = unescaped.translate(None, DELETE_ALL_BUT_STRUCTURE).replace(b'""', b"")
    if b'"' not in reduced:
        return reduced
    return b"".join(unescaped.split(b'"')[::2]).translate(None, DELETE_ALL_BUT_STRUCTURE)


def _depth_exceeds(brackets: bytes, limit: int) -> bool:
    """Whether brackets (only [ and ] left, braces made brackets: the parser recurses the
    same into both) nest deeper than limit. Each pass removes the innermost pairs (one
    left-to-right replace never sees the pairs it uncovers), so a document of depth d is
    empty after d passes. What does not pair up is invalid JSON, for json.loads to report,
    unless it is long enough to recurse on."""
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return len(brackets) > limit
        brackets = shorter
    return bool(brackets)


def scan(raw: bytes, path: str, what: str, todo: str) -> bytes:
    """Refuse raw if it nests deeper than MAX_DEPTH; return its brackets and commas outside
    strings, for callers that bound what they count (values, objects) before parsing."""
    outside = _outside_strings(raw)
    if _depth_exceeds(outside.replace(b",", b"").translate(BRACES_AS_BRACKETS), MAX_DEPTH):
        raise AnatomyError(path, f"{what} nested at most {MAX_DEPTH} levels deep", "deeper nesting", todo)
    return outside


def value_count(outside: bytes) -> int:
    """An upper bound on the values in a document, from scan()'s result."""
    return outside.count(b",") + outside.count(b"{") + outside.count(b"[") + 1


def parse(raw: bytes, path: str, what: str, todo: str) -> Any:
    """json.loads of raw that scan() accepted, every failure one line."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise AnatomyError(path, what, f"invalid UTF-8 at byte {exc.start}", todo) from None
    except RecursionError:  # brackets the scan could not pair: still one line
        raise AnatomyError(path, f"{what} nested at most {MAX_DEPTH} levels deep", "deeper nesting", todo) from None
    except ValueError as exc:
        message = str(exc)
        if "integer string conversion" in message:
            raise AnatomyError(path, what, f"an integer of more than {INT_DIGITS} digits", todo) from None
        raise AnatomyError(path, what, f"invalid JSON ({escape(message)})", todo) from None


def loads(raw: bytes, path: str, what: str, todo: str, max_values: int | None = None) -> Any:
    """Parse raw as JSON, or raise one AnatomyError line naming path. max_values: refuse
    documents with more values than this before any is allocated."""
    outside = scan(raw, path, what, todo)
    if max_values is not None and value_count(outside) > max_values:
        raise AnatomyError(path, f"{what} of at most {max_values} values", f"{value_count(outside)} values", todo)
    return parse(raw, path, what, todo)


def read(path: str, what: str, limit: int, todo: str, max_values: int | None = None) -> Any:
    """A whole small JSON file (index, config), refused past limit bytes before reading."""
    return loads(read_capped(path, limit, what, todo), path, what, todo, max_values)


def read_json_object(path: str, what: str) -> tuple[dict[str, Any] | None, AnatomyError | None]:
    """(object, None), or (None, why not) for a config file: config.json, Meta's params.json."""
    todo = f"fix or re-download {escape(os.path.basename(path))}"
    try:
        value = read(path, what, MAX_CONFIG_BYTES, todo)
    except AnatomyError as exc:
        return None, exc
    if not isinstance(value, dict):
        return None, AnatomyError(path, "a JSON object", type(value).__name__, todo)
    return value, None
