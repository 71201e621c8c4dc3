"""`llm-anatomy report`: one self-contained HTML page about the model (works offline)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, TextIO

from ..analysis.report import build_report
from ..catalog import Catalog
from ..formats import open_catalog
from ..output_file import check_output, guard_model, write_output
from ..render.explain import language_from_locale
from ..render.html import GENERATOR
from ..render.report import LABELS, render_report
from ..render.text import human_bytes
from ..safe_text import escape
from .main import add_model_argument

MARKER = GENERATOR.encode()  # how a page we wrote before is told from a file to leave alone

if TYPE_CHECKING:
    from ..analysis.stats import StatsReport

HELP = (
    "Write one self-contained HTML page about the model: overview, a diagram of a decoder layer with "
    "its real shapes, where the parameters sit, the explained config and a sortable tensor table. "
    "No network, no external files: open it anywhere, send it to anyone."
)
EXAMPLE = """  llm-anatomy report ./Llama-2-7b-chat-hf -o llama2.html
  llm-anatomy report meta-llama/Llama-2-7b-chat-hf -o llama2.html --stats --lang zh"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("-o", "--output", metavar="FILE", default="report.html", help="where to write the page (default: report.html in the current folder; a previous report there is replaced; any other file is left alone)")
    parser.add_argument("--stats", action="store_true", help="also read every weight once: std and absmax per layer and role, NaN/Inf/outlier findings (takes about as long as reading the files)")
    parser.add_argument("--lang", choices=sorted(LABELS), help="language of the page and of the config explanations (default: zh when LC_ALL/LC_MESSAGES/LANG start with zh, else en)")


def _weight_stats(catalog: Catalog) -> StatsReport:
    from ..analysis.stats import weight_stats
    from .progress import progress_for

    with progress_for("report --stats", catalog.total_nbytes, machine_output=False) as progress:
        return weight_stats(catalog, progress=progress)


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.stats:
        from ..extras import require

        require("stats", "report --stats", "to compute weight statistics")
    catalog = open_catalog(args.model, args.revision)
    # A single weights file protects itself, not the folder it happens to sit in. The path is
    # checked before any work, and again as the page is written.
    guard = guard_model(catalog.root, catalog.files, tuple(filter(None, [catalog.config_file])), whole_folder=not os.path.isfile(args.model))
    check_output(args.output, guard, MARKER)
    lang = args.lang or language_from_locale(os.environ)
    stats = _weight_stats(catalog) if args.stats else None
    text = render_report(build_report(catalog, lang=lang, stats=stats))
    data = text.encode("utf-8")
    write_output(args.output, data, guard, MARKER)
    out.write(f"wrote {escape(args.output)} ({human_bytes(len(data))})\n")
    if stats is not None and stats.errors:
        # As `stats` does: the page is written, and the exit status says it is incomplete.
        count = len(stats.errors)
        out.write(f"{count} tensor{'s' if count != 1 else ''} could not be read; the page lists {'them' if count != 1 else 'it'} under Weight statistics\n")
        return 1
    return 0
