"""scan --deep's one pass against `sha256sum` on the same files, in the same session.

Writes a BF16 safetensors checkpoint of SIZE_MB (random normal values, std 0.02, in tensors of
4096 x 4096 and a config.json) in a temporary folder, warms the page cache with a first read,
then times, interleaved, REPEAT times each (medians of wall time):
  - `sha256sum` over the folder's files (coreutils, one process);
  - the pass alone (analysis/inventory_deep.local_pass + hexdigest: what --deep hashes with);
  - the whole deep row (`api.inventory([folder], deep=True)`: header row, scan, hashes and
    every tensor's statistics in the same pass).
Hashes of the pass are checked against sha256sum's.

    PYTHONPATH=src .venv/bin/python bench/bench_deep.py [SIZE_MB] [REPEAT]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def main(size_mb=512, repeat=5):
    import numpy as np
    from safetensors.numpy import save_file

    from llm_anatomy import api
    from llm_anatomy.analysis.inventory_deep import local_pass

    folder = tempfile.mkdtemp(prefix="bench-deep-")
    rng = np.random.default_rng(0)
    per = 4096 * 4096 * 2
    tensors = {
        f"model.layers.{i}.mlp.weight": (rng.standard_normal((4096, 4096), np.float32) * 0.02)
        .astype(np.float32)
        .view(np.uint32)
        .__rshift__(16)
        .astype(np.uint16)
        for i in range(max(1, size_mb * 2**20 // per))
    }
    # BF16 bits (the top half of each float32), written as BF16 through the header's dtype
    from safetensors.numpy import save

    blob = save(tensors)
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + header_len])
    for entry in header.values():
        if isinstance(entry, dict) and "dtype" in entry:
            entry["dtype"] = "BF16"
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as handle:
        handle.write(len(text).to_bytes(8, "little") + text + blob[8 + header_len :])
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, handle)
    del save_file, tensors, blob
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    total = sum(os.path.getsize(f) for f in files)
    subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    def sha256sum():
        out = subprocess.run(["sha256sum", *files], capture_output=True, text=True, check=True).stdout
        return {os.path.basename(line.split()[1]): line.split()[0] for line in out.splitlines()}

    def one_pass():
        return {os.path.basename(f): local_pass(f).hexdigest() for f in files}

    def deep_row():
        return json.loads(api.inventory([folder], deep=True).rows[0].sha256)

    cases = {"sha256sum": sha256sum, "pass (hash only)": one_pass, "deep row (hash + stats)": deep_row}
    times = {name: [] for name in cases}
    results = {}
    for _ in range(repeat):
        for name, case in cases.items():
            start = time.perf_counter()
            results[name] = case()
            times[name].append(time.perf_counter() - start)
    assert results["sha256sum"] == results["pass (hash only)"] == results["deep row (hash + stats)"]
    base = statistics.median(times["sha256sum"])
    print(f"{total / 2**20:.0f} MiB in {len(files)} files, {repeat} runs each, medians")
    print("| case | wall s | MiB/s | x sha256sum |")
    print("|---|---:|---:|---:|")
    for name in cases:
        wall = statistics.median(times[name])
        print(f"| {name} | {wall:.3f} | {total / 2**20 / wall:.0f} | {wall / base:.2f} |")
    for f in files:
        os.remove(f)
    os.rmdir(folder)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
