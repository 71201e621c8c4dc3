"""Benchmark `stats` and `diff` (issues 5, 12 and 14) on the random-filled Llama-2-7b-chat-hf layout.

In one run, interleaved, three parts:
- cold: the page cache dropped before every run (`sync; echo 3 > /proc/sys/vm/drop_caches`,
  needs root), as a first look at a downloaded model reads: `stats A` against
  `cat A/*.safetensors > /dev/null`, `diff A B` against `cat` of both, where B is a copy of A
  with three tensors rewritten;
- warm: after one `cat` of the same files: `stats A` against `cat A`, and (A and B do not fit in
  memory together) `diff` of the two second shards against `cat` of them;
- tiny: a hand-packed file of --tiny F16 tensors of 2 values each (issue 14): `stats --csv`,
  `diff` with itself, and with a copy of itself (which is read).
Wall and CPU time (user + system, workers included) from os.wait4, CPU seconds per GB of
data read; peak RSS is the whole process tree's (the CLI and its workers), sampled. Baselines
on request, once each: the numpy memory-map loop and the torch loop.

    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src .venv/bin/python bench/bench_stream.py [--data DIR] [--repeat N] [--only cold|warm|tiny] [--baselines]

A (13.5 GB) and B (another 13.5 GB) and the tiny files are written once under --data
(default /work/bench-data, outside the repository) and reused; delete them afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from views import PYTHON, medians  # noqa: E402

# The CLI of the sources on PYTHONPATH (run as `PYTHONPATH=src python bench/bench_stream.py`
# to time a work tree), not whichever llm-anatomy the venv installed.
CLI = [PYTHON, "-m", "llm_anatomy.cli.main"]

CHANGED = (
    "model.layers.3.mlp.down_proj.weight",
    "model.layers.17.self_attn.q_proj.weight",
    "model.layers.31.post_attention_layernorm.weight",
)

MEMMAP_LOOP = """
import sys, glob, json, struct, numpy as np
for path in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    for name, e in header.items():
        if name == "__metadata__":
            continue
        x = data[e["data_offsets"][0]:e["data_offsets"][1]].view(np.float16)
        print(name, x.mean(dtype=np.float64), x.std(dtype=np.float64), x.min(), x.max())
"""

TORCH_LOOP = """
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float16)
for name, p in model.named_parameters():
    print(name, p.mean().item(), p.std().item(), p.min().item(), p.max().item())
"""


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def make_b(a: str, b: str) -> None:
    """B = a copy of A whose CHANGED tensors hold other random values."""
    import numpy as np

    from llm_anatomy.locate import open_catalog

    shutil.copytree(a, b)
    rng = np.random.default_rng(1)
    for info in open_catalog(b).tensors:
        if info.name in CHANGED:
            with open(info.file, "r+b") as handle:
                handle.seek(info.offset)
                values = (rng.standard_normal(info.nbytes // 2) * 0.02).astype(np.float16)
                handle.write(values.tobytes())


def threads_vs_processes(folder: str, pattern: str, repeat: int) -> None:
    """Warm-cache wall time of the same tensors' stats with the forked worker processes
    `stats` uses, and with a thread pool of as many workers (the design measured against)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from llm_anatomy.analysis.stats import tensor_stats, weight_stats
    from llm_anatomy.core.catalog import select
    from llm_anatomy.locate import open_catalog
    from llm_anatomy.decode.stream import Reader
    from llm_anatomy.io.parallel import workers

    catalog = open_catalog(folder)
    chosen = sorted(select(catalog.tensors, pattern), key=lambda t: -t.nbytes)

    def with_threads() -> None:
        readers = [Reader() for _ in range(workers())]
        deals = [chosen[i :: workers()] for i in range(workers())]
        with ThreadPoolExecutor(workers()) as pool:
            list(pool.map(lambda job: [tensor_stats(t, job[0]) for t in job[1]], zip(readers, deals)))

    weight_stats(catalog, pattern)  # warm the page cache
    times: dict[str, list[float]] = {"processes (stats)": [], "threads": []}
    for _ in range(repeat):
        for name, run in (("processes (stats)", lambda: weight_stats(catalog, pattern)), ("threads", with_threads)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    gb = sum(t.nbytes for t in chosen) / 1e9
    print(f"{len(chosen)} tensors, {gb:.2f} GB, {workers()} workers, warm page cache, medians of {repeat}\n")
    print("| workers | wall s | GB/s |\n|---|---:|---:|")
    for name, runs in times.items():
        print(f"| {name} | {statistics.median(runs):.2f} | {gb / statistics.median(runs):.2f} |")


def tree_rss_kib(root: int) -> int:
    """Resident set of a process and all its descendants (stats and diff fork one worker per core)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total


def timed(argv: list[str], cold: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds (the process and its reaped workers) and the peak of the whole
    process tree's summed RSS in KiB, sampled every 50 ms (ru_maxrss is per process)."""
    import threading
    import time

    if cold:
        drop_caches()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    assert status == 0, f"{argv[:3]} failed"
    return elapsed, usage.ru_utime + usage.ru_stime, max(peak[0], usage.ru_maxrss)


def tiny_file(path: str, count: int) -> str:
    """`count` F16 tensors of 2 values each, hand-packed, data left sparse (issue 14's case)."""
    import json
    import struct

    if not os.path.exists(path):
        header = {f"t.{i}": {"dtype": "F16", "shape": [2], "data_offsets": [4 * i, 4 * i + 4]} for i in range(count)}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(path, "wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw)
            handle.truncate(8 + len(raw) + 4 * count)
    return path


def cat(*paths: str) -> list[str]:
    return ["sh", "-c", 'cat "$@" > /dev/null', "cat", *paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/bench-data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only", choices=("cold", "warm", "tiny"), action="append", help="run only these parts (default: all three)"
    )
    parser.add_argument("--tiny", type=int, default=1_200_000, help="tensors in the many-tiny-tensors file")
    parser.add_argument(
        "--baselines", action="store_true", help="also time the numpy memory-map loop and the torch loop (slow, 14 GB)"
    )
    parser.add_argument(
        "--threads-vs-processes",
        metavar="GLOB",
        help="only compare threads and a process pool on these tensors, warm cache",
    )
    args = parser.parse_args()
    if args.threads_vs_processes:
        threads_vs_processes(os.path.join(args.data, "llama2-7b-random"), args.threads_vs_processes, args.repeat)
        return

    from llm_anatomy.replicas import published_config, write_layout

    a = os.path.join(args.data, "llama2-7b-random")
    b = a + "-b"
    if not os.path.isdir(a):
        write_layout(a, published_config("Llama-2-7b-chat-hf"), fill="random")
    if not os.path.isdir(b):
        make_b(a, b)
    shards = lambda folder: sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))  # noqa: E731
    size = lambda paths: sum(os.path.getsize(p) for p in paths)  # noqa: E731
    parts = args.only or ["cold", "warm", "tiny"]
    # (part, case, argv, bytes read, the cat case it is measured against)
    table: list[tuple[str, str, list[tuple[float, float, int]], int, str | None]] = []

    def series(part: str, cases: list[tuple[str, list[str], int, str | None]], cold: bool) -> None:
        samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _, _, _ in cases}
        for _ in range(args.repeat):
            for name, argv, _, _ in cases:
                samples[name].append(timed(argv, cold))
        table.extend((part, name, samples[name], nbytes, base) for name, _, nbytes, base in cases)

    if "cold" in parts:
        if not drop_caches():
            sys.exit("dropping the page cache needs root (echo 3 > /proc/sys/vm/drop_caches)")
        series(
            "cold",
            [
                ("cat A", cat(*shards(a)), size(shards(a)), None),
                ("stats A", CLI + ["stats", a], size(shards(a)), "cat A"),
                ("cat A B", cat(*shards(a), *shards(b)), size(shards(a) + shards(b)), None),
                ("diff A B", CLI + ["diff", a, b], size(shards(a) + shards(b)), "cat A B"),
            ],
            cold=True,
        )
    if "warm" in parts:
        # A (13.5 GB) fits in this machine's 23 GB of memory, A and B together do not: the warm
        # diff compares the second shards of A and B (3.5 GB each, holding one changed tensor).
        a2, b2 = shards(a)[-1], shards(b)[-1]
        drop_caches()
        subprocess.run(cat(*shards(a)), check=True)
        series(
            "warm",
            [
                ("cat A", cat(*shards(a)), size(shards(a)), None),
                ("stats A", CLI + ["stats", a], size(shards(a)), "cat A"),
            ],
            cold=False,
        )
        drop_caches()
        subprocess.run(cat(a2, b2), check=True)
        series(
            "warm",
            [
                ("cat A2 B2", cat(a2, b2), size([a2, b2]), None),
                ("diff A2 B2", CLI + ["diff", a2, b2], size([a2, b2]), "cat A2 B2"),
            ],
            cold=False,
        )
    if "tiny" in parts:
        tiny = tiny_file(os.path.join(args.data, f"tiny-{args.tiny}.safetensors"), args.tiny)
        copy = tiny[: -len(".safetensors")] + "-copy.safetensors"
        if not os.path.exists(copy):
            shutil.copyfile(tiny, copy)
        series(
            "tiny",
            [
                (f"stats ({args.tiny:,} tensors) --csv", CLI + ["stats", tiny, "--csv"], size([tiny]), None),
                ("diff of it with itself", CLI + ["diff", tiny, tiny], size([tiny]), None),
                ("diff of it with a copy", CLI + ["diff", tiny, copy], size([tiny, copy]), None),
            ],
            cold=False,
        )
    if args.baselines:
        table.append(
            ("cold", "numpy memory-map loop", [timed([PYTHON, "-c", MEMMAP_LOOP, a], True)], size(shards(a)), "cat A")
        )
        table.append(
            ("cold", "torch loop (float16)", [timed([PYTHON, "-c", TORCH_LOOP, a], True)], size(shards(a)), "cat A")
        )

    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(
        f"{args.repeat} interleaved runs each, medians; cold: page cache dropped before every run; peak RSS: maximum over runs; load average after: {' '.join(load)}\n"
    )
    print("| cache | case | wall s | ratio | CPU s | CPU s per GB | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    walls = {(part, name): medians(runs)[0] for part, name, runs, _, _ in table}
    for part, name, runs, nbytes, base in table:
        wall, cpu, rss = medians(runs)
        ratio = f"{wall / walls[part, base]:.2f}x `{base}`" if base else ""
        print(f"| {part} | {name} | {wall:.1f} | {ratio} | {cpu:.1f} | {cpu / (nbytes / 1e9):.2f} | {rss / 1024:.0f} |")


if __name__ == "__main__":
    main()
