"""The progress line that streaming commands (stats, diff, report --stats) show on stderr."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class Progress:
    """`stats  41% 5.52/13.48 GB  1.71 GB/s` on one terminal line, redrawn at most 10 times a second."""

    def __init__(self, label: str, total: int, stream: TextIO) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.done = 0
        self.start = self.last = time.monotonic()

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9) / 1e9
            self.stream.write(
                f"\r{self.label} {self.done / self.total:4.0%} {self.done / 1e9:.2f}/{self.total / 1e9:.2f} GB {rate:6.2f} GB/s"
            )
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


@contextmanager
def progress_for(label: str, total: int, machine_output: bool) -> Iterator[Progress | None]:
    """A progress line on stderr, only when stderr is a terminal and the output is for people;
    None otherwise. The line is cleared when the block ends, however it ends."""
    if machine_output or not sys.stderr.isatty():
        yield None
        return
    # Past main's escaping wrapper: this line's \r and erase-line controls are meant.
    progress = Progress(label, total, getattr(sys.stderr, "raw", sys.stderr))
    try:
        yield progress
    finally:
        progress.close()
