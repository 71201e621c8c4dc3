"""`llm-anatomy stats`: weight statistics per tensor, layer or role, streamed in bounded memory."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..analysis.roles import GROUPINGS
from ..api import open as open_model
from ._args import add_model_argument
from .progress import progress_for

HELP = (
    "Statistics of every tensor's values: mean, std (population), min, max, absmax, L2 norm, "
    "fraction of zeros, NaN and Inf counts, values beyond 6 std. Reads each byte once, on all cores, "
    "in bounded memory. Exit status 1 if a tensor could not be read (the others are still reported)."
)
EXAMPLE = """  llm-anatomy stats ./Llama-2-7b-chat-hf --by layer
  llm-anatomy stats ./Llama-2-7b-chat-hf --filter '*layernorm*' --csv > norms.csv"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--filter", metavar="GLOB", help="only tensors whose names match this shell pattern, e.g. 'model.layers.0.*'"
    )
    parser.add_argument(
        "--stored",
        action="store_true",
        help="a quantized model's tensors as stored (packed words, FP8 values, scales), not dequantized",
    )
    parser.add_argument(
        "--by",
        choices=GROUPINGS,
        help="one row per layer, or per role (q_proj, down_proj, input_layernorm... across all layers)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output, full precision")
    output.add_argument("--csv", action="store_true", help="one CSV row per tensor or group, full precision")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from ..core.catalog import select
    from ..core.extras import require
    from ..render import stats as render

    require("stats", "stats", "to compute weight statistics")  # said before any file is read
    model = open_model(args.model, args.revision, allow_truncated=True)
    with progress_for(
        "stats", sum(t.nbytes for t in select(model.catalog.tensors, args.filter)), args.json or args.csv
    ) as progress:
        report = model.stats(args.filter, args.by, progress, stored=args.stored)
    out.write(render.json_text(report) if args.json else render.csv_text(report) if args.csv else render.text(report))
    return 1 if report.errors else 0
