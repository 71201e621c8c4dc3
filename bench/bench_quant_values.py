"""Benchmark `values` on a quantized 7B (issue 10: within 2x of `values` on the fp16 one):
the Llama-2-7B-GPTQ layout replica (4 bit, group 128) against the Llama-2-7b-chat-hf one
(F16), the same weights asked for on each side. GPTQ's values are dequantized from the
packed words, scales, zeros and g_idx that print()'s corners need.

The replicas are sparse (zero-filled) files: both sides read the same few pages per weight,
warm in the page cache after the first run, so the difference is the work of finding,
reading and dequantizing those bytes. Each case in fresh interpreters, interleaved, medians
of wall and CPU seconds, PYTHONDONTWRITEBYTECODE unset.

    .venv/bin/python bench/bench_quant_values.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys

from views import print_wall_cpu, run_all, wall_cpu_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from llm_anatomy import replicas  # noqa: E402

PYTHON = sys.executable
ENTRY = "import sys\nfrom llm_anatomy.cli.main import entry\nsys.argv[0] = 'llm-anatomy'\nentry()\n"
REPLICAS = {
    "F16": ("Llama-2-7b-chat-hf", replicas.llama_family_specs),
    "GPTQ": ("Llama-2-7B-GPTQ", replicas.quantized_specs),
}
# (what is shown, the values arguments after MODEL)
ASKS = [
    ("one weight", ["model.layers.0.self_attn.q_proj.weight"]),
    ("a slice", ["model.layers.31.mlp.down_proj.weight[100:104, 2000:2008]"]),
    ("the 32 down_proj weights", ["--filter", "model.layers.*.mlp.down_proj.weight"]),
    ("every parameter, --style torch", ["--style", "torch"]),
]


def replica(data: str, name: str, specs) -> str:
    folder = os.path.join(data, name)
    if not os.path.isdir(folder):
        config = replicas.published_config(name)
        replicas.write_layout(folder, config, specs(config))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layout replicas")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folders = {label: replica(args.data, name, specs) for label, (name, specs) in REPLICAS.items()}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = {"python -c pass": [PYTHON, "-c", "pass"]}
    for ask, extra in ASKS:
        for label, folder in folders.items():
            cases[f"values {ask} ({label})"] = [PYTHON, "-c", ENTRY, "values", folder, *extra]
    results = run_all(cases, args.repeat)
    print(f"{args.repeat} interleaved runs each, medians.\n")
    print_wall_cpu(results, "case")
    print()
    for ask, _ in ASKS:
        print(f"- {ask}: GPTQ / F16 {wall_cpu_ratio(results, f'values {ask} (GPTQ)', f'values {ask} (F16)')}")


if __name__ == "__main__":
    main()
