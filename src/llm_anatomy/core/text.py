"""Make names from a checkpoint safe to print: a hostile file may put terminal escape
sequences or newlines into tensor names and config values, or invisible characters that
make two different names read the same (`lm_head.weight` and `lm_head\\u200b.weight`)."""

from __future__ import annotations

import re

# What is never shown raw, as (first, last) code points and why. Unicode's general
# categories Cc, Zl, Zp and Cf, and its Default_Ignorable_Code_Point property (characters a
# renderer shows as nothing when it does not support them); tests/core/test_text.py checks the
# table against both. Letters, marks and spaces of every script (CJK, Arabic, Devanagari...)
# are not in it: only characters that control, reorder or vanish.
CONTROLS = (  # refused in tensor names by the readers (has_unsafe): they move the cursor or reorder a line
    (0x00, 0x1F, "C0 controls: ESC starts terminal sequences, CR and LF forge lines"),
    (0x7F, 0x9F, "DEL and C1 controls (0x9b is a one-byte CSI)"),
    (0x2028, 0x2029, "line and paragraph separators"),
    (0x202A, 0x202E, "bidi embeddings and overrides"),
    (0x2066, 0x2069, "bidi isolates"),
)
INVISIBLE = (  # accepted in names (safetensors and torch accept them) but shown escaped
    (0x00AD, 0x00AD, "soft hyphen"),
    (0x034F, 0x034F, "combining grapheme joiner"),
    (0x0600, 0x0605, "Arabic number signs (prepended concatenation marks)"),
    (0x061C, 0x061C, "Arabic letter mark"),
    (0x06DD, 0x06DD, "Arabic end of ayah"),
    (0x070F, 0x070F, "Syriac abbreviation mark"),
    (0x0890, 0x0891, "Arabic pound and piastre marks above"),
    (0x08E2, 0x08E2, "Arabic disputed end of ayah"),
    (0x115F, 0x1160, "Hangul choseong and jungseong fillers"),
    (0x17B4, 0x17B5, "Khmer inherent vowels"),
    (0x180B, 0x180F, "Mongolian variation selectors and vowel separator"),
    (0x200B, 0x200F, "zero-width space, non-joiner and joiner; LRM, RLM"),
    (0x2060, 0x2065, "word joiner, invisible operators"),
    (0x206A, 0x206F, "deprecated format characters"),
    (0x3164, 0x3164, "Hangul filler"),
    (0xFE00, 0xFE0F, "variation selectors"),
    (0xFEFF, 0xFEFF, "zero-width no-break space (BOM)"),
    (0xFFA0, 0xFFA0, "halfwidth Hangul filler"),
    (0xFFF0, 0xFFFB, "reserved ignorables; interlinear annotation"),
    (0x110BD, 0x110BD, "Kaithi number sign"),
    (0x110CD, 0x110CD, "Kaithi number sign above"),
    (0x13430, 0x1343F, "Egyptian hieroglyph format controls"),
    (0x1BCA0, 0x1BCA3, "shorthand format controls"),
    (0x1D173, 0x1D17A, "musical beam, tie, slur and phrase controls"),
    (0xE0000, 0xE0FFF, "tag characters, variation selectors supplement"),
)


def _character_class(ranges: tuple[tuple[int, int, str], ...], keep: str = "") -> re.Pattern[str]:
    """A regex matching one character of the ranges, but those in keep."""
    spans = []
    for first, last, _ in ranges:
        for kept in map(ord, keep):
            if first <= kept <= last:
                spans.append((first, kept - 1))
                first = kept + 1
        spans.append((first, last))
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in spans if a <= b) + "]")


# Each compiled class costs ~0.5-0.8 ms at every start: escape() uses the page's, and
# escapes the newline by replace.
_CONTROL = _character_class(CONTROLS)
_UNSAFE_IN_PAGE = _character_class(CONTROLS + INVISIBLE, keep="\n")  # for whole pages, whose lines are meant


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    """Return text with control, bidi and invisible characters shown as \\xNN / \\uNNNN /
    \\UNNNNNNNN (Python's notation)."""
    return _UNSAFE_IN_PAGE.sub(_escape_char, text).replace("\n", "\\x0a")


def has_unsafe(text: str) -> bool:
    """Whether text holds a control or bidi character (CONTROLS), which no tensor name needs."""
    return _CONTROL.search(text) is not None


def escape_page(text: str) -> str:
    """Text output as a terminal may show it: unsafe characters as \\xNN / \\uNNNN, newlines kept."""
    return _UNSAFE_IN_PAGE.sub(_escape_char, text) if _UNSAFE_IN_PAGE.search(text) else text


def _json_escape_char(match: re.Match[str]) -> str:
    units = match.group().encode("utf-16-be")  # above U+FFFF: a surrogate pair, as JSON spells it
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def escape_json(text: str) -> str:
    """JSON text safe on a terminal and still the same JSON: json.dumps escapes C0 controls in
    strings but leaves DEL, C1, bidi and invisible characters raw; outside strings JSON has
    only ASCII and whitespace, so each such character is inside a string, where \\uNNNN means
    the same."""
    return _UNSAFE_IN_PAGE.sub(_json_escape_char, text) if _UNSAFE_IN_PAGE.search(text) else text
