"""`llm-anatomy trace`: the forward pass from config.json alone, module by module."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..analysis.devices import DEVICES, find_device
from ..api import open as open_model
from ..core.errors import UsageError
from ..render import trace as render
from ._args import MAX_DEPTH, add_model_argument, whole_number

HELP = (
    "The forward pass, dissected without the weights: transformers builds the model from "
    "config.json on the meta device and runs it on input_ids [batch, seq], or one decoding step "
    "over a KV cache (--decode); each module shows its input and output shapes, dtype, FLOPs (as "
    "torch's FlopCounterMode counts them) and the bytes of the activations it outputs, attention "
    "its q, k, v and scores; identical layers are folded; a mixture of experts counts its top-k "
    "experts per token. Totals with their formulas: FLOPs beside the 2 x parameters rule and the "
    "attention term, FLOPs per generated token, peak activation memory, the KV cache; with "
    "--device, roofline lower bounds for the time."
)
EXAMPLE = """  llm-anatomy trace meta-llama/Llama-2-7b-chat-hf --seq 128 --depth 3
  llm-anatomy trace ./Llama-2-7b-chat-hf --batch 8 --seq 4096 --json
  llm-anatomy trace meta-llama/Meta-Llama-3-8B --decode --context 8192 --node model.layers.0
  llm-anatomy trace ./gemma-3-270m-q4_k_m.gguf --run "The capital of France is\""""


# Sizes are checked against the model once its config is read (analysis.trace); this only
# keeps the number a number.
MAX_SIZE = 2**62


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--seq",
        type=whole_number(1, MAX_SIZE),
        metavar="N",
        help="tokens per sequence (default: the config's context or 2048, whichever is smaller)",
    )
    parser.add_argument(
        "--batch", type=whole_number(1, MAX_SIZE), default=1, metavar="B", help="sequences (default: 1)"
    )
    parser.add_argument(
        "--decode",
        action="store_true",
        help="one decoding step instead: a new token per sequence over a KV cache of --context tokens",
    )
    parser.add_argument(
        "--context",
        type=whole_number(1, MAX_SIZE),
        metavar="C",
        help="with --decode: tokens already in the KV cache (default: as for --seq)",
    )
    parser.add_argument(
        "--node",
        metavar="PATH",
        help="show only this submodule and what is under it (a path as `tree` shows it: model.layers.0.self_attn)",
    )
    parser.add_argument(
        "--device",
        metavar="NAME",
        help=f"bound the time on this accelerator (roofline, from its published peak FLOPs and bandwidth): {', '.join(DEVICES)}",
    )
    parser.add_argument(
        "--depth",
        type=whole_number(0, MAX_DEPTH),
        metavar="N",
        help="show N levels below the model (default: all; with --run: the module tree is shown only with --depth)",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (unfolded: every module with its path)"
    )
    parser.add_argument(
        "--run",
        metavar="TEXT",
        help="run the real weights (small models, on CPU) on TEXT: per layer the hidden-state norms, largest activations, attention entropy per head, and the logit lens",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.run is not None:
        from . import trace_run

        return trace_run.run(args, out)
    if args.decode and args.seq is not None:
        raise UsageError(
            "trace",
            "--seq for a prefill or --context for a decoding step",
            "--decode with --seq",
            "use --decode --context C",
        )
    if args.context is not None and not args.decode:
        raise UsageError(
            "trace", "--context with --decode", "--context alone", "add --decode (a prefill's length is --seq)"
        )
    device = None
    if args.device is not None:
        device = find_device(args.device)
        if device is None:
            raise UsageError(
                "trace",
                f"--device naming one of {', '.join(DEVICES)}",
                repr(args.device),
                "pick the closest, or compare two",
            )
    result = open_model(args.model, args.revision).trace(args.batch, args.seq, args.decode, args.context, args.node)
    roof = None
    if device:
        from ..analysis.roofline import roofline  # only with --device

        roof = roofline(result, device)
    out.write(render.json_text(result, roof) if args.json else render.text(result, args.depth, roof))
    return 0
