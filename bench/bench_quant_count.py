"""Counting quantized checkpoints stays header-only: `summary` and `params` of layout replicas of
Meta-Llama-3-8B in bfloat16, as block FP8 (DeepSeek-V3 style) and as bitsandbytes nf4 (whose logical
shapes are read from 224 quant_state JSON tensors of ~170 bytes each), against `python -c pass`.

    .venv/bin/python bench/bench_quant_count.py [--repeat N] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from views import CLI, PYTHON, print_table, run_all

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from llm_anatomy import replicas  # noqa: E402

REPLICAS = ("Meta-Llama-3-8B", "Meta-Llama-3-8B-FP8-block", "llama-3-8b-bnb-4bit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layouts")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("LLM_ANATOMY_CACHE", tempfile.mkdtemp(prefix="llm-anatomy-bench-"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # time the package with compiled bytecode, as installed
    cases: dict[str, list[str]] = {"python -c pass": [PYTHON, "-c", "pass"]}
    for name in REPLICAS:
        folder = os.path.join(args.data, name)
        if not os.path.isdir(folder):
            config = replicas.published_config(name)
            replicas.write_layout(
                folder,
                config,
                replicas.quantized_specs(config) if "quantization_config" in config else None,
                max_shard_bytes=10**13,
            )
        cases[f"summary ({name})"] = CLI + ["summary", folder]
        cases[f"params ({name})"] = CLI + ["params", folder]
    results = run_all(cases, args.repeat)
    print(f"{args.repeat} interleaved runs each, medians; peak RSS is the maximum over runs.\n")
    print_table(results)


if __name__ == "__main__":
    main()
