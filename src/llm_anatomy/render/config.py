"""Render a ConfigView: exactly what `print(model.config)` prints, or the config dict as JSON."""

from __future__ import annotations

from ..analysis.config_view import ConfigView
from ..core.text import escape
from .text import to_json


def text(view: ConfigView) -> str:
    """print() adds a newline to the repr, which already ends in one: hence the blank last line."""
    printed = "\n".join(escape(line) for line in view.text.split("\n")) + "\n"
    return printed + "".join(escape(note) + "\n" for note in view.notes)


def json_text(view: ConfigView) -> str:
    return to_json(view.values) + "\n"
