"""Benchmark `values` on quantized checkpoints (issue 10): dequantizing what print() shows
against reading the same model stored in 16 bits.

Sparse layout replicas (bench/out): Meta-Llama-3-8B (BF16) beside its block-FP8 version
(weight_scale_inv per 128x128 block), and gpt-oss-20b (MXFP4 experts). Interleaved runs of
the installed console script, medians of wall and CPU time, .pyc files written.

    .venv/bin/python bench/bench_dequant.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from views import CLI, PYTHON, print_table, run_all, wall_cpu_ratio  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layouts")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from llm_anatomy import replicas

    folders = {}
    for name, specs in (
        ("Meta-Llama-3-8B", replicas.llama_family_specs),
        ("Meta-Llama-3-8B-FP8-block", replicas.quantized_specs),
        ("gpt-oss-20b", replicas.gpt_oss_specs),
    ):
        folders[name] = os.path.join(args.data, name)
        if not os.path.isdir(folders[name]):
            config = replicas.published_config(name)
            replicas.write_layout(folders[name], config, specs(config))

    os.environ.setdefault("LLM_ANATOMY_CACHE", tempfile.mkdtemp(prefix="llm-anatomy-bench-"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # time the package as installed, .pyc written
    cases: dict[str, list[str]] = {"python -c pass": [PYTHON, "-c", "pass"]}
    for name, folder in folders.items():
        cases[f"values ({name})"] = CLI + ["values", folder]
        cases[f"values --style torch ({name})"] = CLI + ["values", folder, "--style", "torch"]
    results = run_all(cases, args.repeat)
    print(f"{args.repeat} interleaved runs each, medians; peak RSS is the maximum over runs.\n")
    print_table(results)
    print()
    for style in ("values", "values --style torch"):
        print(
            f"- {style}: block FP8 over BF16 {wall_cpu_ratio(results, f'{style} (Meta-Llama-3-8B-FP8-block)', f'{style} (Meta-Llama-3-8B)')}"
        )


if __name__ == "__main__":
    main()
