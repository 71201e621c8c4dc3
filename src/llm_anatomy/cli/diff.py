"""`llm-anatomy diff A B`: what changed between two checkpoints, headers first, then values."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..api import diff, open as open_model
from ._args import MODEL_FORMS, whole_number
from .progress import progress_for

HELP = (
    "Compare two checkpoints: tensors only in one, shape and dtype changes and config fields that differ "
    "(from the headers, printed at once), then for the shared tensors the relative change ||B - A|| / ||A||, "
    "cosine similarity, max absolute difference, or bit-identical; streamed on all cores in bounded memory. "
    "Exit status 1 if a tensor could not be read (the others are still compared)."
)
EXAMPLE = """  llm-anatomy diff ./Llama-2-7b-hf ./Llama-2-7b-chat-hf --top 10
  llm-anatomy diff base/ finetuned/ --filter 'model.layers.*.mlp.*' --json"""


MAX_TOP = 10**9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help=f"the first model: {MODEL_FORMS}")
    parser.add_argument("b", metavar="B", help="the second model, in the same forms as A")
    parser.add_argument("--revision", help="branch, tag or commit of A when it is a model id (default: main)")
    parser.add_argument("--revision-b", help="branch, tag or commit of B when it is a model id (default: main)")
    parser.add_argument("--filter", metavar="GLOB", help="only tensors whose names match this shell pattern")
    parser.add_argument(
        "--top",
        type=whole_number(0, MAX_TOP),
        metavar="N",
        help=f"only the N tensors that changed most (0..{MAX_TOP:,})",
    )
    parser.add_argument(
        "--hf-names",
        action="store_true",
        help="match GGUF and Meta tensor names to Hugging Face names on both sides, so a GGUF pairs with its HF original",
    )
    parser.add_argument(
        "--stored",
        action="store_true",
        help="compare quantized models' tensors as stored (packed words, FP8 values, scales), not dequantized",
    )
    parser.add_argument(
        "--low-rank",
        action="store_true",
        help="per changed matrix, the numerical rank of B - A (randomised SVD) and the share of its energy in the top "
        "singular values, then verdict lines grouped by layer and module: a merged LoRA is recognised as one",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (one document, after the values)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    from ..core.extras import require
    from ..render import diff as render

    require("stats", "diff", "to compare tensor values")
    model_a = open_model(args.a, args.revision, allow_truncated=True)
    model_b = open_model(args.b, args.revision_b, allow_truncated=True)
    found = diff(model_a, model_b, args.filter, hf_names=args.hf_names, values=False, stored=args.stored)
    header = found.header
    if not args.json:  # the headers' differences at once, before the values are read
        out.write(render.header_text(header) + "\n")
        out.flush()
    with progress_for("diff", sum(a.nbytes + b.nbytes for a, b in header.pairs), args.json) as progress:
        found = found.with_values(progress, args.low_rank)
    values = found.values
    if args.low_rank:
        verdict = found.verdict()
        out.write(
            render.json_text(header, values, args.top, verdict)
            if args.json
            else render.low_rank_text(values, verdict, args.top)
        )
    else:
        out.write(render.json_text(header, values, args.top) if args.json else render.values_text(values, args.top))
    return 1 if values.errors else 0
