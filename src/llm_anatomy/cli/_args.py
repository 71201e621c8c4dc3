"""What the commands share to build their arguments: the parser (help width, one-line usage
errors), MODEL and --revision, whole numbers, the command table. Apart from main.py so that
a command module imports it, never the entry point that imports the commands."""

from __future__ import annotations

import argparse
import os

from .._version import __version__
from ..core.text import escape

# Command -> its one-line summary. Each command lives in the module of the same name under
# llm_anatomy.cli, which defines HELP, EXAMPLE, add_arguments(parser) and run(args, out).
# Only the module of the command being run is imported, so a header-only command pays
# for nothing else.
COMMANDS = {
    "params": "every tensor's name, shape, dtype, size and file",
    "values": "tensor values as torch prints them, reading only the bytes shown",
    "tree": "the module hierarchy with class names and parameter counts",
    "config": "the config as transformers prints it, or explained (--explain)",
    "summary": "parameters by component, layer and dtype; memory and KV cache",
    "trace": "the forward pass from the config: shapes, FLOPs and activations per module",
    "stats": "weight statistics per tensor, layer or role, streamed",
    "diff": "what changed between two checkpoints",
    "verify": "did a conversion keep the model: a verdict, with what differs in words",
    "report": "one self-contained HTML page about the model",
    "scan": "what a loader would run or misread: findings by severity; many models: one row each",
    "demo": "the four views on a zero-weight replica of Llama-2-7b-chat-hf",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Width from COLUMNS or the terminal, without argparse's import of shutil (a few ms per call)."""

    def __init__(self, prog: str, **kwargs) -> None:
        try:
            width = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                width = os.get_terminal_size().columns
            except OSError:
                width = 80
        super().__init__(prog, width=max(width - 2, 40), **kwargs)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {escape(message)}\n")


# What a model argument may be: every command's MODEL, and both sides of `diff`.
MODEL_FORMS = "model folder, weights file, or model id (the local Hugging Face cache, else the Hub; REPO:QUANT picks a GGUF quantization)"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_FORMS)
    parser.add_argument("--revision", help="branch, tag or commit of a model id (default: main)")


# Numbers typed on the command line carry at most this many digits: int() of more than
# 4,300 raises, and no option needs more than a dozen.
MAX_DIGITS = 19
SHOWN_ARGUMENT = 30  # characters of a bad argument echoed in the usage error


def shown_argument(text: str) -> str:
    return escape(text if len(text) <= SHOWN_ARGUMENT else text[:SHOWN_ARGUMENT] + "...")


def parse_whole_number(text: str, low: int, high: int) -> int | None:
    """text as an int in low..high, or None."""
    if len(text.strip().lstrip("+-")) > MAX_DIGITS:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


def whole_number(low: int, high: int):
    """An argparse type for a whole number in low..high: anything else is a usage error, exit 2."""

    def parse(text: str) -> int:
        value = parse_whole_number(text, low, high)
        if value is None:
            raise argparse.ArgumentTypeError(
                f"expected a whole number in {low:,}..{high:,}, found {shown_argument(text)}"
            )
        return value

    return parse


MAX_DEPTH = 10_000  # deeper than any model; --depth beyond a model's depth shows it all (tree, trace)


def build_parser(modules: dict[str, object]) -> Parser:
    parser = Parser(
        prog="llm-anatomy",
        description="See how a large language model is built, straight from its checkpoint files.",
        epilog="example:\n  llm-anatomy params meta-llama/Llama-2-7b-chat-hf --filter 'model.layers.0.*'",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"llm-anatomy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in modules.items():
        command = sub.add_parser(
            name,
            help=COMMANDS[name],
            description=module.HELP,  # type: ignore[attr-defined]
            epilog="example:\n" + module.EXAMPLE,  # type: ignore[attr-defined]
        )
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        module.add_arguments(command)  # type: ignore[attr-defined]
    return parser
