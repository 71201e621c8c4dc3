"""Benchmark the header-only views (issues 2 and 3) on a Llama-2-7b-chat-hf layout replica.

Times, in one run and interleaved, our commands against `python -c pass`, a minimal
`safetensors.safe_open` script, and the tutorial's scripts on the installed transformers
(load the model, then print). Wall time and peak RSS per process come from os.wait4.
Prints a Markdown table of medians and the ratios the issues set as targets.

    .venv/bin/python bench/views.py [--data DIR] [--random DIR] [--repeat N] [--no-tutorial]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable
# The console script, as users run it (no runpy overhead).
CLI = [os.path.join(os.path.dirname(PYTHON), "llm-anatomy")]

SAFE_OPEN = """
import sys, glob
from safetensors import safe_open
for path in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    with safe_open(path, "np") as f:
        for k in f.keys():
            print(f"{k}: {f.get_slice(k).get_shape()}")
"""

TUTORIAL = {
    "params": 'for name, p in model.named_parameters(): print(f"{name}: {p.size()}")',
    "values": "for p in model.parameters(): print(p)",
    "tree": 'for name, module in model.named_children(): print(f"{name}: {module.__class__.__name__}")',
    "config": "print(model.config)",
}
TUTORIAL_PRELUDE = "import sys\nfrom transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained(sys.argv[1])\n"


def measure(argv: list[str]) -> tuple[float, float, int] | str:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one run, output
    discarded; or why it failed. CPU time is steadier than wall time on a busy machine."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        return "failed: " + proc.stderr.read().decode().strip().splitlines()[-1][:120]
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def run_all(cases: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float, int] | str]:
    """Medians of interleaved runs, after one warm-up run each (page cache, skeleton cache)."""
    samples: dict[str, list[tuple[float, float, int]]] = {}
    failures: dict[str, str] = {}
    for name, argv in cases.items():
        outcome = measure(argv)
        if isinstance(outcome, str):
            failures[name] = outcome
        else:
            samples[name] = []
    for _ in range(repeat):
        for name in samples:
            outcome = measure(cases[name])
            assert not isinstance(outcome, str), outcome
            samples[name].append(outcome)
    return {name: medians(samples[name]) if samples.get(name) else failures[name] for name in cases}


def medians(runs: list[tuple[float, float, int]]) -> tuple[float, float, int]:
    """Median wall and CPU seconds of (wall, CPU, peak RSS) runs, and the largest peak RSS."""
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), max(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layout")
    parser.add_argument(
        "--random", help="an existing random-filled layout folder (write_layout fill='random') to time values on"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--no-tutorial", action="store_true", help="skip the transformers baselines (slow)")
    args = parser.parse_args()

    from llm_anatomy.replicas import published_config, write_layout

    sparse = os.path.join(args.data, "Llama-2-7b-chat-hf")
    if not os.path.isdir(sparse):
        write_layout(sparse, published_config("Llama-2-7b-chat-hf"))
    models = {"sparse": sparse}
    if args.random:
        models["random"] = args.random

    os.environ.setdefault("LLM_ANATOMY_CACHE", tempfile.mkdtemp(prefix="llm-anatomy-bench-"))
    # Time the package as installed, with compiled bytecode: where PYTHONDONTWRITEBYTECODE is
    # set (as in this project's sessions) every call would recompile every module instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cases: dict[str, list[str]] = {"python -c pass": [PYTHON, "-c", "pass"]}
    for label, folder in models.items():
        cases[f"params ({label})"] = CLI + ["params", folder]
        cases[f"params --style torch ({label})"] = CLI + ["params", folder, "--style", "torch"]
        cases[f"values --style torch ({label})"] = CLI + ["values", folder, "--style", "torch"]
        cases[f"tree, second call ({label})"] = CLI + ["tree", folder]
        cases[f"config ({label})"] = CLI + ["config", folder]
        cases[f"config --explain ({label})"] = CLI + ["config", folder, "--explain"]
        cases[f"summary ({label})"] = CLI + ["summary", folder]
        cases[f"safe_open script ({label})"] = [PYTHON, "-c", SAFE_OPEN, folder]
    results = run_all(cases, args.repeat)
    if not args.no_tutorial:
        folder = models.get("random", sparse)
        tutorial_cases = {
            f"tutorial {view} (transformers, {'random' if 'random' in models else 'sparse'})": [
                PYTHON,
                "-c",
                TUTORIAL_PRELUDE + code,
                folder,
            ]
            for view, code in TUTORIAL.items()
        }
        results.update(run_all(tutorial_cases, max(1, args.repeat // 4)))

    print(
        f"{args.repeat} interleaved runs each (tutorial: {max(1, args.repeat // 4)}), medians; peak RSS is the maximum over runs.\n"
    )
    print_table(results)


def print_table(results: dict[str, tuple[float, float, int] | str]) -> None:
    """Markdown rows of wall, CPU and RSS, with ratios to the "python -c pass" case."""
    base_wall, base_cpu = results["python -c pass"][:2]  # type: ignore[index]
    print("| case | wall s | x `python -c pass` (wall) | CPU s | x `python -c pass` (CPU) | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, outcome in results.items():
        if isinstance(outcome, str):
            print(f"| {name} | {outcome} | | | | |")
        else:
            wall, cpu, rss = outcome
            print(
                f"| {name} | {wall:.3f} | {wall / base_wall:.1f} | {cpu:.3f} | {cpu / base_cpu:.1f} | {rss / 1024:.1f} |"
            )


if __name__ == "__main__":
    main()


def print_wall_cpu(results: dict[str, tuple[float, float, int] | str], title: str) -> None:
    """A Markdown table of median wall and CPU seconds per case (an error text where one failed)."""
    print(f"| {title} | wall s | CPU s |")
    print("|---|---:|---:|")
    for name, outcome in results.items():
        print(
            f"| {name} | {outcome} | |"
            if isinstance(outcome, str)
            else f"| {name} | {outcome[0]:.2f} | {outcome[1]:.2f} |"
        )


def wall_cpu_ratio(results: dict[str, tuple[float, float, int] | str], a: str, b: str) -> str:
    """Case a over case b, wall and CPU, or n/a when either failed."""
    x, y = results[a], results[b]
    if isinstance(x, str) or isinstance(y, str):
        return "n/a"
    return f"{x[0] / y[0]:.2f}x wall, {x[1] / y[1]:.2f}x CPU"
