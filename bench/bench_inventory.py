"""Benchmark the inventory (issue 20) against a plain obstore script that fetches the same
headers with the same concurrency, on N header-only checkpoints (a tiny Llama's config.json
and model.safetensors, the same bytes under N prefixes) in moto's S3 server (tests/s3_moto.py),
run in its own process with a delay slept before every answer.

Cases, each in a fresh process, interleaved, `--repeat` times; medians of wall time, the
requests the server counted per checkpoint, and the child's peak RSS:
  inventory        `llm-anatomy scan s3://bench/ --workers W` (list, config, header; summarize)
  obstore script   list, then per checkpoint the config whole and the header's first 100 KB,
                   W at a time in a ThreadPoolExecutor: the floor for the same requests
  obstore import   `import obstore` alone (what the [s3] extra adds to a command's start)

    .venv/bin/python bench/bench_inventory.py [--n 1000] [--delay 0.02] [--workers 16] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
PYTHON = sys.executable

SERVER = """
import logging, os, sys, time
sys.path.insert(0, {tests!r})
from s3_moto import MotoS3
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
folder, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
files = {{name: open(os.path.join(folder, name), "rb").read() for name in ("config.json", "model.safetensors")}}
with MotoS3(latency=delay) as standin:
    for i in range(n):
        for name, data in files.items():
            standin.put("bench", f"models/m{{i:05d}}/{{name}}", data)
    print(standin.endpoint, flush=True)
    for line in sys.stdin:  # "count" -> requests so far
        print(standin.count(), flush=True)
"""

PLAIN = """
import sys
from concurrent.futures import ThreadPoolExecutor
import obstore
from obstore.store import S3Store
workers = int(sys.argv[1])
store = S3Store("bench", client_options={"allow_http": True})
folders = sorted({m["path"].rpartition("/")[0] for page in obstore.list(store, "models/", chunk_size=1000) for m in page})
def headers(folder):
    config = bytes(obstore.get(store, folder + "/config.json").bytes())
    head = bytes(obstore.get_range(store, folder + "/model.safetensors", start=0, length=100_000))
    return len(config) + len(head)
with ThreadPoolExecutor(workers) as pool:
    print(sum(pool.map(headers, folders)))
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    error = child.stderr.read().decode() if child.stderr else ""
    if status != 0:
        raise SystemExit(f"{argv[:4]} failed: {error}")
    return wall, usage.ru_maxrss / 1024


CLIENTS = """
import os, sys, time, http.client
from urllib.parse import urlsplit
t0 = time.perf_counter()
import obstore
from obstore.store import S3Store
imported = time.perf_counter() - t0
store = S3Store("bench", client_options={"allow_http": True})
size = 64 << 20
def timed(read):
    best = 1e9
    for _ in range(5):
        t = time.perf_counter(); data = read(); best = min(best, time.perf_counter() - t)
        assert len(data) == size
    return best
ours = timed(lambda: bytes(obstore.get(store, "big", options={"range": (0, size)}).bytes()))
address = urlsplit(os.environ["AWS_ENDPOINT_URL"])
def plain():
    connection = http.client.HTTPConnection(address.hostname, address.port)
    connection.request("GET", "/bench/big", headers={"Range": f"bytes=0-{size - 1}"})
    return connection.getresponse().read()
print(f"obstore import {imported * 1000:.1f} ms; 64 MB range: obstore {size / ours / 1e6:.0f} MB/s, http.client {size / timed(plain) / 1e6:.0f} MB/s")
"""


def clients() -> None:
    server = SERVER.format(tests=TESTS).replace(
        "for i in range(n):", "standin.put('bench', 'big', os.urandom(64 << 20))\n    for i in range(n):"
    )
    with tempfile.TemporaryDirectory() as tmp:
        open(os.path.join(tmp, "config.json"), "w").close()
        open(os.path.join(tmp, "model.safetensors"), "w").close()
        child = subprocess.Popen(
            [PYTHON, "-c", server, tmp, "0", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        endpoint = child.stdout.readline().strip()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([PYTHON, "-c", "import obstore"], env=env, check=True)  # .pyc written
        subprocess.run([PYTHON, "-c", CLIENTS], env=env, check=True)
        child.stdin.close()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", action="store_true", help="measure the client choice instead")
    args = parser.parse_args()
    if args.clients:
        return clients()
    with tempfile.TemporaryDirectory() as tmp:
        # built in a child: a peak RSS survives exec, so the children timed must not fork from a process that imported torch
        folder = os.path.join(tmp, "tiny")
        build = f"import sys; sys.path.insert(0, {TESTS!r}); import checkpoints; checkpoints.tiny_llama({folder!r}, shard=None)"
        subprocess.run([PYTHON, "-c", build], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = subprocess.Popen(
            [PYTHON, "-c", SERVER.format(tests=TESTS), folder, str(args.n), str(args.delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        endpoint = server.stdout.readline().strip()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)

        def requests() -> int:
            server.stdin.write("count\n")
            server.stdin.flush()
            return int(server.stdout.readline())

        cases = {
            "inventory": [PYTHON, "-m", "llm_anatomy.cli.main", "scan", "s3://bench/", "--workers", str(args.workers)],
            "obstore script": [PYTHON, "-c", PLAIN, str(args.workers)],
            "obstore import": [PYTHON, "-c", "import obstore"],
            "python -c pass": [PYTHON, "-c", "pass"],
        }
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
        try:
            for argv in cases.values():  # warm-up: .pyc files, page cache
                run(argv, env)
            for _ in range(args.repeat):
                for name, argv in cases.items():
                    before = requests()
                    wall, rss = run(argv, env)
                    results[name].append((wall, rss, requests() - before))
        finally:
            server.stdin.close()
            server.wait(10)
    base = statistics.median(w for w, _, _ in results["obstore script"])
    print(
        f"N={args.n} checkpoints, {args.delay * 1000:.0f} ms per request, {args.workers} workers, median of {args.repeat}"
    )
    print("| case | wall s | x obstore script | requests per checkpoint | peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        wall = statistics.median(w for w, _, _ in rows)
        rss = max(r for _, r, _ in rows)
        per = rows[-1][2] / args.n
        print(f"| {name} | {wall:.3f} | {wall / base:.2f} | {per:.3f} | {rss:.1f} |")
    print(json.dumps({name: rows for name, rows in results.items()}))


if __name__ == "__main__":
    main()
