"""HTML building blocks: escaping, elements, tables and the self-contained page shell.

Everything that came from a checkpoint passes through esc(): control characters are
shown as \\xNN (core/text.py) and then HTML-escaped, so a tensor name can neither break the
markup nor hide itself. The page allows no external resource at all: a Content Security
Policy forbids every fetch, so the report stays offline even if a bug slipped a URL in."""

from __future__ import annotations

import html
import os
import re
from typing import Sequence

from ..core.text import escape

# Only inline styles, inline scripts and data: images; nothing is ever fetched.
CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def esc(value: object) -> str:
    """Text safe inside an element or a quoted attribute."""
    return html.escape(escape(str(value)), quote=True)


# Where a name may wrap: after a separator (not inside "3.1"), before a capitalised word
# (Qwen2|Moe, LM|Head) and between a lower-case letter and a capital (Causal|LM).
WORD_BOUNDARY = re.compile(r"(?<=[-_/])|(?<=\.)(?!\d)|(?<=[A-Za-z0-9])(?=[A-Z][a-z])|(?<=[a-z])(?=[A-Z])")


def breakable(name: object) -> str:
    """A class or model name, escaped, with <wbr> where it may wrap between words, so a narrow
    column breaks Qwen2MoeForCausalLM as Qwen2|Moe|For|Causal|LM and never inside a word."""
    return "<wbr>".join(esc(part) for part in WORD_BOUNDARY.split(str(name)) if part)


def attributes(attrs: dict[str, object]) -> str:
    """` key="value"` pairs; a trailing underscore allows Python keywords (class_)."""
    return "".join(
        f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' for key, value in attrs.items() if value is not None
    )


def element(tag: str, content: str = "", **attrs: object) -> str:
    """<tag attrs>content</tag>; content is markup and is not escaped again."""
    return f"<{tag}{attributes(attrs)}>{content}</{tag}>"


def section(anchor: str, title: str, body: str) -> str:
    return element("section", element("h2", esc(title)) + body, id=anchor)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    numeric: Sequence[int] = (),
    sort_keys: Sequence[Sequence[object]] | None = None,
    row_classes: Sequence[str | None] | None = None,
    **attrs: object,
) -> str:
    """A table whose cells are already markup; columns in `numeric` are right-aligned.

    `sort_keys`, one per row, puts each cell's raw value in data-sort, so the page's
    script sorts "1.50 GiB" after "12.00 MiB" (None: sort by the text). `row_classes`
    marks rows (e.g. "bad", "warn")."""
    keys = sort_keys if sort_keys is not None else [[None] * len(header)] * len(rows)
    classes = row_classes if row_classes is not None else [None] * len(rows)
    head = "".join(element("th", esc(h), class_="num" if i in numeric else None) for i, h in enumerate(header))
    body = "".join(
        element(
            "tr",
            "".join(
                element("td", cell, class_="num" if i in numeric else None, data_sort=key)
                for i, (cell, key) in enumerate(zip(row, row_keys))
            ),
            class_=row_class,
        )
        for row, row_keys, row_class in zip(rows, keys, classes)
    )
    return element("table", element("thead", element("tr", head)) + element("tbody", body), **attrs)


ASSETS = os.path.join(os.path.dirname(__file__), "assets")


def asset(name: str) -> str:
    """A file shipped under render/assets (stylesheet, table script, page words).

    A plain open(): importlib.resources costs more to import than the whole page takes to render."""
    with open(os.path.join(ASSETS, name), encoding="utf-8") as handle:
        return handle.read()


# Marks a page as ours, first in <head>: `report -o` replaces an existing file only if it has this.
GENERATOR = '<meta name="generator" content="llm-anatomy">'


def page(title: str, lang: str, body: str, css: str, script: str = "") -> str:
    """One HTML5 document with its style and script inlined."""
    head = (
        f'<meta charset="utf-8">{GENERATOR}'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CONTENT_SECURITY_POLICY)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{css}</style>"
    )
    tail = f"<script>{script}</script>" if script else ""
    return f'<!DOCTYPE html>\n<html lang="{esc(lang)}"><head>{head}</head><body>{body}{tail}</body></html>\n'


# ---------------------------------------------------------------- Jupyter views

# The notebook views (Model, Module, Summary, Trace... _repr_html_) sit in a page that is not
# ours (JupyterLab, an nbconvert export): the report's stylesheet comes along scoped to this
# class, so the figures draw as in the report (their SVG shapes are styled by class: without
# the rules a box is solid black) and nothing leaks into the notebook's own styles.
NOTEBOOK_CLASS = "llm-anatomy"
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_MEDIA = re.compile(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}")
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
# Page-level selectors that become the view's own box; the page's column (main) is not the view's.
_PAGE_SELECTORS = {":root", "body"}
_PAGE_ONLY = {"main"}

# Text tables (the tree, the trace) must keep their columns: monospace, never wrapped. Inline,
# so that no notebook or export stylesheet (pre-wrap, a proportional font) can override it.
PRE_STYLE = (
    "font-family: ui-monospace, SFMono-Regular, DejaVu Sans Mono, Menlo, Consolas, monospace; "
    "font-size: 12.5px; line-height: 1.35; white-space: pre; overflow-wrap: normal; word-break: normal; "
    "overflow-x: auto; tab-size: 8; margin: 6px 0; padding: 0; background: none"
)


def scoped_css(css: str, scope: str) -> str:
    """The report's rules with each selector under `scope` (its page selectors become scope
    itself); @media blocks (print) left out."""
    rules = []
    for selectors, body in _RULE.findall(_MEDIA.sub("", _COMMENT.sub("", css))):
        if selectors.strip() in _PAGE_ONLY:
            continue
        scoped = (scope if s.strip() in _PAGE_SELECTORS else f"{scope} {s.strip()}" for s in selectors.split(","))
        rules.append(f"{', '.join(scoped)} {{{' '.join(body.split())}}}")
    return "\n".join(rules)


def pre(text: str) -> str:
    """A text table in a notebook: escaped line by line (esc() would show a newline as \\x0a)."""
    return element("pre", "\n".join(esc(line) for line in text.split("\n")), style=PRE_STYLE)


def notebook(body: str) -> str:
    """A Jupyter view: body with the report's styles, scoped to it."""
    style = element("style", scoped_css(asset("report.css"), f".{NOTEBOOK_CLASS}"))
    return element("div", style + body, class_=NOTEBOOK_CLASS)
