"""Entry point: one place that maps the project's errors to a one-line message and an
exit status (1 bad input, 2 bad usage), quiet on closed pipes, tracebacks only with --debug."""

from __future__ import annotations

import _signal  # signal's wrapper builds enums of every signal (~0.6 ms) for nothing used here
import argparse
import importlib
import os
import sys
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Sequence

from ..errors import AnatomyError

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
    "stats": "weight statistics per tensor, layer or role, streamed",
    "diff": "what changed between two checkpoints",
    "report": "one self-contained HTML page about the model",
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
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command_module(name: str) -> object:
    return importlib.import_module(f"{__package__}.{name}")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first argument that is not an option."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model folder, weights file, or model id in the local Hugging Face cache")
    parser.add_argument("--revision", help="branch, tag or commit of a cached model id (default: main)")


def non_negative_int(text: str) -> int:
    """An argparse type for counts (--top, --edgeitems): a bad value is a usage error, exit 2."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, found {text}")
    return value


def build_parser(modules: dict[str, object]) -> Parser:
    parser = Parser(
        prog="llm-anatomy",
        description="See how a large language model is built, straight from its checkpoint files.",
        epilog="example:\n  llm-anatomy params meta-llama/Llama-2-7b-chat-hf --filter 'model.layers.0.*'",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised wherever the program is, so that both unwind as Ctrl-C does
    (workers ended, temporary files removed) and exit with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


_interrupted_pid = 0  # the process that already unwinds for a first signal


def _interrupt(signum: int, frame: object) -> None:
    global _interrupted_pid
    if os.getpid() == _interrupted_pid or os.getpid() != _main_pid:
        # A second signal while unwinding, or a worker forked before it set its own handlers
        # (streaming.run_parallel): end now, quietly; workers die with their parent.
        os._exit(128 + signum)
    _interrupted_pid = os.getpid()
    raise Interrupted(signum)


_main_pid = 0


def catch_signals() -> None:
    """Install the handlers (the command-line entry only: a host program keeps its own)."""
    global _main_pid
    _main_pid = os.getpid()
    for signum in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(signum, _interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Without a known command (--help, a typo) argparse needs every command to list them.
    name = _command_in(argv)
    modules = {n: _command_module(n) for n in ([name] if name else COMMANDS)}
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = getattr(args, "debug", False)
    try:
        return modules[args.command].run(args, sys.stdout) or 0  # type: ignore[attr-defined]
    except AnatomyError as exc:
        if debug:
            raise
        sys.stdout.flush()
        print(f"llm-anatomy: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, and keep Python's own flush at
        # exit from raising again on the closed descriptor.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        return getattr(exc, "exit_code", 130)


def entry() -> None:
    catch_signals()
    sys.exit(main())


if __name__ == "__main__":
    entry()
