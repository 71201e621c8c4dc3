"""The shared number formats of the text renderers."""

import math

from llm_anatomy.render.text import counted, human_bytes, human_count, json_number, share, significant


def test_share():
    assert [share(1, 3), share(266_240, 6_738_415_616), share(0, 5), share(5, 5), share(0, 0)] == [
        "33.3%",
        "<0.1%",
        "0.0%",
        "100.0%",
        "-",
    ]


def test_counts_and_sizes():
    assert [counted(1, "tensor"), counted(291, "tensor"), counted(6_738_415_616, "parameter")] == [
        "1 tensor",
        "291 tensors",
        "6,738,415,616 parameters",
    ]
    assert [human_bytes(34), human_bytes(13_476_831_232), human_count(6_738_415_616), human_count(999)] == [
        "34 B",
        "12.55 GiB",
        "6.74B",
        "999",
    ]


def test_statistics_numbers():
    assert [significant(0.019973), significant(-2.4671e-05), significant(759.53)] == ["0.01997", "-2.467e-05", "759.5"]
    assert [json_number(math.nan), json_number(-math.inf), json_number(1.5), json_number(3)] == [None, None, 1.5, 3]


# --- core.text: what is escaped ---------------------------------------------------------------

import json  # noqa: E402
import sys  # noqa: E402
import unicodedata  # noqa: E402

import pytest  # noqa: E402
import regex  # noqa: E402  (transformers' dependency: Unicode properties the re module lacks)

from llm_anatomy.core.text import CONTROLS, INVISIBLE, escape, escape_json, escape_page, has_unsafe  # noqa: E402

ALL = range(sys.maxunicode + 1)
TABLE = {code for first, last, _ in CONTROLS + INVISIBLE for code in range(first, last + 1)}


def test_the_table_is_unicodes_controls_formats_and_default_ignorables():
    """Against this Python's Unicode database and the regex module's (often newer): every
    Cc, Cf, Zl, Zp and Default_Ignorable_Code_Point character is in the table, and nothing else."""
    categories = {c for c in ALL if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp")}
    newer = regex.compile(r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]")
    ignorable = {c for c in ALL if newer.match(chr(c))}
    assert categories | ignorable == TABLE


def test_every_character_of_the_table_is_escaped_and_nothing_else():
    notation = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}" for c in TABLE}
    assert {c: escape(chr(c)) for c in ALL if escape(chr(c)) != chr(c)} == notation


REPORTED = {  # the hostile report's O1 rows: names that read as lm_head.weight
    "lm_head\u200b.weight": "lm_head\\u200b.weight",  # zero-width space
    "lm_head.weight\u200e": "lm_head.weight\\u200e",  # left-to-right mark
    "lm_head.weight\u200f": "lm_head.weight\\u200f",  # right-to-left mark
    "\u061clm_head.weight": "\\u061clm_head.weight",  # Arabic letter mark
    "lm_head.\ufeffweight": "lm_head.\\ufeffweight",  # BOM
    "lm_head.weight\U000e0041": "lm_head.weight\\U000e0041",  # tag LATIN CAPITAL A
    "lm_\ufff9head.weight": "lm_\\ufff9head.weight",  # interlinear annotation anchor
    "lm_head.weight\xad": "lm_head.weight\\xad",  # soft hyphen
    "lm_head.w\u2060eight": "lm_head.w\\u2060eight",  # word joiner
    "lm_head.weight\u180e": "lm_head.weight\\u180e",  # Mongolian vowel separator
}


@pytest.mark.parametrize("name", REPORTED)
def test_invisible_characters_are_escaped_and_kept_in_names(name):
    assert (escape(name), escape_page(name + "\n"), has_unsafe(name)) == (REPORTED[name], REPORTED[name] + "\n", False)
    dumped = json.dumps({name: 1}, ensure_ascii=False)
    assert escape_json(dumped).isascii() and json.loads(escape_json(dumped)) == {name: 1}


LEGITIMATE = [
    "模型的权重",
    "モデル　の重み",
    "모델 가중치",
    "نموذج اللغة",
    "मॉडल",
    "Модель",
    "μοντέλο",
    "🦙 llama",
    "naïve café",
]


def test_text_of_other_scripts_is_shown_as_it_is():
    assert [escape(text) for text in LEGITIMATE] == LEGITIMATE
    assert escape("👩\u200d💻 ❤\ufe0f") == "👩\\u200d💻 ❤\\ufe0f"  # joined emoji: rare in a checkpoint, escaped
