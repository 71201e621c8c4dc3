"""Benchmark a model on the Hub (issue 9) against the test suite's stand-in Hub with a delay
injected per request, on the Llama-2-7b-chat-hf layout replica (13.5 GB, sparse).

Each case runs in a fresh process, interleaved, repeat times; medians of wall and CPU time
(the child's user + system: steadier than wall on a shared machine), and the requests and
body bytes the stand-in logged for the case's last run, and when its first request reached
the stand-in (median, from the process's start). Cases:
  params, cold             no header cache: model info, config, index, each shard's header
  get_safetensors_metadata HfApi().get_safetensors_metadata(repo): huggingface_hub's own header read
  values --style torch     all 291 tensors, cold
  params, cached (main)    the header cache, and one request to resolve main to its commit
  params, cached (sha)     --revision SHA: no request at all
  params, cached offline   main's commit as last seen (HF_HUB_OFFLINE=1): no request at all
  params, local            the same files in the Hugging Face cache, HF_HUB_OFFLINE=1

    .venv/bin/python bench/hub.py [--data DIR] [--delay 0.05] [--repeat 5] [--only cached,local]

--only keeps the cases whose names contain one of the words (the local case always runs: the
ratios are to it). PYTHONPATH picks the code measured, so one checkout's script can time
another's src side by side.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
PYTHON = sys.executable
CLI = [os.path.join(os.path.dirname(PYTHON), "llm-anatomy")]
REPO = "meta-llama/Llama-2-7b-chat-hf"
GET_METADATA = "import sys\nfrom huggingface_hub import HfApi\nHfApi().get_safetensors_metadata(sys.argv[1])\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layout")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the stand-in adds to every request")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated words: run only the cases whose names contain one")
    args = parser.parse_args()

    from hub_standin import HubStandIn
    from llm_anatomy.replicas import published_config, write_layout

    folder = os.path.join(args.data, "Llama-2-7b-chat-hf")
    if not os.path.isdir(folder):
        write_layout(folder, published_config("Llama-2-7b-chat-hf"))
    hub = HubStandIn()
    sha = hub.add(REPO, folder)
    hub.delay = args.delay
    work = tempfile.mkdtemp(prefix="llm-anatomy-bench-hub-")
    hf_cache = os.path.join(work, "hf_cache")  # the same files as the HF cache holds them, for the local case
    repo_dir = os.path.join(hf_cache, "models--" + REPO.replace("/", "--"))
    for sub in ("refs", "snapshots"):
        os.makedirs(os.path.join(repo_dir, sub))
    os.symlink(os.path.abspath(folder), os.path.join(repo_dir, "snapshots", sha))
    with open(os.path.join(repo_dir, "refs", "main"), "w") as handle:
        handle.write(sha)
    anatomy_cache = os.path.join(work, "anatomy")
    env = dict(
        os.environ,
        HF_ENDPOINT=hub.url,
        HF_HOME=os.path.join(work, "hf_home"),
        LLM_ANATOMY_CACHE=anatomy_cache,
        HF_HUB_CACHE=os.path.join(work, "empty_hf_cache"),
    )
    for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "PYTHONDONTWRITEBYTECODE"):  # timed with compiled bytecode, as installed
        env.pop(name, None)

    def cold() -> None:
        shutil.rmtree(
            os.path.join(anatomy_cache, "hub"), ignore_errors=True
        )  # the skeleton cache stays: this is about the Hub

    metadata_env = dict(
        env, HF_HUB_CACHE=os.path.join(work, "metadata_hf_cache"), HF_HUB_DISABLE_PROGRESS_BARS="1"
    )  # it downloads the index there

    def fresh_hf_cache() -> None:
        shutil.rmtree(metadata_env["HF_HUB_CACHE"], ignore_errors=True)

    cases = {
        "params, cold": (CLI + ["params", REPO], env, cold),
        "HfApi().get_safetensors_metadata": ([PYTHON, "-c", GET_METADATA, REPO], metadata_env, fresh_hf_cache),
        "values --style torch (291 tensors), cold": (CLI + ["values", REPO, "--style", "torch"], env, cold),
        "params, cached (main)": (CLI + ["params", REPO], env, None),
        "params, cached (--revision sha)": (CLI + ["params", REPO, "--revision", sha], env, None),
        "params, cached (main, HF_HUB_OFFLINE=1)": (CLI + ["params", REPO], dict(env, HF_HUB_OFFLINE="1"), None),
        "params, local (HF cache, offline)": (
            CLI + ["params", REPO],
            dict(env, HF_HUB_CACHE=hf_cache, HF_HUB_OFFLINE="1"),
            None,
        ),
    }
    local = "params, local (HF cache, offline)"
    if args.only:
        words = args.only.split(",")
        cases = {name: case for name, case in cases.items() if name == local or any(word in name for word in words)}
    # One warm-up run each (page cache, skeleton cache, huggingface_hub's once-a-day registry).
    for argv, case_env, before in cases.values():
        if before:
            before()
        subprocess.run(argv, env=case_env, check=True, stdout=subprocess.DEVNULL)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    moved: dict[str, tuple[int, int]] = {}
    first: dict[str, list[float]] = {
        name: [] for name in cases
    }  # seconds from the start to the first request's arrival
    for _ in range(args.repeat):
        for name, (argv, case_env, before) in cases.items():
            if before:
                before()
            hub.clear_log()
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.monotonic()  # the stand-in's clock
            subprocess.run(argv, env=case_env, check=True, stdout=subprocess.DEVNULL)
            samples[name].append(time.monotonic() - start)
            if hub.log:
                first[name].append(min(e.arrived for e in hub.log) - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
            moved[name] = hub.moved()
    hub.close()
    shutil.rmtree(work, ignore_errors=True)
    local_wall, local_cpu = statistics.median(samples[local]), statistics.median(cpu[local])
    print(
        f"{args.repeat} interleaved runs each, medians; {args.delay * 1000:.0f} ms added to every request; load average {os.getloadavg()[0]:.1f}.\n"
    )
    print("| case | wall s | x local | CPU s | x local | requests | bytes moved | 1st request at s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, times in samples.items():
        wall, used = statistics.median(times), statistics.median(cpu[name])
        requests, nbytes = moved[name]
        at = f"{statistics.median(first[name]):.3f}" if first[name] else "-"
        print(
            f"| {name} | {wall:.3f} | {wall / local_wall:.2f} | {used:.3f} | {used / local_cpu:.2f} | {requests} | {nbytes:,} | {at} |"
        )


if __name__ == "__main__":
    main()
