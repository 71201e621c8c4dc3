"""Walk every parameter of the Llama-2-70B layout replica (name, shape, dtype) through
llm_anatomy.open(), against the cheapest transformers way to get the same list (the model
built on the meta device from config.json). Each side runs in a fresh interpreter; the
figures are wall seconds, CPU seconds and peak RSS (VmHWM, reset by exec).

    PYTHONPATH=src python bench/api_walk.py [FOLDER]

Without FOLDER the replica is written to a temporary folder (sparse files, seconds).
The API's side runs with a warm skeleton cache (the case of every call after the first)."""

import json
import os
import subprocess
import sys
import tempfile
import time

API = """
import sys
import llm_anatomy as la
m = la.open(sys.argv[1])
rows = [(name, tuple(p.shape), p.dtype) for name, p in m.named_parameters()]
"""

TRANSFORMERS = """
import sys, torch, transformers
config = transformers.AutoConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=config.torch_dtype)
rows = [(name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()]
"""

REPORT = """
status = open('/proc/self/status').read()
import json, resource
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps([len(rows), int(status.split('VmHWM:')[1].split()[0]) * 1024, usage.ru_utime + usage.ru_stime]))
"""


def run(code: str, folder: str) -> tuple[float, float, int, int]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code + REPORT, folder], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    count, peak, cpu = json.loads(result.stdout.splitlines()[-1])
    return wall, cpu, peak, count


def main() -> None:
    from llm_anatomy import replicas

    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.mkdtemp(), "Llama-2-70b-hf")
    if not os.path.exists(folder):
        config = replicas.published_config("Llama-2-70b-hf")
        replicas.write_layout(folder, config, replicas.llama_family_specs(config), max_shard_bytes=10**13)
    run(API, folder)  # warms the skeleton cache
    for label, code in (("llm_anatomy.open", API), ("transformers, meta device", TRANSFORMERS)):
        wall, cpu, peak, count = run(code, folder)
        print(f"{label:28} {count} parameters  {wall:6.2f} s wall  {cpu:6.2f} s CPU  {peak / 2**20:7.1f} MB peak RSS")


if __name__ == "__main__":
    main()
