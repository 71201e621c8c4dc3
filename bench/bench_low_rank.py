"""`diff --low-rank` against plain `diff` on the same pair of ~1 GB safetensors folders: wall
time and the peak resident set of the largest process (the command or one of its workers).

A: ten Llama-like layers of 2048-wide BF16 matrices (q, k, v, o 2048 x 2048; gate, up
5632 x 2048; down 2048 x 5632), 1.03 GB; B: A with a rank-16 LoRA merged into every q_proj and
v_proj, rounded to BF16 as a merge stores it. Both written as the safetensors format says.

    .venv/bin/python bench/bench_low_rank.py [--repeat N] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
LAYERS, WIDTH, INNER, RANK = 10, 2048, 5632, 16
SHAPES = {
    "self_attn.q_proj": (WIDTH, WIDTH),
    "self_attn.k_proj": (WIDTH, WIDTH),
    "self_attn.v_proj": (WIDTH, WIDTH),
    "self_attn.o_proj": (WIDTH, WIDTH),
    "mlp.gate_proj": (INNER, WIDTH),
    "mlp.up_proj": (INNER, WIDTH),
    "mlp.down_proj": (WIDTH, INNER),
}
ADAPTED = ("self_attn.q_proj", "self_attn.v_proj")


def bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bits, rounded to nearest even."""
    words = values.astype(np.float32).view(np.uint32)
    return ((words + 0x7FFF + ((words >> 16) & 1)) >> 16).astype(np.uint16)


def widen(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def write(folder: str, tensors: dict[str, np.ndarray]) -> None:
    os.makedirs(folder, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, bits in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(bits.shape), "data_offsets": [offset, offset + bits.nbytes]}
        offset += bits.nbytes
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text)
        for bits in tensors.values():
            handle.write(bits.tobytes())
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump({"model_type": "llama", "hidden_size": WIDTH, "num_hidden_layers": LAYERS}, handle)


def build(data: str) -> tuple[str, str]:
    base, merged = os.path.join(data, "lowrank-base"), os.path.join(data, "lowrank-merged")
    if os.path.exists(os.path.join(merged, "model.safetensors")):
        return base, merged
    rng = np.random.default_rng(0)
    a, b = {}, {}
    for layer in range(LAYERS):
        for module, shape in SHAPES.items():
            name = f"model.layers.{layer}.{module}.weight"
            a[name] = bf16(rng.standard_normal(shape, np.float32) * 0.02)
            b[name] = a[name]
            if module in ADAPTED:
                up = rng.standard_normal((shape[0], RANK), np.float32) * 0.01
                down = rng.standard_normal((RANK, shape[1]), np.float32) * 0.01
                b[name] = bf16(widen(a[name]) + 2.0 * (up @ down))
    write(base, a)
    write(merged, b)
    return base, merged


# Run one command, then say the peak resident set of the largest process it waited for.
PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def run(args: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *args], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    code, peak = out.stdout.split()
    assert code == "0", out
    return wall, int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the two folders")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base, merged = build(args.data)
    command = [sys.executable, "-m", "llm_anatomy.cli.main", "diff", base, merged]
    cases = {"diff": command, "diff --low-rank": command + ["--low-rank"]}
    subprocess.run(cases["diff --low-rank"] + ["--top", "0"], env={**os.environ, "PYTHONPATH": SRC}, check=True)
    runs: dict[str, list[tuple[float, int]]] = {case: [] for case in cases}
    for _ in range(args.repeat):  # interleaved, both warm
        for case, argv in cases.items():
            runs[case].append(run(argv))
    plain = statistics.median(w for w, _ in runs["diff"])
    print("| case | wall s (median) | x plain diff | peak RSS MiB (max) |")
    print("|---|---:|---:|---:|")
    for case, got in runs.items():
        wall = statistics.median(w for w, _ in got)
        print(f"| {case} | {wall:.2f} | {wall / plain:.2f} | {max(p for _, p in got) / 1024:.0f} |")


if __name__ == "__main__":
    main()
