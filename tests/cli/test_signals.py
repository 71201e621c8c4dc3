"""Signals (issue 14): SIGINT and SIGTERM end `stats`/`diff` and their forked workers promptly,
with exit 130/143 and no traceback; after SIGKILL of the parent, no worker outlives it."""

import json
import os
import signal
import struct
import time

import pytest

from hostile import run_cli
from llm_anatomy.replicas import TensorSpec, write_safetensors_layout

# Thirty-two 256 MiB tensors of zeros in a sparse file: no disk, but seconds of work per worker.
TENSORS = [TensorSpec(f"model.layers.{i}.mlp.down_proj.weight", "F32", (8192, 8192)) for i in range(32)]


def _set_first_values(path):
    """Make each tensor's first value 1.0: diff then decodes every tensor instead of comparing
    zero bytes, which on a fast machine ended before the signal arrived."""
    with open(path, "r+b") as handle:
        header_size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_size))
        for name, entry in header.items():
            if name != "__metadata__":
                handle.seek(8 + header_size + entry["data_offsets"][0])
                handle.write(struct.pack("<f", 1.0))


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory):
    """Two copies (diff skips a file compared with itself); the second differs in every tensor."""
    folders = tmp_path_factory.mktemp("slow_a"), tmp_path_factory.mktemp("slow_b")
    for folder in folders:
        write_safetensors_layout(str(folder / "model.safetensors"), TENSORS)
    _set_first_values(str(folders[1] / "model.safetensors"))
    return folders


def _children(pid):
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().decode("ascii", "replace").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _signal_once_working(signum, whole_group, sent):
    """after_start for the harness: wait until the workers are busy, then send signum."""

    def send(pid):
        deadline = time.monotonic() + 8
        while len(_children(pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # into their first tensors
        sent.append(time.monotonic())
        (os.killpg if whole_group else os.kill)(pid, signum)

    return send


@pytest.mark.parametrize(
    "command, signum, whole_group, code",
    [
        ("stats", signal.SIGTERM, False, 143),
        ("stats", signal.SIGINT, True, 130),  # Ctrl-C: the terminal signals the whole group
        ("stats", signal.SIGINT, False, 130),
        ("stats", signal.SIGKILL, False, -9),
        ("diff", signal.SIGTERM, False, 143),
        ("diff", signal.SIGKILL, False, -9),
    ],
)
def test_signal_ends_the_whole_tree(slow_models, command, signum, whole_group, code):
    sent = []
    args = slow_models if command == "diff" else slow_models[:1]
    outcome = run_cli(command, *args, "--json", after_start=_signal_once_working(signum, whole_group, sent))
    assert sent, "the workers never started"
    assert outcome.code == code, outcome.err[-2000:]
    assert "Traceback" not in outcome.err
    assert outcome.err == ""
    assert outcome.out == ""
    assert outcome.leftover == []  # how promptly it ends is measured in bench/signals.py


def test_sigterm_during_report_stats_leaves_no_file(slow_models, tmp_path):
    sent = []
    outcome = run_cli(
        "report",
        slow_models[0],
        "-o",
        tmp_path / "r.html",
        "--stats",
        after_start=_signal_once_working(signal.SIGTERM, False, sent),
    )
    assert sent and (outcome.code, outcome.out, outcome.err, outcome.leftover) == (143, "", "", [])
    assert os.listdir(tmp_path) == []
