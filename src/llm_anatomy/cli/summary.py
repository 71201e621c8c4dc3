"""`llm-anatomy summary`: parameters by component, layer and dtype; memory and KV cache."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..analysis.memory import KV_DTYPE_BYTES
from ..api import open as open_model
from ._adapter import add_base_argument, base_of, check
from ._args import add_model_argument, parse_whole_number, shown_argument

HELP = (
    "Where the parameters sit (by component, layer and dtype; tied weights once; MoE total and "
    "active per token), checked against config.json; weights memory in each precision and the "
    "KV cache per token and per context, with the formula. Reads headers only."
)
EXAMPLE = """  llm-anatomy summary meta-llama/Llama-2-7b-chat-hf
  llm-anatomy summary ./my-lora --base meta-llama/Llama-2-7b-hf   # a LoRA adapter: modules, rank, alpha; does the base fit
  llm-anatomy summary ./Mixtral-8x7B-v0.1 --context 4096,32768 --batch 1,8 --kv-dtype fp8"""


# The KV cache table has one row per context and batch: a few of each, of sane sizes.
MAX_VALUES = 64
MAX_CONTEXT = 2**32
MAX_BATCH = 2**20


def whole_numbers(high: int):
    """An argparse type: '4096,32768' -> (4096, 32768), each in 1..high, at most MAX_VALUES."""

    def parse(text: str) -> tuple[int, ...]:
        parts = text.split(",", MAX_VALUES)
        values = tuple(parse_whole_number(part, 1, high) for part in parts)
        if len(parts) > MAX_VALUES or None in values:
            raise argparse.ArgumentTypeError(
                f"expected up to {MAX_VALUES} whole numbers in 1..{high:,} separated by commas, found {shown_argument(text)}"
            )
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--context",
        type=whole_numbers(MAX_CONTEXT),
        metavar="N[,N...]",
        help="context lengths for the KV cache table (default: common lengths up to the model's context)",
    )
    parser.add_argument(
        "--batch",
        type=whole_numbers(MAX_BATCH),
        metavar="N[,N...]",
        help="batch sizes for the KV cache table (default: 1)",
    )
    parser.add_argument(
        "--kv-dtype",
        choices=tuple(KV_DTYPE_BYTES),
        help="KV cache precision (default: the dtype transformers loads the model in: the config's dtype, float32 for a GGUF; see docs/kv-cache.md)",
    )
    add_base_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, out: TextIO) -> int:
    model = open_model(args.model, args.revision)
    base = base_of(model, args)
    if model.adapter is not None:
        from ..render import adapter as render_adapter

        base_params = None if base is None else base.catalog.total_numel
        page = render_adapter.json_text if args.json else render_adapter.text
        out.write(page(model.adapter, None if base is None else base.name, base_params))
        return check(model, base, out)
    from ..render import summary as render  # not on an adapter's path: it imports the role tables

    summary = model.summary(args.context, args.batch, args.kv_dtype)
    out.write(render.json_text(summary) if args.json else render.text(summary))
    return 0
