"""Benchmark the first run on a new config (issue 12): where the seconds of a skeleton build
go, what llm-anatomy adds to transformers' own build, and what the shipped skeleton saves
`make demo` (which installs no transformers).

All on the Llama-2-7b-chat-hf replica, each case in fresh interpreters, interleaved, medians
of wall and CPU seconds (CPU is steadier on a busy machine). "cold" runs start from an empty
skeleton cache; "transformers hidden" runs make `import transformers` impossible, as in a
venv without the [transformers] extra.

    .venv/bin/python bench/first_run.py [--repeat N]
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
ENTRY = "import sys\nfrom llm_anatomy.cli.main import entry\nsys.argv[0] = 'llm-anatomy'\n"
HIDDEN = "sys.modules['transformers'] = None  # find_spec and import now fail, as without the extra\n"
# What any tool must do to learn the module tree from transformers: the floor of a build.
BUILD = """
import sys, torch, transformers
config = transformers.AutoConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):
    model = getattr(transformers, config.architectures[0])._from_config(config)
str(model.config), list(model.named_parameters())
"""


def cases(replica: str, cache: str) -> dict[str, list[str]]:
    def cold(*argv: str, hidden: bool = False) -> list[str]:
        """A fresh, empty skeleton cache for every run."""
        code = ENTRY.replace("\n", "\n" + HIDDEN, 1) if hidden else ENTRY
        command = shlex.join([PYTHON, "-c", code + "entry()", *argv])
        fresh = os.path.join(cache, "cold")
        return ["sh", "-c", f"rm -rf {shlex.quote(fresh)} && LLM_ANATOMY_CACHE={shlex.quote(fresh)} exec {command}"]

    warm = os.path.join(cache, "warm")
    return {
        "python -c pass": [PYTHON, "-c", "pass"],
        "import torch": [PYTHON, "-c", "import torch"],
        "import torch, transformers": [PYTHON, "-c", "import torch, transformers"],
        "transformers' own build (AutoConfig, meta)": [PYTHON, "-c", BUILD, replica],
        "tree, cold cache (builds)": cold("tree", replica),
        "tree, warm cache": ["env", f"LLM_ANATOMY_CACHE={warm}", PYTHON, "-c", ENTRY + "entry()", "tree", replica],
        "tree, transformers hidden (shipped skeleton)": cold("tree", replica, hidden=True),
        "demo, cold cache (builds)": cold("demo"),
        "demo, transformers hidden (shipped skeleton)": cold("demo", hidden=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.path.join(os.path.dirname(HERE), "src")  # this checkout's llm_anatomy in every case
    with tempfile.TemporaryDirectory(prefix="bench-first-run-") as scratch:
        replica = os.path.join(scratch, "Llama-2-7b-chat-hf")
        write_layout(replica, published_config("Llama-2-7b-chat-hf"))
        results = run_all(cases(replica, scratch), args.repeat)
    print_wall_cpu(results, f"case ({args.repeat} runs, medians)")

    own_build = "transformers' own build (AutoConfig, meta)"
    print()
    print(f"- tree cold / transformers' own build: {wall_cpu_ratio(results, 'tree, cold cache (builds)', own_build)}")
    print(
        f"- demo with the shipped skeleton / demo building it: {wall_cpu_ratio(results, 'demo, transformers hidden (shipped skeleton)', 'demo, cold cache (builds)')}"
    )


if __name__ == "__main__":
    main()
