"""Benchmark `stats` and `diff` (issue 5) on the random-filled Llama-2-7b-chat-hf layout.

Times, in one run and interleaved, `stats A` against `cat A/*.safetensors > /dev/null`, and
`diff A B` against `cat` of both, where B is a copy of A with a few tensors rewritten.
With --cold (default when running as root) the page cache is dropped before every run
(`sync; echo 3 > /proc/sys/vm/drop_caches`), so each run reads from the disk as a first
look at a downloaded model does; otherwise everything runs on a warm cache. Baselines,
once each: the numpy memory-map loop and the torch loop (transformers load in float16,
then per-parameter mean/std/min/max). Wall and CPU time from os.wait4; peak RSS is the whole process
tree's (the CLI and its workers), sampled.

    .venv/bin/python bench/bench_stream.py [--data DIR] [--repeat N] [--warm] [--baselines]

A (13.5 GB) and B (another 13.5 GB) are written once under --data (default
/work/bench-data, outside the repository) and reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from views import CLI, PYTHON, medians  # noqa: E402

CHANGED = ("model.layers.3.mlp.down_proj.weight", "model.layers.17.self_attn.q_proj.weight", "model.layers.31.post_attention_layernorm.weight")

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

    from llm_anatomy.formats import open_catalog

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
    from llm_anatomy.catalog import select
    from llm_anatomy.formats import open_catalog
    from llm_anatomy.streaming import Reader, workers

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
    import subprocess
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/bench-data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache between runs")
    parser.add_argument("--baselines", action="store_true", help="also time the numpy memory-map loop and the torch loop (slow, 14 GB)")
    parser.add_argument("--threads-vs-processes", metavar="GLOB", help="only compare threads and a process pool on these tensors, warm cache")
    args = parser.parse_args()
    if args.threads_vs_processes:
        threads_vs_processes(os.path.join(args.data, "llama2-7b-random"), args.threads_vs_processes, args.repeat)
        return

    from llm_anatomy.layouts import published_config, write_layout

    a = os.path.join(args.data, "llama2-7b-random")
    b = a + "-b"
    if not os.path.isdir(a):
        write_layout(a, published_config("Llama-2-7b-chat-hf"), fill="random")
    if not os.path.isdir(b):
        make_b(a, b)
    cold = not args.warm and drop_caches()
    shards = lambda folder: sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".safetensors"))  # noqa: E731
    cases = {
        "cat A": ["sh", "-c", 'cat "$@" > /dev/null', "cat", *shards(a)],
        "stats A": CLI + ["stats", a],
        "cat A B": ["sh", "-c", 'cat "$@" > /dev/null', "cat", *shards(a), *shards(b)],
        "diff A B": CLI + ["diff", a, b],
    }
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, argv in cases.items():
            samples[name].append(timed(argv, cold))
    if args.baselines:
        samples["numpy memory-map loop"] = [timed([PYTHON, "-c", MEMMAP_LOOP, a], cold)]
        samples["torch loop (float16)"] = [timed([PYTHON, "-c", TORCH_LOOP, a], cold)]

    cache = "cold page cache (dropped before every run)" if cold else "warm page cache"
    print(f"{args.repeat} interleaved runs each, medians ({cache}); peak RSS is the maximum over runs.\n")
    print("| case | wall s | ratio | CPU s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    reference = {"stats A": "cat A", "diff A B": "cat A B"}
    for name, runs in samples.items():
        wall, cpu, rss = medians(runs)
        base = medians(samples[reference.get(name, "cat A")])[0]
        ratio = f"{wall / base:.2f}x `{reference.get(name, 'cat A')}`"
        print(f"| {name} | {wall:.1f} | {ratio} | {cpu:.1f} | {rss / 1024:.0f} |")


if __name__ == "__main__":
    main()
