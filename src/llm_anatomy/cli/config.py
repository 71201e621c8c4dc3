"""`llm-anatomy config`: the config as transformers prints it after from_pretrained."""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import TextIO

from ..api import open as open_model
from ..glossary import LANGUAGES
from ..render import config as render
from ._args import add_model_argument

HELP = (
    "The config as `print(model.config)` shows it after from_pretrained (LlamaConfig { ... }), "
    "from config.json alone. Without transformers: config.json as stored, printed the same way."
)
EXAMPLE = """  llm-anatomy config meta-llama/Llama-2-7b-chat-hf
  llm-anatomy config ./Llama-2-7b-chat-hf --json
  llm-anatomy config ./Llama-2-7b-chat-hf --explain --lang zh   # every field explained, in Chinese"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--json", action="store_true", help="the config dict as JSON")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="every field with its value and what it means, then the facts derived from them",
    )
    parser.add_argument(
        "--lang",
        choices=LANGUAGES,
        help="language of --explain (default: zh when LC_ALL/LC_MESSAGES/LANG start with zh, else en)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.explain:
        return _explain(args, out)
    view = open_model(args.model, args.revision).config_view()
    out.write(render.json_text(view) if args.json else render.text(view))
    return 0


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from ..render import explain

    explanation = open_model(args.model, args.revision).explain(args.lang or explain.language_from_locale(os.environ))
    out.write(explain.json_text(explanation) if args.json else explain.text(explanation))
    return 0
