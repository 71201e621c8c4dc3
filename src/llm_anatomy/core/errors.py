"""The project's one error type and its kinds: every bad input becomes a single line that
names the file, what was expected, what was found, and what to do. The kinds let library
users catch one case (`except llm_anatomy.GatedRepo`); the CLI prints each as its line."""

from __future__ import annotations

from contextvars import ContextVar

from .text import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable


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
        """The one line `llm-anatomy` prints after "llm-anatomy: ": where, expected, found; what to do."""
        text = f"{self.where}: expected {self.expected}, found {self.found}"
        return f"{text}; {self.todo}" if self.todo else text


class UsageError(AnatomyError):
    """The command line asked for something impossible (a bad glob, index or option). Exit 2."""

    exit_code = 2


class ConfigUnavailable(AnatomyError):
    """The checkpoint carries no config transformers can read (a GGUF architecture transformers
    maps to no config): commands that need one refuse, views that can fall back to tensor names do."""


class CorruptFile(AnatomyError):
    """A checkpoint file that is not what its format promises (a header that contradicts
    itself, offsets past the end, a zip or pickle torch.save never writes). Exit status 1."""


class MissingExtra(AnatomyError):
    """A command needs an optional extra that is not installed (extras.require). Exit status 1."""


class HubError(AnatomyError):
    """The Hub refused a request or gave an answer that cannot be used. Exit status 1."""


class RepoNotFound(HubError):
    """No such repository on the Hub, or a private one the token may not see."""


class GatedRepo(HubError):
    """A gated repository whose license the token's user has not accepted."""


class RevisionNotFound(HubError):
    """The repository has no such branch, tag or commit."""


# Where notes go: things the user should know that do not stop the command (a skeleton
# cache that cannot be written). None: a Python warning, for library callers; the CLI sets,
# for the length of one command, a function that prints them, escaped, one line each. A
# context variable, as core.notice's listener: one command's sink is no one else's.
NOTES: "ContextVar[Callable[[str], None] | None]" = ContextVar("llm_anatomy_notes", default=None)


def note(text: str) -> None:
    sink = NOTES.get()
    if sink is not None:
        sink(text)
        return
    import warnings

    warnings.warn(text, stacklevel=2)
