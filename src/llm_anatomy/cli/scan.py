"""`llm-anatomy scan`: findings about what in a model's files a loader would run or misread;
over many models (several MODELs, a folder of checkpoints, an s3:// prefix, or --out) an
inventory, one row per checkpoint with its findings counted by severity."""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, TextIO

from ..analysis.scan import SEVERITIES, scan_model
from ..core.errors import UsageError
from ..render import scan as render

HELP = (
    "Findings, each with a severity, a rule id, the file and the place inside it: globals a pickle "
    "would import or call, code a loader would run (auto_map, .py files), chat templates that reach "
    "past jinja2's sandbox, files and offsets a loader would misread. Nothing is loaded or run. "
    "Over many models (several MODELs, a folder holding several checkpoints, s3://, gs:// or az://BUCKET/PREFIX, "
    "or --out) an inventory: one row per checkpoint (format, architecture, parameters, dtypes, "
    "quantization, memory, KV cache, fingerprints, findings by severity), from headers. "
    "Exit status: 0 no finding at or above --fail-on, 4 findings, 1 unreadable, 2 usage."
)
EXAMPLE = """  llm-anatomy scan ./downloaded-model
  llm-anatomy scan pytorch_model.bin --json
  llm-anatomy scan ./downloaded-model --sarif > scan.sarif   # for a code-scanning page
  llm-anatomy scan ./downloaded-model --fail-on medium        # exit 4 on medium and above
  llm-anatomy scan ./models s3://my-bucket/checkpoints --out inventory.jsonl   # run again to resume
  llm-anatomy scan ./models --deep --out inventory.jsonl   # sha256 of every file, NaN/Inf, absmax
  llm-anatomy scan s3://my-bucket/ --out inventory.parquet --engine ray --ray-address ray://head:10001"""
FINDINGS_EXIT = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="a local model folder (every file under it) or one file; several, a folder holding several checkpoints, or s3://, gs:// or az://BUCKET/PREFIX: an inventory",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="one JSON document (fields as ModelScan's report where they mean the same); an inventory's rows as JSON lines",
    )
    output.add_argument("--sarif", action="store_true", help="SARIF 2.1.0, for code-scanning pages (one model)")
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="high",
        help="exit 4 when a finding is at or above this severity (default: high)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="the inventory's rows to FILE.jsonl or FILE.csv (appended) or FILE.parquet; a rerun skips the checkpoints it holds for the same content",
    )
    parser.add_argument(
        "--author",
        action="append",
        default=[],
        metavar="NAME",
        help="an inventory of the models of a Hub user or organisation too, listed through the Hub API (repeatable)",
    )
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="the inventory as a page too, in the report's style (sortable columns, findings coloured by severity); self-contained",
    )
    parser.add_argument(
        "--deep",
        action="store_true",
        help="an inventory that reads every byte: each file's sha256 (the Hub's LFS oid), NaN/Inf counts and absmax of the weights, and findings about their values (needs numpy)",
    )
    parser.add_argument(
        "--workers", type=int, default=16, metavar="N", help="checkpoints an inventory reads at once (default 16)"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where an inventory's rows are made: local (threads here, the default) or ray (a task per checkpoint on a Ray cluster; the same rows and --out file)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster for --engine ray (default: RAY_ADDRESS, else one started on this machine)",
    )


def _is_inventory(args: argparse.Namespace) -> bool:
    """Many models: several, an s3://, gs:// or az:// prefix, --out, --html, --deep, --author or
    --engine ray, or one folder that holds several checkpoints and is none itself (a model
    folder with more weights in a subfolder, as Meta's repositories keep original/, is one
    model: scanned whole, as before)."""
    from ..locate import OBJECT_STORES

    if not args.models and not args.author:
        raise UsageError("scan", "a MODEL or --author NAME", "neither", "pass a model folder, or --author NAME")
    if (
        len(args.models) != 1
        or args.author
        or args.out is not None
        or args.html is not None
        or args.deep
        or args.engine != "local"
        or args.models[0].startswith(OBJECT_STORES)
    ):
        return True
    import itertools
    import os

    from ..analysis.inventory import walk_local

    folder = args.models[0]
    if not os.path.isdir(folder):
        return False
    found = list(itertools.islice(walk_local(folder), 2))  # the walk is top-down: the folder itself first
    return len(found) > 1 and found[0].location != folder


def _guard(places: list[str]) -> Any:
    """What the page must not be written into: each local checkpoint's folder (or its one
    GGUF file), as `report -o` guards its model's."""
    import os

    from ..io.files import Guard, guard_model
    from ..locate import OBJECT_STORES

    folders, files = {}, {}
    for place in places:
        if place.startswith(OBJECT_STORES) or not os.path.exists(place):
            continue
        if os.path.isdir(place):
            one = guard_model(place, ())
        else:
            one = guard_model(os.path.dirname(place) or ".", (place,), whole_folder=False)
        folders.update(one.folders)
        files.update(one.files)
    return Guard(folders, files)


def _write_page(path: str, inputs: list[str], rows: list) -> None:
    import os

    from ..io.files import write_output
    from ..render.html import GENERATOR
    from ..render.inventory_html import page_of

    # never into a checkpoint's folder (its row's location) nor over a weights file given
    places = [r.location for r in rows] + [i for i in inputs if os.path.isfile(i)]
    write_output(path, page_of(rows).encode("utf-8"), _guard(places), GENERATOR.encode(), "inventory page")


def run(args: argparse.Namespace, out: TextIO) -> int:
    if _is_inventory(args):
        return _inventory(args, out)
    result = scan_model(args.models[0])
    out.write(
        render.json_text(result) if args.json else render.sarif_text(result) if args.sarif else render.text(result)
    )
    return FINDINGS_EXIT if result.at_or_above(args.fail_on) else 0


def _inventory(args: argparse.Namespace, out: TextIO) -> int:
    from ..analysis.inventory import counts_of
    from ..analysis.scan.rules import RANK
    from ..api import inventory
    from ..render import inventory as table

    if args.sarif:
        raise UsageError(
            "--sarif", "one model", "an inventory of several", "scan each model with --sarif, or pass --json"
        )
    if args.workers < 1:
        raise UsageError("--workers", "at least 1", str(args.workers), "pass --workers 16")
    if args.ray_address is not None and args.engine != "ray":
        raise UsageError("--ray-address", "--engine ray with it", f"--engine {args.engine}", "add --engine ray")
    import os

    if args.html is not None:  # refused now (a folder, a file not ours), before the work
        from ..io.files import check_output
        from ..render.html import GENERATOR

        check_output(
            args.html, _guard([m for m in args.models if os.path.isfile(m)]), GENERATOR.encode(), "inventory page"
        )
    result = inventory(
        args.models,
        args.out,
        workers=args.workers,
        deep=args.deep,
        authors=args.author,
        engine=args.engine,
        ray_address=args.ray_address,
    )
    if args.html is not None:
        _write_page(args.html, args.models, result.rows)
    if args.json:
        out.writelines(table.json_line(row) for row in result.rows)
    else:
        out.write(table.text(result.rows))
    if result.skipped:
        from ..render.text import counted

        print(
            f"llm-anatomy: note: {counted(result.skipped, 'checkpoint')} already in {args.out} for the same content skipped",
            file=sys.stderr,
        )
    worst = [RANK[name] for row in result.rows for name in counts_of(row.findings)]
    return FINDINGS_EXIT if worst and max(worst) >= RANK[args.fail_on] else 0
