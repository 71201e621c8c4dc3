"""`llm-anatomy inventory`: one row per checkpoint under local folders and s3:// prefixes,
written to --out (.jsonl or .csv, resumable) with a summary table on stdout. The options
are add_arguments' so that `scan` can take them over."""

from __future__ import annotations

import argparse
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

from ..api import inventory
from ..render import inventory as render

HELP = "One row per checkpoint under folders and s3:// prefixes: format, architecture, parameters, dtypes, quantization, memory, KV cache, fingerprints. Reads headers only."
EXAMPLE = """  llm-anatomy inventory ./models s3://my-bucket/checkpoints --out inventory.jsonl
  llm-anatomy inventory s3://my-bucket/checkpoints --out inventory.csv   # run again to resume"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="FOLDER_OR_PREFIX", help="local folders (walked) and s3://BUCKET/PREFIX (listed), mixed")
    add_inventory_options(parser)


def add_inventory_options(parser: argparse.ArgumentParser) -> None:
    """The inventory's own options (for `scan` to take over at the merge)."""
    parser.add_argument("--out", metavar="FILE", help="append the rows to FILE.jsonl or FILE.csv; a rerun skips the checkpoints it holds for the same content")
    parser.add_argument("--workers", type=int, default=16, metavar="N", help="checkpoints read at once (default 16)")
    parser.add_argument("--json", action="store_true", help="the rows as JSON lines on stdout instead of the table")


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.workers < 1:
        from ..core.errors import UsageError

        raise UsageError("--workers", "at least 1", str(args.workers), "pass --workers 16")
    result = inventory(args.inputs, args.out, workers=args.workers)
    if args.json:
        out.writelines(render.json_line(row) for row in result.rows)
    else:
        out.write(render.text(result.rows))
    if result.skipped:
        from ..render.text import counted

        print(f"llm-anatomy: note: {counted(result.skipped, 'checkpoint')} already in {args.out} for the same content skipped", file=sys.stderr)
    return 0
