"""Benchmark `llm-anatomy report` on a Llama-2-7b-chat-hf layout replica (headers only,
no --stats): wall and CPU time against `python -c pass`, peak RSS, and the page size.
Uses bench/views.py's interleaved runner.

    .venv/bin/python bench/report.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from views import CLI, PYTHON, print_table, run_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "out"), help="where to write the sparse layout")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from llm_anatomy.replicas import published_config, write_layout

    folder = os.path.join(args.data, "Llama-2-7b-chat-hf")
    if not os.path.isdir(folder):
        write_layout(folder, published_config("Llama-2-7b-chat-hf"))
    out = tempfile.mkdtemp(prefix="llm-anatomy-report-")
    pages = {"en": os.path.join(out, "report-en.html"), "zh": os.path.join(out, "report-zh.html")}
    cases = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "report (sparse 7B layout)": CLI + ["report", folder, "-o", pages["en"], "--lang", "en"],
        "report --lang zh (sparse 7B layout)": CLI + ["report", folder, "-o", pages["zh"], "--lang", "zh"],
    }
    results = run_all(cases, args.repeat)
    print(f"{args.repeat} interleaved runs each, medians; peak RSS is the maximum over runs.\n")
    print_table(results)
    sizes = ", ".join(f"{lang} {os.path.getsize(path):,} bytes" for lang, path in pages.items())
    print(f"\nPage size: {sizes} (limit 2 MB = {2 * 1024 * 1024:,} bytes).")


if __name__ == "__main__":
    main()
