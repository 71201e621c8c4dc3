"""Findings and notes in the reader's language. Analyses word them in English (Finding.line(),
Phrase) and name their kind and values; a language's labels (assets/report-labels.json)
may give a sentence per kind. The report and `config --explain` use the same sentences."""

from __future__ import annotations

import json
from functools import lru_cache

from ..analysis.architecture import Finding
from .html import asset


@lru_cache(maxsize=None)
def labels() -> dict[str, dict]:
    """Every word of the report page, per language ("en", "zh")."""
    return json.loads(asset("report-labels.json"))


def worded(item: Finding | str, words: dict) -> tuple[str, str | None]:
    """A finding or note in the language of `words`: its kind's sentence (with the English to
    show on hover when the sentence leaves details out), else the English itself."""
    english = item.line() if isinstance(item, Finding) else str(item)
    template = words.get("sentences", {}).get(getattr(item, "kind", None) or "")
    if template is None:
        return english, None
    args = dict(item.args)
    args["component"] = words["components"].get(args.get("component"), args.get("component"))
    args["need"] = words.get("needs", {}).get(args.get("need"), args.get("need"))
    args["more"] = words["more_like_it"].format(n=args["more"]) if args.get("more") else ""
    args["others"] = words["or_others"].format(names=args["others"]) if args.get("others") else ""
    return template.format(**args), (english if item.kind in words.get("detail_on_hover", ()) else None)
