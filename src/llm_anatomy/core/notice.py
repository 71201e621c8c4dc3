"""Who hears of slow work: a skeleton build, a traced forward pass, loading and running
weights. The CLI listens on a terminal, for the length of one command, to say why it is
silent; the library itself prints nothing. Imported only where slow work starts, so that the
header-only commands never pay for contextvars and contextlib."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterator

# Called with the stage's name ("build", "trace", "load", "run") when it starts and with None
# once it ends, however it ends; a context variable, so one command's listener is no one else's.
LISTENER: ContextVar[Callable[[str | None], None] | None] = ContextVar("llm_anatomy_notice", default=None)


@contextmanager
def announced(stage: str) -> Iterator[None]:
    """Tells the listener, if any, that `stage` runs for the length of the block."""
    notify = LISTENER.get()
    if notify is None:
        yield
        return
    notify(stage)
    try:
        yield
    finally:
        notify(None)
