"""Make names from a checkpoint safe to print: a hostile file may put terminal escape
sequences or newlines into tensor names and config values."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """Return text with control and bidi-override characters shown as \\xNN / \\uNNNN."""
    return _UNSAFE.sub(_escape_char, text)


def has_unsafe(text: str) -> bool:
    return _UNSAFE.search(text) is not None


# The same characters but the newline, for whole pages of output whose lines are meant.
_UNSAFE_IN_PAGE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_page(text: str) -> str:
    """Text output as a terminal may show it: unsafe characters as \\xNN / \\uNNNN, newlines kept."""
    return _UNSAFE_IN_PAGE.sub(_escape_char, text) if _UNSAFE_IN_PAGE.search(text) else text


def _json_escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_json(text: str) -> str:
    """JSON text safe on a terminal and still the same JSON: json.dumps escapes C0 controls in
    strings but leaves DEL, C1 and bidi controls raw; outside strings JSON has only ASCII and
    whitespace, so each such character is inside a string, where \\uNNNN means the same."""
    return _UNSAFE_IN_PAGE.sub(_json_escape_char, text) if _UNSAFE_IN_PAGE.search(text) else text
