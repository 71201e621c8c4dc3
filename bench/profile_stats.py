"""Where a warm `stats` spends its CPU on 16-bit weights (issue 12): each stage of the
histogram path timed alone, in this process, on a file already in the page cache, beside
`cat` of the same file and the whole `stats` command (workers included, os.wait4).

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src .venv/bin/python bench/profile_stats.py FILE.safetensors [--repeat N]

Stages, each over every F16/BF16 tensor of FILE:
- map: each 8 MiB chunk as a transient read-only mapping (what a warm run's worker does);
- read: preadv of each 8 MiB chunk into one buffer through the page cache (what a warm
  run's worker did before, and what the command's own process still does);
- C counter: code_counts' compiled loop (llm_anatomy.decode._codes, built by `pip install -e .` or
  `python setup.py build_ext --inplace`), what stats.py uses when it is built;
- bincount: np.bincount of the chunk's uint16 codes, slice by slice as code_counts' numpy fallback does (numpy
  widens the codes to int64 inside bincount, then checks their range, then scatters);
- the same with other slice sizes, np.add.at into the counts instead, and torch.bincount on
  int32 codes when torch is installed: the exact alternatives the installed libraries offer;
- merge: the 65,536-bin per-slice counts added into the tensor's (part of the bincount
  stage above, timed apart here).
CPU seconds are process_time (user + system of this process); figures per GB of F16 data.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from views import PYTHON  # noqa: E402

from llm_anatomy.decode import histogram as code_counts  # noqa: E402
from llm_anatomy.locate import open_catalog  # noqa: E402
from llm_anatomy.decode.stream import CHUNK_BYTES, Reader  # noqa: E402

CODES = 1 << 16


def _tensors(path: str):
    return [t for t in open_catalog(path).tensors if t.dtype in ("F16", "BF16")]


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _child_cpu(command: list[str]) -> tuple[float, float]:
    """(wall, user + system of the command and its children), from os.wait4."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH="src"))
    _, _, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def stages(path: str, chunk_bytes: int = CHUNK_BYTES) -> dict[str, float]:
    tensors = _tensors(path)
    reader = Reader(chunk_bytes=chunk_bytes)

    def read_only() -> None:
        for info in tensors:
            for _ in reader.chunks(info, 2):
                pass

    def histogram(slice_values: int, merge: bool = True) -> None:
        for info in tensors:
            counts = np.zeros(CODES, np.int64)
            for chunk in reader.chunks(info, 2):
                codes = chunk.view("<u2")
                for start in range(0, codes.size, slice_values):
                    part = np.bincount(codes[start : start + slice_values], minlength=CODES)
                    if merge:
                        counts += part

    def add_at() -> None:
        for info in tensors:
            counts = np.zeros(CODES, np.int64)
            for chunk in reader.chunks(info, 2):
                np.add.at(counts, chunk.view("<u2"), 1)

    def compiled() -> None:
        for info in tensors:
            counts = np.zeros(CODES, np.int64)
            for chunk in reader.chunks(info, 2):
                code_counts.count_compiled(chunk, counts)  # type: ignore[misc]

    copying = reader
    reader = Reader(chunk_bytes=chunk_bytes, mapped=True)  # as in the workers: warm chunks mapped
    figures = {
        "map (transient mmap, populated)": _cpu(read_only),
        "map + bincount, 512K slices (numpy fallback)": _cpu(lambda: histogram(1 << 19)),
    }
    if code_counts.count_compiled is not None:
        figures["map + C counter (stats.py)"] = _cpu(compiled)
    reader = copying
    figures |= {
        "read (preadv, page cache)": _cpu(read_only),
        "read + bincount, 512K slices": _cpu(lambda: histogram(1 << 19)),
        "read + bincount, 512K slices, no merge": _cpu(lambda: histogram(1 << 19, merge=False)),
        "read + bincount, 128K slices": _cpu(lambda: histogram(1 << 17)),
        "read + bincount, whole 8 MiB chunk": _cpu(lambda: histogram(chunk_bytes // 2)),
        "read + np.add.at": _cpu(add_at),
    }
    try:
        import torch

        torch.set_num_threads(1)

        def torch_bincount() -> None:
            for info in tensors:
                counts = torch.zeros(CODES, dtype=torch.int64)
                for chunk in reader.chunks(info, 2):
                    codes = torch.from_numpy(chunk.view("<u2").astype(np.int32))
                    counts += torch.bincount(codes, minlength=CODES)

        figures["read + torch.bincount (int32 codes)"] = _cpu(torch_bincount)
    except ImportError:
        pass
    reader.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    gigabytes = sum(t.nbytes for t in _tensors(args.file)) / 1e9
    subprocess.run(["cat", args.file], stdout=subprocess.DEVNULL, check=True)  # warm it
    runs = [stages(args.file) for _ in range(args.repeat)]
    print(
        f"{gigabytes:.2f} GB of 16-bit tensors, warm; medians of {args.repeat} runs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'stage':44s} {'CPU s':>7s} {'CPU s/GB':>9s}")
    for name in runs[0]:
        cpu = statistics.median(run[name] for run in runs)
        print(f"{name:44s} {cpu:7.2f} {cpu / gigabytes:9.2f}")
    for label, command in (
        ("cat FILE", ["cat", args.file]),
        (
            "python + numpy + stats imports",
            [PYTHON, "-c", "import numpy, llm_anatomy.analysis.stats, llm_anatomy.decode.stream"],
        ),
        ("stats FILE (CLI, workers included)", [PYTHON, "-m", "llm_anatomy.cli.main", "stats", args.file]),
    ):
        timings = [_child_cpu(command) for _ in range(args.repeat)]
        wall, cpu = statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)
        print(f"{label:44s} {cpu:7.2f} {cpu / gigabytes:9.2f}   wall {wall:.2f} s")
    print(
        f"cores: {os.cpu_count()}; max RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB"
    )


if __name__ == "__main__":
    main()
