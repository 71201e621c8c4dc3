"""`llm-anatomy scan`: findings about what in a model's files a loader would run or misread."""

from __future__ import annotations

import argparse
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..analysis.scan import SEVERITIES, scan_model
from ..render import scan as render

HELP = (
    "Findings, each with a severity, a rule id, the file and the place inside it: globals a pickle "
    "would import or call, code a loader would run (auto_map, .py files), chat templates that reach "
    "past jinja2's sandbox, files and offsets a loader would misread. Nothing is loaded or run. "
    "Exit status: 0 no finding at or above --fail-on, 4 findings, 1 unreadable, 2 usage."
)
EXAMPLE = """  llm-anatomy scan ./downloaded-model
  llm-anatomy scan pytorch_model.bin --json
  llm-anatomy scan ./downloaded-model --sarif > scan.sarif   # for a code-scanning page
  llm-anatomy scan ./downloaded-model --fail-on medium        # exit 4 on medium and above"""
FINDINGS_EXIT = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a local model folder (every file under it) or one file")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document (fields as ModelScan's report where they mean the same)")
    output.add_argument("--sarif", action="store_true", help="SARIF 2.1.0, for code-scanning pages")
    parser.add_argument("--fail-on", choices=SEVERITIES, default="high", help="exit 4 when a finding is at or above this severity (default: high)")


def run(args: argparse.Namespace, out: TextIO) -> int:
    result = scan_model(args.model)
    out.write(render.json_text(result) if args.json else render.sarif_text(result) if args.sarif else render.text(result))
    return FINDINGS_EXIT if result.at_or_above(args.fail_on) else 0
