"""The restricted unpickler as an opcode interpreter of its own, against the subclass of
pickle._Unpickler it replaced (issue 18, item 6), and `import signal` against `import _signal`
at CLI start-up. Both sides run in this one session, interleaved, best of ROUNDS, CPU time.

    PYTHONPATH=src python bench/bench_unpickle.py [TENSORS]

The baseline is the module as of BASELINE, read with git and loaded under another name."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import zipfile

BASELINE = "f34f8f7"
ROUNDS = 7
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _baseline_module():
    source = subprocess.run(
        ["git", "show", f"{BASELINE}:src/llm_anatomy/formats/restricted_pickle.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = os.path.join(
        ROOT, "src", "llm_anatomy", "formats", "_baseline_restricted_pickle.py"
    )  # beside it: its relative imports resolve
    with open(path, "w") as handle:
        handle.write(source)
    try:
        spec = importlib.util.spec_from_file_location("llm_anatomy.formats._baseline_restricted_pickle", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        os.unlink(path)
    return module


def _data_pkl(count: int) -> bytes:
    import torch

    path = os.path.join(tempfile.mkdtemp(), "many.pt")
    torch.save({f"model.layers.{i}.mlp.weight": torch.zeros(2) for i in range(count)}, path)
    with zipfile.ZipFile(path) as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))


def _best(function) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return best


def _import_cost(module: str) -> float:
    """Self time of importing module after what `params` has already imported (re, argparse)."""
    costs = []
    for _ in range(ROUNDS * 3):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import re, argparse; import {module}"],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""),
        ).stderr
        costs.append(
            int(next(line for line in err.splitlines() if line.endswith(f"| {module}")).split("|")[0].split(":")[1])
        )
    return min(costs) / 1000


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    from llm_anatomy.formats import restricted_pickle

    baseline = _baseline_module()
    data = _data_pkl(count)
    times = {"baseline": [], "now": []}
    for _ in range(3):
        times["baseline"].append(_best(lambda: baseline.load("x", data)))
        times["now"].append(_best(lambda: restricted_pickle.load("x", data)))
    old, new = min(times["baseline"]), min(times["now"])
    print(
        f"data.pkl of {count} tensors ({len(data)} bytes): baseline {old * 1000:.0f} ms, opcode loop {new * 1000:.0f} ms, ratio {new / old:.2f}"
    )
    signal_cost, private_cost = _import_cost("signal"), _import_cost("_signal")
    print(f"import after re and argparse: _signal {private_cost:.2f} ms, signal {signal_cost:.2f} ms")


if __name__ == "__main__":
    main()
