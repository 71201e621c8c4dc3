"""`llm-anatomy params`: every tensor's name, shape, dtype, element count, bytes and file."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..analysis.params import list_logical, list_tensors
from ..api import open as open_model
from ..hf import mlx_lora
from ..hf.peft import is_lora_config, is_lora_gguf
from ..render import params as render
from ._adapter import add_base_argument, base_of, check
from ._args import add_model_argument

HELP = "List every tensor: name, shape, dtype, element count, bytes and file, with totals. Reads headers only."
EXAMPLE = """  llm-anatomy params meta-llama/Llama-2-7b-chat-hf --filter 'model.layers.0.*'
  llm-anatomy params ./Llama-2-7b-chat-hf --style torch   # as model.named_parameters() prints"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--filter", metavar="GLOB", help="only names matching this shell pattern, e.g. 'model.layers.0.*'"
    )
    parser.add_argument(
        "--style",
        choices=("table", "torch"),
        default="table",
        help="torch: `name: torch.Size([...])` for each parameter, in transformers' order",
    )
    parser.add_argument(
        "--stored",
        action="store_true",
        help="for a quantized checkpoint, the stored tensors (packed words, scales, zeros) instead of the logical weights",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--hf-names",
        action="store_true",
        help="show GGUF and Meta tensor names as Hugging Face names (blk.0.attn_q -> model.layers.0.self_attn.q_proj)",
    )
    add_base_argument(parser)
    parser.add_argument(
        "--metadata",
        action="store_true",
        help="the file's key/values instead of its tensors (GGUF metadata with arrays summarized, whole with --json; safetensors __metadata__); --filter matches keys",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    model = open_model(args.model, args.revision)
    base = base_of(model, args)
    catalog = model.catalog
    lora = (
        is_lora_config(catalog.config)
        or mlx_lora.is_adapter_config(catalog.config)
        or (catalog.format == "gguf" and is_lora_gguf(catalog.metadata))
    )
    adapter = model.adapter if lora else None  # another kind of adapter: its tensors only
    if args.metadata:
        from ..render import metadata

        if args.json:
            for piece in metadata.json_pieces(catalog, args.filter):
                out.write(piece)
        else:
            out.write(metadata.text(catalog, args.filter))
        return 0
    if args.style == "torch":
        listing = model.parameter_listing(args.filter)
    else:
        from ..quant import view

        if args.hf_names:
            catalog = model.hf_catalog
        qview = None if args.stored else view(catalog)
        listing = list_tensors(catalog, args.filter) if qview is None else list_logical(catalog, qview, args.filter)
    if args.json:
        described = None
        if adapter is not None and not args.filter:
            from ..render import adapter as render_adapter

            described = render_adapter.json_data(adapter)
        out.write(render.json_text(listing, described))
    elif args.style == "torch":
        out.write(render.torch_style(listing))
        from ..analysis.tree import implied_note

        if implied_note(catalog):  # stdout stays exactly torch's text
            print(f"llm-anatomy: note: {implied_note(catalog)}", file=sys.stderr)
    else:
        out.write(render.text(listing))
    if adapter is not None and not args.json and args.style == "table" and not args.filter:
        from ..render import adapter as render_adapter

        out.write("\n".join(render_adapter.sections(adapter)) + "\n")
    return check(model, base, out)
