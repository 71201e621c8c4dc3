"""How promptly `stats` and `diff` end after SIGTERM or SIGINT while their workers are busy
(tests/cli/test_signals.py checks the outcome: exit status, no output, no process left; the time is
measured here, not asserted in a test). Baseline: the time the same command needs to read one
of its tensors, so the ratio says whether it stopped at once or finished the tensors in hand.

    python bench/signals.py
"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

from llm_anatomy.replicas import TensorSpec, write_safetensors_layout

# Thirty-two 256 MiB tensors of zeros in a sparse file, as tests/cli/test_signals.py builds them.
TENSORS = [TensorSpec(f"model.layers.{i}.mlp.down_proj.weight", "F32", (8192, 8192)) for i in range(32)]
ONE_TENSOR = [TENSORS[0]]


def _first_values_set(path: str) -> None:
    with open(path, "r+b") as handle:
        header_size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_size))
        for name, entry in header.items():
            if name != "__metadata__":
                handle.seek(8 + header_size + entry["data_offsets"][0])
                handle.write(struct.pack("<f", 1.0))


def _children(pid: int) -> list[int]:
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


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llm_anatomy.cli.main", *args, "--json"]


def seconds_to_exit(args: list[str], signum: int) -> float:
    """From the signal, sent once two workers have run half a second, to the parent's exit."""
    process = subprocess.Popen(
        _command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    sent = time.monotonic()
    os.kill(process.pid, signum)
    process.wait()
    return time.monotonic() - sent


def seconds_to_run(args: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.monotonic() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name in ("a", "b"):
            os.mkdir(os.path.join(folder, name))
            path = os.path.join(folder, name, "model.safetensors")
            write_safetensors_layout(path, TENSORS)
            paths.append(os.path.dirname(path))
        _first_values_set(os.path.join(paths[1], "model.safetensors"))
        one = os.path.join(folder, "one")
        os.mkdir(one)
        write_safetensors_layout(os.path.join(one, "model.safetensors"), ONE_TENSOR)
        baseline = seconds_to_run(["stats", one])
        print("| command | signal | seconds from signal to exit | `stats` of one 256 MiB tensor (baseline) | ratio |")
        print("|---|---|---:|---:|---:|")
        for command, args in (("stats", [paths[0]]), ("diff", paths)):
            for signum in (signal.SIGTERM, signal.SIGINT):
                seconds = seconds_to_exit([command, *args], signum)
                print(
                    f"| {command} | {signal.Signals(signum).name} | {seconds:.2f} | {baseline:.2f} | {seconds / baseline:.2f}x |"
                )


if __name__ == "__main__":
    main()
