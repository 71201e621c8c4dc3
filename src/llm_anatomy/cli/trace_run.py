"""`llm-anatomy trace MODEL --run TEXT`: the real forward pass of a small model on CPU."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..core.errors import UsageError
from ..api import open as open_model
from ..render import trace_run as render


def run(args: argparse.Namespace, out: TextIO) -> int:
    # --batch 1 is the default, so only a larger batch can be told from it.
    given = [
        option
        for option, value in (
            ("--seq", args.seq),
            ("--batch", args.batch != 1 or None),
            ("--decode", args.decode or None),
            ("--context", args.context),
            ("--node", args.node),
            ("--device", args.device),
        )
        if value is not None
    ]
    if given:
        raise UsageError(
            args.model,
            "--run without the options of the config-only trace",
            " and ".join(given),
            "--run runs one text, as many tokens long as it is, through the whole model on CPU",
        )
    result = open_model(args.model, args.revision).trace_run(args.run)
    out.write(render.json_text(result) if args.json else render.text(result, args.depth))
    return 0
