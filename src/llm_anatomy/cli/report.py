"""`llm-anatomy report`: one self-contained HTML page about the model (works offline)."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from ..api import open as open_model
from ..render.explain import language_from_locale
from ..render.report import LABELS
from ..render.text import human_bytes
from ..core.text import escape
from ._args import add_model_argument
from .verify import FAIL

HELP = (
    "Write one self-contained HTML page about the model: overview, a diagram of a decoder layer with "
    "its real shapes, where the parameters sit, the explained config and a sortable tensor table. "
    "No network, no external files: open it anywhere, send it to anyone."
)
EXAMPLE = """  llm-anatomy report ./Llama-2-7b-chat-hf -o llama2.html
  llm-anatomy report meta-llama/Llama-2-7b-chat-hf -o llama2.html --stats --lang zh
  llm-anatomy report ./Llama-2-7b-chat-hf -o llama2.html --trace
  llm-anatomy report ./Llama-2-7b-hf -o llama2.html --compare ./llama-2-7b.f16.gguf"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="report.html",
        help="where to write the page (default: report.html in the current folder; a previous report there is replaced; any other file is left alone)",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="also read every weight once: std and absmax per layer and role, NaN/Inf/outlier findings (takes about as long as reading the files)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also a forward pass section: FLOPs and activation bytes per layer and the totals of `trace` (transformers runs the model on the meta device from config.json; no weight is read)",
    )
    parser.add_argument(
        "--run",
        metavar="TEXT",
        help="also run the model's weights on TEXT (small models, on CPU): a forward-pass section with norms, attention entropy, largest activations and the logit lens by layer, as `trace --run` shows them",
    )
    parser.add_argument(
        "--compare",
        metavar="B",
        help="also verify this model against B (a conversion of it: a GGUF, a quantization, in the forms MODEL takes): the verdict, what is wrong in words, and a heat map of the error per layer and role (reads both models' weights once; exit status 3 when the verdict is fail, as `verify`)",
    )
    parser.add_argument(
        "--lang",
        choices=sorted(LABELS),
        help="language of the page and of the config explanations (default: zh when LC_ALL/LC_MESSAGES/LANG start with zh, else en)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    from ..core.extras import require

    if args.stats:
        require("stats", "report --stats", "to compute weight statistics")
    if args.compare is not None:
        require("stats", "report --compare", "to compare tensor values")
    model = open_model(args.model, args.revision)
    other = open_model(args.compare, allow_truncated=True) if args.compare is not None else None
    lang = args.lang or language_from_locale(os.environ)
    if args.stats or other is not None:
        from .progress import progress_for

        # --compare reads both models once more, and its progress goes on from where --stats ends
        total = model.catalog.total_nbytes * (args.stats + (other is not None))
        total += other.catalog.total_nbytes if other is not None else 0
        label = "report --stats" if args.stats else "report --compare"
        with progress_for(label, total, machine_output=False) as progress:
            written = model.report(
                args.output,
                stats=args.stats,
                trace=args.trace,
                run=args.run,
                lang=lang,
                progress=progress,
                compare=other,
            )
    else:
        written = model.report(args.output, trace=args.trace, run=args.run, lang=lang)
    out.write(f"wrote {escape(written.path)} ({human_bytes(written.nbytes)})\n")
    if other is not None:
        out.write(f"compared with {escape(other.catalog.name)}: {written.verdict}\n")
    if written.errors:
        # As `stats` does: the page is written, and the exit status says it is incomplete.
        count = len(written.errors)
        out.write(
            f"{count} tensor{'s' if count != 1 else ''} could not be read; the page lists {'them' if count != 1 else 'it'} under {'Weight statistics' if args.stats else 'Comparison'}\n"
        )
        return 1
    return FAIL if written.verdict == "fail" else 0
