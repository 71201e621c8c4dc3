"""The harness for hostile-input tests (issue 14): run one CLI call in a fresh interpreter,
bounded in wall-clock time and address space, and report what it did: exit status, output,
peak memory, processes it left behind. `assert_refused` holds a refusal to the project's
promise: exit 1 or 2, one escaped stderr line, no traceback, within the bounds."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import regex  # transformers' dependency

# A hang guard, not a speed limit (speed is measured in bench/): far above what any case needs
# on a quiet machine, so that a loaded one (other jobs on its 2 cores) does not fail a test.
WALL_SECONDS = 60.0
MAX_RSS_BYTES = 500 * 2**20
# A hard stop, far above MAX_RSS_BYTES (importing numpy maps a few hundred MB it never
# touches), so that a memory blow-up fails one test instead of taking the machine down.
ADDRESS_SPACE_BYTES = 6 * 2**30
# How long processes of the child's session may outlive it before they count as left behind.
LINGER_SECONDS = 0.5
# What must never reach a terminal: controls (but the newline), line separators, and format
# characters (the bidi controls that reorder what a reader sees, zero-width and other
# invisible ones that make two names read the same), by Unicode's own categories and its
# Default_Ignorable_Code_Point property (the regex module knows them; re does not).
TERMINAL_UNSAFE = regex.compile(r"[[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]--\n]", regex.V1)


@dataclass
class Outcome:
    code: int | None  # None: killed at the wall-clock limit
    out: str
    err: str
    seconds: float
    max_rss: int  # bytes, the largest peak resident set among the child and its workers
    read_chars: int  # bytes the child itself asked read() for, as last polled (/proc/PID/io rchar)
    leftover: list[int]  # processes of its session still alive after it exited (then killed)


def _limit_address_space(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# Root reads any file whatever its mode (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH). Dropping
# both from the bounding set before exec makes chmod 000 deny root's child as it denies a
# user, where switching to another uid cannot run an interpreter installed under /root.
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_capabilities() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def permissions_bind() -> str | None:
    """None when a child started with run_cli(..., unprivileged=True) is refused a chmod 000
    file, else why not (for pytest.skip)."""
    if os.geteuid() != 0:
        return None
    with tempfile.NamedTemporaryFile() as locked:
        os.chmod(locked.name, 0)
        try:
            probe = subprocess.run(["cat", locked.name], preexec_fn=_drop_file_capabilities, capture_output=True)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"cannot drop root's file capabilities: {exc}"
        return None if probe.returncode != 0 else "root's child still reads a chmod 000 file"


def _session_members(session: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry))
    return members


def _read_chars(pid: int) -> int:
    """rchar of a live process: every byte its reads returned, from disk or page cache alike
    (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/io", "rb") as handle:
            for line in handle:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _peak_rss(pid: int) -> int:
    """VmHWM of a live process, in bytes (0 once it is gone). Not wait4's ru_maxrss: that one
    survives exec, so a child forked from pytest would carry pytest's own peak."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_cli(
    *args: object,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout: float = WALL_SECONDS,
    address_space: int = ADDRESS_SPACE_BYTES,
    stdin: int | None = subprocess.DEVNULL,
    stdout_path: str | None = None,
    after_start=None,
    unprivileged: bool = False,
) -> Outcome:
    """`python -m llm_anatomy.cli.main ARGS` in its own session, killed (whole session) at
    `timeout`. stdout_path sends stdout to that file (say /dev/full) instead of capturing it;
    after_start(pid) runs once the child has started (to send it a signal, say); unprivileged
    makes file modes bind even when the tests run as root (see permissions_bind)."""

    def prepare() -> None:
        _limit_address_space(address_space)
        if unprivileged and os.geteuid() == 0:
            _drop_file_capabilities()

    full_env = dict(os.environ)
    full_env.update(env or {})
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        stdout = open(stdout_path, "wb") if stdout_path else out_file
        start = time.monotonic()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "llm_anatomy.cli.main", *map(str, args)],
                stdin=stdin,
                stdout=stdout,
                stderr=err_file,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=prepare,
            )
        finally:
            if stdout_path:
                stdout.close()
        if after_start is not None:
            after_start(process.pid)
        code, peaks, polls, read_chars = None, {}, 0, 0
        while True:
            # Peaks polled while it runs: the workers too, every tenth poll (a /proc scan).
            members = _session_members(process.pid) if polls % 10 == 0 else [process.pid]
            for member in members:
                peaks[member] = max(peaks.get(member, 0), _peak_rss(member))
            read_chars = max(read_chars, _read_chars(process.pid))
            polls += 1
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() - start > timeout:
                os.killpg(process.pid, signal.SIGKILL)
                os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.monotonic() - start
        process.returncode = code if code is not None else -9  # reaped here, not by Popen
        # A worker that dies with its parent (a death signal) needs a moment to be scheduled.
        linger_until = time.monotonic() + LINGER_SECONDS
        leftover = _session_members(process.pid)
        while leftover and time.monotonic() < linger_until:
            time.sleep(0.01)
            leftover = _session_members(process.pid)
        for pid in leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out_file.seek(0)
        err_file.seek(0)
        out = out_file.read().decode("utf-8", "replace")
        err = err_file.read().decode("utf-8", "replace")
    return Outcome(code, out, err, seconds, max(peaks.values(), default=0), read_chars, leftover)


def snapshot(*folders: object) -> dict[str, tuple]:
    """Every path below the folders (links not followed) with its inode, size, mtime and mode:
    compare two snapshots to prove nothing was created, replaced or modified."""
    state: dict[str, tuple] = {}
    for folder in map(str, folders):
        if not os.path.lexists(folder):
            continue
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(root, name)
                info = os.lstat(path)
                state[path] = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)
        info = os.lstat(folder)
        state[folder] = (info.st_ino, info.st_mode)
    return state


def assert_refused(outcome: Outcome, codes: tuple[int, ...] = (1, 2), message: str | None = None) -> None:
    """A refusal as docs/safety.md promises it: exit 1 or 2, nothing on stdout, one stderr line
    starting "llm-anatomy: " with no terminal controls, no traceback, within time and memory,
    no process left behind. message: the exact line, when the test knows it."""
    assert outcome.code is not None, f"killed after {outcome.seconds:.1f} s; stderr: {outcome.err[-500:]!r}"
    assert outcome.code in codes, f"exit {outcome.code}; stderr: {outcome.err[-2000:]!r}"
    assert "Traceback" not in outcome.err, outcome.err[-2000:]
    lines = outcome.err.split("\n")
    assert len(lines) == 2 and lines[1] == "", f"expected one stderr line, found {outcome.err[-2000:]!r}"
    assert not TERMINAL_UNSAFE.search(lines[0]), f"terminal controls in {lines[0]!r}"
    assert lines[0].startswith("llm-anatomy: ") or outcome.code == 2, lines[0]
    if message is not None:
        assert lines[0] == message
    assert outcome.max_rss < MAX_RSS_BYTES, f"peak RSS {outcome.max_rss / 2**20:.0f} MB"
    assert outcome.leftover == [], f"processes left behind: {outcome.leftover}"


def assert_clean_output(text: str) -> None:
    """Output meant for a terminal carries no control characters but newlines."""
    match = TERMINAL_UNSAFE.search(text)
    assert match is None, (
        f"terminal control {match.group()!r} at {match.start()} in {text[max(0, match.start() - 60) : match.start() + 60]!r}"
    )
