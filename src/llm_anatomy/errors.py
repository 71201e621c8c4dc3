"""The project's one error type: every bad input becomes a single line that names the
file, what was expected, what was found, and what to do."""

from __future__ import annotations

from .safe_text import escape


class AnatomyError(Exception):
    """Bad input (a missing, corrupt or unsupported checkpoint). Exit status 1."""

    exit_code = 1

    def __init__(self, where: object, expected: str, found: str, todo: str = "") -> None:
        self.where = escape(str(where))
        self.expected = expected
        self.found = found
        self.todo = todo
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: expected {self.expected}, found {self.found}"
        return f"{text}; {self.todo}" if self.todo else text


class UsageError(AnatomyError):
    """The command line asked for something impossible (a bad glob, index or option). Exit 2."""

    exit_code = 2


class ConfigUnavailable(AnatomyError):
    """The checkpoint carries no config transformers can read (a GGUF architecture transformers
    maps to no config): commands that need one refuse, views that can fall back to tensor names do."""
