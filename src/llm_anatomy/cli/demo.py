"""`llm-anatomy demo`: the four views on a zero-weight layout replica of Llama-2-7b-chat-hf,
written to a temporary folder (deleted afterwards) or to --keep DIR."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import tempfile

from ..analysis.params import list_tensors
from ..api import open as open_model
from ..replicas import published_config, write_layout
from ..io.files import new_folder
from ..render.params import totals
from ._args import build_parser

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

REPLICA = "Llama-2-7b-chat-hf"
ORIGINAL = "meta-llama/Llama-2-7b-chat-hf"

# The views shown, in order: (command, arguments after MODEL). Each runs exactly as typed.
VIEWS = (
    ("params", ("--filter", "model.layers.0.*")),
    ("values", ("model.norm.weight",)),
    ("tree", ()),
    ("config", ()),
)

HELP = (
    f"Write a replica of {ORIGINAL} (its exact tensor names, shapes, dtypes, two-shard layout, "
    "index and config; every weight zero, in sparse files that take no disk) to a temporary folder, "
    "show params, values, tree and config on it, then delete it."
)
EXAMPLE = f"""  llm-anatomy demo
  llm-anatomy demo --keep ./{REPLICA}   # keep the replica to explore it with the other commands"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", metavar="DIR", help="write the replica to DIR (a new or empty folder) and keep it")


def _show(out: TextIO, folder: str, command: str, extra: tuple[str, ...]) -> None:
    """Run one command on the replica as if typed, echoing the command line first."""
    module = importlib.import_module(f"{__package__}.{command}")
    args = build_parser({command: module}).parse_args([command, folder, *extra])
    out.write(f"\n$ llm-anatomy {command} {shlex.join([REPLICA, *extra])}\n")
    module.run(args, out)


def _whole_checkpoint(folder: str) -> str:
    return f"(whole checkpoint: {totals(list_tensors(open_model(folder).catalog))})\n"


def _write_replica(folder: str) -> None:
    write_layout(folder, published_config(REPLICA))


def run(args: argparse.Namespace, out: TextIO) -> int:
    parent = args.keep or tempfile.mkdtemp(prefix="llm-anatomy-demo-")
    folder = parent if args.keep else os.path.join(parent, REPLICA)
    try:
        if args.keep:
            new_folder(folder, _write_replica)  # never through a link, nor into a folder with files
        else:
            _write_replica(folder)
        fate = "kept" if args.keep else "deleted afterwards"
        out.write(
            f"A zero-weight layout replica of {ORIGINAL}: the real tensor names, shapes,\n"
            "dtypes, two shards, index and config, but every weight is zero (sparse files, no disk\n"
            "used), so all values print as zeros.\n"
            f"Replica: {folder} ({fate})\n"
        )
        for command, extra in VIEWS:
            _show(out, folder, command, extra)
            if command == "params":
                out.write(_whole_checkpoint(folder))
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    return 0
