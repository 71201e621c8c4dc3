"""A command on a branch of a model read from the Hub before goes ahead from the commit the
branch had last time, while a thread asks the Hub which commit it has now (hub_commit.Check): the
one request of a cached call then costs no wait of its own. Nothing computed from that
guess may reach the user before the answer: the CLI confirms before its first write, before
an error line and at the end; remote.py before sending a request for the guessed commit;
output_file.py before writing a page; streaming.py before forking (a thread does not
survive fork). confirm() raises the Hub's
refusal as the request would have raised it, or Stale if the branch moved: the CLI then
runs the command again, on the Hub's answer.

Only the CLI turns this on (the library API asks the Hub first, as before), for one
command at a time; this module holds that command's checks, and imports nothing, so the
CLI can hold its output back without importing network code."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

enabled = False  # the CLI's, while a command runs
started: dict[tuple[str, str | None], Any] = {}  # (repo, revision) -> hub_commit.Check, asked but maybe not used
used: list[Any] = []  # the checks whose guess the command went ahead from, in order
answers: dict[tuple[str, str | None], tuple[str, list[str]]] = {}  # (repo, revision) -> the Hub's (sha, files)


class Stale(BaseException):
    """A branch moved since the commit the command went ahead from: run it again.
    A BaseException, so that no `except Exception` on the way takes it for a failure."""


def begin() -> None:
    """A command starts: it may go ahead from guesses."""
    global enabled
    end()
    enabled = True


def end() -> None:
    global enabled
    enabled = False
    started.clear()
    used.clear()
    answers.clear()


def restart() -> None:
    """The command runs again after Stale: on the Hub's answers, with no guess."""
    started.clear()
    used.clear()


def pending() -> bool:
    """Whether some guess has not been confirmed yet (checked before every write)."""
    return any(not check.confirmed for check in used)


def confirm() -> None:
    """Wait for the Hub's answer to every check used: its refusal raised, Stale if a branch moved."""
    for check in list(used):
        check.confirm()
