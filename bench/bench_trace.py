"""Benchmark `trace` (issue 11): a first trace on the Llama-2-7b-chat-hf replica (cold cache)
against a bare transformers script doing the same on the meta device (build, forward hooks
on every module, FlopCounterMode), and a repeated trace (warm cache) against `python -c pass`.

Each case in fresh interpreters, interleaved, medians of wall and CPU seconds (CPU is steadier
on a busy machine), with PYTHONDONTWRITEBYTECODE unset so imports use cached bytecode.

    .venv/bin/python bench/bench_trace.py [--repeat N] [--seq N] [--warm-only]

--warm-only: only the repeated trace and `python -c pass` (seconds, not minutes, per round).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile

from views import print_wall_cpu, run_all, wall_cpu_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from llm_anatomy.replicas import published_config, write_layout  # noqa: E402

PYTHON = sys.executable
ENTRY = "import sys\nfrom llm_anatomy.cli.main import entry\nsys.argv[0] = 'llm-anatomy'\nentry()\n"
# The floor: what any tool must do to learn the same from transformers.
BARE = """
import sys, torch, transformers
from torch.utils.flop_counter import FlopCounterMode
config = transformers.AutoConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):
    model = getattr(transformers, config.architectures[0])._from_config(config)
shapes = {}
def hook_for(path):
    def hook(module, args, kwargs, out):
        shapes.setdefault(path, [t.shape for t in (out if isinstance(out, tuple) else out.values() if isinstance(out, dict) else [out]) if isinstance(t, torch.Tensor)])
    return hook
for path, module in model.named_modules():
    module.register_forward_hook(hook_for(path), with_kwargs=True)
counter = FlopCounterMode(display=False)
with torch.no_grad(), counter:
    model(input_ids=torch.zeros((1, int(sys.argv[2])), dtype=torch.long, device="meta"))
print(counter.get_total_flops(), len(shapes))
"""


def cases(replica: str, cache: str, seq: str, warm_only: bool = False) -> dict[str, list[str]]:
    fresh = os.path.join(cache, "cold")
    cold = shlex.join([PYTHON, "-c", ENTRY, "trace", replica, "--seq", seq])
    first = {
        "bare transformers: meta build + hooks + FlopCounterMode forward": [PYTHON, "-c", BARE, replica, seq],
        "trace, cold cache": [
            "sh",
            "-c",
            f"rm -rf {shlex.quote(fresh)} && LLM_ANATOMY_CACHE={shlex.quote(fresh)} exec {cold}",
        ],
    }
    return {
        "python -c pass": [PYTHON, "-c", "pass"],
        **({} if warm_only else first),
        # LLM_ANATOMY_CACHE=warm is set in main(): an `env` wrapper would add its own exec (~1 ms).
        "trace, warm cache": [PYTHON, "-c", ENTRY, "trace", replica, "--seq", seq],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seq", default="128")
    parser.add_argument("--warm-only", action="store_true", help="only the repeated trace against python -c pass")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.path.join(os.path.dirname(HERE), "src")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as scratch:
        os.environ["LLM_ANATOMY_CACHE"] = os.path.join(scratch, "warm")
        replica = os.path.join(scratch, "Llama-2-7b-chat-hf")
        write_layout(replica, published_config("Llama-2-7b-chat-hf"))
        results = run_all(cases(replica, scratch, args.seq, args.warm_only), args.repeat)
    print_wall_cpu(results, f"case (--seq {args.seq}, {args.repeat} runs, medians)")

    print()
    if not args.warm_only:
        print(
            f"- first trace / bare transformers: {wall_cpu_ratio(results, 'trace, cold cache', 'bare transformers: meta build + hooks + FlopCounterMode forward')}"
        )
    warm, bare = results["trace, warm cache"], results["python -c pass"]
    ms = (
        ""
        if isinstance(warm, str) or isinstance(bare, str)
        else f" ({warm[0] * 1000:.1f} ms against {bare[0] * 1000:.1f} ms wall)"
    )
    print(f"- repeated trace / python -c pass: {wall_cpu_ratio(results, 'trace, warm cache', 'python -c pass')}{ms}")


if __name__ == "__main__":
    main()
