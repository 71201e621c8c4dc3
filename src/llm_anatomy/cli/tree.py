"""`llm-anatomy tree`: the module hierarchy with class names and parameter counts."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..analysis.tree import find_node
from ..api import open as open_model
from ..core.errors import UsageError
from ..render import tree as render
from ._adapter import add_base_argument, base_of, check
from ._args import MAX_DEPTH, add_model_argument, whole_number

HELP = (
    "The module hierarchy: each module with its class name, its own and total parameter count; "
    "repeated identical blocks are folded. Class names come from transformers (built once on the "
    "meta device from config.json, then cached); without it the tree is built from tensor names."
)
EXAMPLE = """  llm-anatomy tree meta-llama/Llama-2-7b-chat-hf --depth 2
  llm-anatomy tree ./Llama-2-7b-chat-hf --node model.layers.0 --style torch      # as named_children() prints
  llm-anatomy tree ./Llama-2-7b-chat-hf --node lm_head --style torch --params    # as named_parameters() prints"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "--node",
        default="",
        metavar="PATH",
        help="show only this module's subtree, e.g. model.layers.0 (default: the whole model)",
    )
    parser.add_argument(
        "--depth", type=whole_number(0, MAX_DEPTH), metavar="N", help="show N levels below the node (default: all)"
    )
    parser.add_argument(
        "--params",
        action="store_true",
        help="also list each module's own parameters; with --style torch, print named_parameters() instead of named_children()",
    )
    parser.add_argument(
        "--style",
        choices=("tree", "torch"),
        default="tree",
        help="torch: `name: ClassName` for each child of --node, as named_children() prints",
    )
    add_base_argument(parser)
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (unfolded: every module with its path)"
    )


NOT_PEFT = {"gguf": "a LoRA GGUF", "mlx": "an mlx-lm adapter"}  # adapters PEFT does not load


def run(args: argparse.Namespace, out: TextIO) -> int:
    model = open_model(args.model, args.revision)
    base = base_of(model, args)
    if base is not None and model.adapter is not None:
        from ..analysis.adapter import adapted_tree, peft_tree

        if args.style == "torch" and model.adapter.source != "peft":
            raise UsageError(
                model.name,
                "a PEFT adapter for --style torch (the model PeftModel.from_pretrained builds)",
                NOT_PEFT[model.adapter.source],
                "drop --style torch",
            )
        if args.style == "torch":  # as PeftModel.from_pretrained(base, adapter) names its modules
            tree = peft_tree(base.tree, model.adapter, model.catalog.config)
        else:  # the base's tree, the adapted modules marked
            tree = adapted_tree(base.tree, model.adapter)
    elif model.catalog.format == "gguf" and model.adapter is not None:  # its metadata names no base's shape
        raise UsageError(
            model.name,
            "--base MODEL for the tree of a LoRA GGUF (the base's tree, the adapted modules marked)",
            "no base",
            "add --base with the base model",
        )
    else:
        tree = model.tree
    node = find_node(tree, args.node)
    if args.style == "torch":
        if not tree.class_names:
            from ..core.extras import (
                require,
            )  # only here: trace imports this module, and its cached call needs no importlib.util

            require("transformers", "tree --style torch", "for class names")  # a missing extra: exit 1
            raise UsageError(tree.model, "class names for --style torch", "none", tree.no_class_names_because)
        out.write(render.torch_parameters(node) if args.params else render.torch_children(node))
        if tree.implied:  # stdout stays exactly torch's text
            print(f"llm-anatomy: note: {tree.implied}", file=sys.stderr)
    elif args.json:
        out.write(render.json_text(tree, node, args.depth))
    else:
        out.write(render.text(tree, node, args.depth, args.params))
    return check(model, base, out)
