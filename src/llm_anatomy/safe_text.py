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
