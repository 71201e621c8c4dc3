"""The same commands on two trees of this project, interleaved in one session: a baseline
commit (checked out into a temporary worktree) against the working tree. For changes that must
not cost speed (issue 18's move: params, values, stats and trace within 5% of before).

Each command runs alternately on the baseline and on this tree, REPEAT times each, with the
same interpreter and data; the table gives the median CPU seconds (user + system, steadier than
wall time on a shared machine) and wall seconds of each, and this tree's ratio to the baseline.
Bytecode is written on a first untimed run of each (unset PYTHONDONTWRITEBYTECODE).

    python bench/before_after.py --baseline f34f8f7 [--repeat 11] [--stats-mib 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = sys.executable

# Data written with the baseline's own modules, so both trees read the same bytes.
WRITE_DATA = """
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
try:
    from llm_anatomy import replicas as layouts
except ImportError:  # a baseline from before the layout move
    from llm_anatomy import layouts

folder = sys.argv[1]
config = layouts.published_config("Llama-2-7b-chat-hf")
layouts.write_layout(os.path.join(folder, "llama"), config, layouts.llama_family_specs(config), max_shard_bytes=10**13)
rng = np.random.default_rng(0)
rows = int(sys.argv[2]) * 2**20 // (4096 * 2 * 8)
tensors = {f"model.layers.{i}.mlp.up_proj.weight": rng.standard_normal((rows, 4096), dtype=np.float32).astype(np.float16) for i in range(8)}
os.makedirs(os.path.join(folder, "random"))
save_file(tensors, os.path.join(folder, "random", "model.safetensors"))
with open(os.path.join(folder, "random", "config.json"), "w") as handle:
    json.dump(config, handle)
"""


def _commands(data: str) -> dict[str, list[str]]:
    llama, random = os.path.join(data, "llama"), os.path.join(data, "random")
    return {
        "params": ["params", llama],
        "values": ["values", llama],
        "values --style torch (one parameter)": ["values", llama, "model.norm.weight", "--style", "torch"],
        "tree": ["tree", llama],
        "config --explain": ["config", llama, "--explain"],
        "summary": ["summary", llama],
        "trace (cached)": ["trace", llama, "--seq", "128"],
        "stats": ["stats", random],
    }


def _run(src: str, args: list[str], cache: str) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=src, LLM_ANATOMY_CACHE=cache, HF_HUB_OFFLINE="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    process = subprocess.Popen(
        [PYTHON, "-m", "llm_anatomy.cli.main", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed under {src}: {process.stderr.read().decode()[-500:]}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the commit to compare against")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--stats-mib", type=int, default=512, help="size of the random float16 file stats reads")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        base = os.path.join(scratch, "baseline")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", base, options.baseline], check=True)
        try:
            for tree in (base, ROOT):  # the optional C histogram, built in place as `pip install -e` does
                subprocess.run(
                    [PYTHON, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree, check=True, capture_output=True
                )
            data = os.path.join(scratch, "data")
            subprocess.run(
                [PYTHON, "-c", WRITE_DATA, data, str(options.stats_mib)],
                check=True,
                env=dict(os.environ, PYTHONPATH=os.path.join(base, "src")),
            )
            trees = {"baseline": os.path.join(base, "src"), "this tree": os.path.join(ROOT, "src")}
            caches = {name: os.path.join(scratch, f"cache-{i}") for i, name in enumerate(trees)}
            print(
                f"| command | {options.baseline} CPU s | this tree CPU s | ratio | {options.baseline} wall s | this tree wall s |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            for label, args in _commands(data).items():
                for name, src in trees.items():  # bytecode, skeleton and trace caches
                    _run(src, args, caches[name])
                times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
                for _ in range(options.repeat):
                    for name, src in trees.items():
                        times[name].append(_run(src, args, caches[name]))
                cpu = {name: statistics.median(t[0] for t in runs) for name, runs in times.items()}
                wall = {name: statistics.median(t[1] for t in runs) for name, runs in times.items()}
                print(
                    f"| {label} | {cpu['baseline']:.3f} | {cpu['this tree']:.3f} | {cpu['this tree'] / cpu['baseline']:.2f}x | {wall['baseline']:.3f} | {wall['this tree']:.3f} |",
                    flush=True,
                )
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", base], check=False)
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
