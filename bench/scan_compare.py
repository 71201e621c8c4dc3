"""`scan` against picklescan, ModelScan and fickling on one corpus (tests/scan_corpus.py):
which files each flags. The three run from a venv of their own (they are not test
dependencies), named by --scanners; llm-anatomy runs from this checkout.

    python -m venv /tmp/scanners-venv && /tmp/scanners-venv/bin/pip install picklescan modelscan fickling typing_extensions
    PYTHONPATH=src .venv/bin/python bench/scan_compare.py --scanners /tmp/scanners-venv

Prints a Markdown table: per file, what each tool says ("flagged", "clean", "error")."""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import scan_corpus  # noqa: E402

from llm_anatomy.analysis.scan import scan_model  # noqa: E402
from llm_anatomy.analysis.scan.rules import RANK  # noqa: E402

FICKLING = "import sys, fickling\nr = fickling.scan_file(sys.argv[1], graceful=True)\nprint(r.severity.name, r.errors)\nsys.exit(0 if r else 1)\n"
TIMEOUT = 120


def _verdict(command: list[str], flagged_codes: set[int], clean_codes: set[int]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return "timeout"
    if done.returncode in flagged_codes:
        return "flagged"
    return "clean" if done.returncode in clean_codes else f"error ({done.returncode})"


def tools(venv: str) -> dict:
    bin_dir = os.path.join(venv, "bin")
    return {
        # picklescan: exit 1 when it finds a dangerous global, 0 clean, 2 scan error.
        "picklescan": lambda path: _verdict([os.path.join(bin_dir, "picklescan"), "-p", path], {1}, {0}),
        # ModelScan: 0 no issues, 1 issues found, 2 scan failed, 3 nothing it supports.
        "ModelScan": lambda path: _verdict([os.path.join(bin_dir, "modelscan"), "-p", path], {1}, {0, 3}),
        # fickling's scan_file: unsafe above LIKELY_SAFE, or errors.
        "fickling": lambda path: _verdict([os.path.join(bin_dir, "python"), "-c", FICKLING, path], {1}, {0}),
    }


def ours(path: str) -> str:
    found = scan_model(path).findings
    return "flagged" if any(RANK[f.severity] >= RANK["high"] for f in found) else "clean"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scanners", required=True, help="a venv with picklescan, modelscan and fickling installed")
    args = parser.parse_args()
    others = tools(args.scanners)
    print("| file | expected | llm-anatomy scan | " + " | ".join(others) + " |")
    print("|---|---|---|" + "---|" * len(others))
    totals = {name: 0 for name in ["llm-anatomy scan", *others]}
    cases = [(name, build, "flagged") for name, build in scan_corpus.MALICIOUS.items()] + [
        (name, build, "clean") for name, build in scan_corpus.BENIGN.items()
    ]
    with tempfile.TemporaryDirectory() as work:
        for name, build, expected in cases:
            folder = pathlib.Path(work) / name
            folder.mkdir()
            path = build(folder)
            verdicts = {"llm-anatomy scan": ours(path), **{tool: run(path) for tool, run in others.items()}}
            for tool, verdict in verdicts.items():
                totals[tool] += verdict == expected
            print(f"| {name} | {expected} | " + " | ".join(verdicts.values()) + " |")
    print(f"| **right, of {len(cases)}** | | " + " | ".join(str(n) for n in totals.values()) + " |")


if __name__ == "__main__":
    main()
