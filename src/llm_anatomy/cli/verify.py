"""`llm-anatomy verify A B`: did converting A into B keep the model? One verdict, failures in words."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..api import open as open_model, verify
from ._args import MODEL_FORMS
from .progress import progress_for

HELP = (
    "Check that B holds the same model as A (a conversion, a quantization): tensors paired under "
    "transformers' names with the converter's conventions undone, each one identical, the same within the "
    "noise its two dtypes or its quantization type allow, or different; a summary per type; a verdict "
    "(pass, warn, fail) with what is wrong in words first. Exit status 0 for pass and warn, 3 for fail, "
    "1 when something could not be read, 2 for usage."
)
EXAMPLE = """  llm-anatomy verify ./SmolLM2-135M ./SmolLM2-135M-Q8_0.gguf
  llm-anatomy verify ./Llama-2-7b-hf ./llama-2-7b.f16.gguf --json"""

FAIL = 3  # the verdict is fail: told apart from unreadable input (1) and bad usage (2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help=f"the original model: {MODEL_FORMS}")
    parser.add_argument("b", metavar="B", help="the converted model, in the same forms as A")
    parser.add_argument("--revision", help="branch, tag or commit of A when it is a model id (default: main)")
    parser.add_argument("--revision-b", help="branch, tag or commit of B when it is a model id (default: main)")
    parser.add_argument(
        "--filter", metavar="GLOB", help="only tensors whose transformers names match this shell pattern"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (one document)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from ..core.extras import require
    from ..render import verify as render

    require("stats", "verify", "to compare tensor values")
    model_a = open_model(args.a, args.revision, allow_truncated=True)
    model_b = open_model(args.b, args.revision_b, allow_truncated=True)
    total = sum(t.nbytes for m in (model_a, model_b) for t in m.catalog.tensors)
    with progress_for("verify", total, args.json) as progress:
        found = verify(model_a, model_b, args.filter, progress=progress)
    out.write(render.json_text(found) if args.json else render.text(found))
    if found.errors:
        return 1
    return FAIL if found.verdict == "fail" else 0
