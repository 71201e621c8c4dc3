"""`scan`: what in a model's files a loader would run or misread, as findings with a rule id,
a severity, the file and the place inside it. Nothing is executed, imported or unpickled;
pickles are followed opcode by opcode, templates rendered only in jinja2's sandbox."""

from __future__ import annotations

import os

from ...core.errors import AnatomyError
from ...io.sources import Unreadable
from . import files
from .rules import RULES, SEVERITIES, Finding, Rule, ScanResult

__all__ = ["RULES", "SEVERITIES", "Finding", "Rule", "ScanResult", "scan_entries", "scan_model"]


def scan_model(path: str) -> ScanResult:
    """Scan a local model folder (every file under it) or one file."""
    if not os.path.lexists(path):
        raise AnatomyError(path, "a model folder or file", "no such path", "check the path")
    if os.path.isdir(path):
        entries, findings, skipped = files.walk(path)
    elif os.path.isfile(path):
        entries, findings, skipped = [(os.path.basename(path), path)], [], []
    else:
        raise AnatomyError(
            path,
            "a model folder or file",
            "something else (a broken link, a device, a socket)",
            "pass the model's folder or one of its files",
        )
    return scan_entries(path, entries, findings, skipped)


def scan_entries(
    path: str, entries: list[tuple[str, str]], findings: list[Finding], skipped: list[tuple[str, str, str]]
) -> ScanResult:
    """Scan these files of what path names ((name relative to it, path to read): a local
    file, or a SourcedPath of a model in an object store, whose pickles are not read)."""
    scanned = []
    for rel, full in entries:
        try:
            why = files.check_file(rel, full, findings)
        except Unreadable as exc:  # vanished, or permission denied, since the walk
            if not os.path.isdir(path):  # the one file asked for: nothing was inspected
                raise
            skipped.append((rel, "UNREADABLE", f"unreadable: {exc.found}"))
            continue
        except AnatomyError as exc:  # swapped for a fifo or a device since the walk
            if not os.path.isdir(path):
                raise
            skipped.append((rel, "UNREADABLE", f"expected {exc.expected}, found {exc.found}"))
            continue
        if why is None:
            scanned.append(rel)
        else:
            skipped.append((rel, "SCAN_NOT_SUPPORTED", why))
    present = {rel for rel, _ in entries}
    for rel, full in entries:
        if rel.endswith(files.INDEX_SUFFIX):
            files.check_index(rel, full, present, findings)
    return ScanResult(path, findings, sorted(scanned), skipped)
