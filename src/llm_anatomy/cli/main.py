"""Entry point: one place that maps the project's errors to a one-line message and an
exit status (1 bad input, 2 bad usage), quiet on closed pipes, tracebacks only with --debug."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Callable, Iterable, Sequence, TextIO

from .. import __version__, errors
from ..errors import AnatomyError
from ..safe_text import escape, escape_json, escape_page

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


def _command_module(name: str) -> object:
    return importlib.import_module(f"{__package__}.{name}")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first argument that is not an option."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


# What a model argument may be: every command's MODEL, and both sides of `diff`.
MODEL_FORMS = "model folder, weights file, or model id (the local Hugging Face cache, else the Hub; REPO:QUANT picks a GGUF quantization)"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_FORMS)
    parser.add_argument("--revision", help="branch, tag or commit of a model id (default: main)")


class OutputFailed(Exception):
    """Writing stdout or stderr failed (a full disk, /dev/full): the command cannot go on."""

    def __init__(self, stream: str, error: OSError) -> None:
        code = errno.errorcode.get(error.errno or 0, type(error).__name__)
        reason = (error.strerror or "").lower()
        todo = "free some space or send the output elsewhere" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "send the output elsewhere"
        super().__init__(f"{stream}: expected to write the output, found {reason} ({code}); {todo}")


class Escaping:
    """stdout or stderr as everything in the process sees it while a command runs: every
    string from a file, a path or a library message reaches the terminal escaped (see
    safe_text), whoever writes it: renderers, notes, transformers' logging, warnings. A
    failing write becomes OutputFailed; a closed pipe stays BrokenPipeError."""

    def __init__(self, stream: TextIO | None, escape_text: Callable[[str], str], name: str) -> None:
        self.raw = stream  # for the progress line, whose terminal controls are meant
        self.escape_text = escape_text  # escape_json for --json: the same JSON, terminal-safe
        self._name = name

    def write(self, text: str) -> int:
        try:
            if self.raw is None:  # Python's stand-in for a descriptor closed at start-up (>&-)
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            return self.raw.write(self.escape_text(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputFailed(self._name, exc) from exc

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            if self.raw is not None:
                self.raw.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputFailed(self._name, exc) from exc

    def __getattr__(self, name: str) -> object:
        return getattr(self.raw, name)


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
            raise argparse.ArgumentTypeError(f"expected a whole number in {low:,}..{high:,}, found {shown_argument(text)}")
        return value

    return parse


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
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)


BUILD_NOTICE = "building the module tree with transformers, once per config ..."
# What each slow stage (notice.announced) shows on a terminal while it runs.
NOTICES = {
    "build": BUILD_NOTICE,
    "trace": "tracing the forward pass on the meta device, once per config and shape ...",
    "load": "loading the tokenizer and the weights with transformers ...",
    "run": "running the weights on the text, on CPU ...",
}


def _show_notice(stage: str | None) -> None:
    """notice.LISTENER on a terminal: the first command on a new config waits seconds for
    torch and transformers, trace --run for a minute; the line is cleared when a stage ends."""
    stream = getattr(sys.stderr, "raw", sys.stderr)  # past the escaping: its controls are meant
    stream.write(NOTICES[stage] if stage else "\r\x1b[K")
    stream.flush()


def _ask_hub_early(name: str, argv: list[str]) -> bool:
    """For `COMMAND ORG/NAME ...`, a model read from the Hub before, start asking the Hub which
    commit its branch has now, before the command's modules are even imported: the answer
    comes while they load, and the command waits for it before it uses the commit
    (hub_commit.commit). Only where the id is sure to be the model (right after the command,
    --revision spelled out) and online; hub_commit.ask_early checks the rest. True when
    hub_commit was asked: what the command did not use is forgotten when it ends."""
    at = argv.index(name) + 1
    model = argv[at] if at < len(argv) else ""
    if "/" not in model or model.startswith("-") or os.path.exists(model):
        return False
    revision = None
    for i, arg in enumerate(argv):
        option, equals, value = arg.partition("=")
        if option == "--revision":
            revision = value if equals else argv[i + 1] if i + 1 < len(argv) else ""
        elif len(option) > 2 and "--revision".startswith(option):  # an abbreviation: argparse's to read
            return False
    from .. import hub_env
    from ..cache_folder import cache_dir, repo_folder

    repo = model.partition(":")[0]
    if revision == "" or hub_env.offline() or not os.path.isdir(os.path.join(cache_dir(), "hub", repo_folder(repo))):
        return False
    from .. import hub_commit

    hub_commit.ask_early(model, revision)
    return True


def _run_command(module: object, args: argparse.Namespace) -> int:
    """The command's exit status; on a terminal, slow stages are announced meanwhile."""
    if not sys.stderr.isatty():
        return module.run(args, sys.stdout) or 0  # type: ignore[attr-defined]
    from ..notice import LISTENER

    token = LISTENER.set(_show_notice)
    try:
        return module.run(args, sys.stdout) or 0  # type: ignore[attr-defined]
    finally:
        LISTENER.reset(token)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = sys.stdout, sys.stderr
    sys.stdout = Escaping(sys.stdout, escape_page, "stdout")  # type: ignore[assignment]
    sys.stderr = Escaping(sys.stderr, escape_page, "stderr")  # type: ignore[assignment]
    try:
        return _run(argv)
    except OutputFailed as exc:
        # What is still buffered cannot be written: let Python's flush at exit go nowhere.
        if saved[0] is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, saved[0].fileno())
        try:
            if saved[1] is not None:
                print(f"llm-anatomy: {escape(str(exc))}", file=saved[1], flush=True)
        except OSError:
            pass  # stderr is what failed: nowhere left to say so
        return 1
    except BrokenPipeError:
        # The reader (e.g. `head`) went away: stop quietly, and keep Python's own flush at
        # exit from raising again on the closed descriptor.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, saved[0].fileno())
        return 0
    except KeyboardInterrupt as exc:
        return getattr(exc, "exit_code", 130)
    finally:
        sys.stdout, sys.stderr = saved


def _run(argv: list[str]) -> int:
    """Parse and run the command; a bad input becomes its one line on stderr, after stdout."""
    name = _command_in(argv)
    asked = name is not None and _ask_hub_early(name, argv)
    try:
        return _parse_and_run(name, argv)
    finally:
        if asked:
            from .. import hub_commit

            hub_commit.forget_early()


def _parse_and_run(name: str | None, argv: list[str]) -> int:
    # Without a known command (--help, a typo) argparse needs every command to list them;
    # --version needs none of them.
    needed = [name] if name else [] if "--version" in argv else COMMANDS
    modules = {n: _command_module(n) for n in needed}
    parser = build_parser(modules)
    line = None
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help (0) or a usage error (2), printed: the exit must see it written
        sys.stdout.flush()
        raise
    else:
        if getattr(args, "json", False):
            sys.stdout.escape_text = escape_json  # type: ignore[attr-defined]
        if args.command is None:
            parser.print_help()
            code = 2
        else:
            notes: list[str] = []
            errors.note_sink = notes.append
            try:
                code = _run_command(modules[args.command], args)
            except AnatomyError as exc:
                if getattr(args, "debug", False):
                    raise
                # escape(), not the page's escape: a message with a newline is still one line.
                line, code = f"llm-anatomy: {escape(exc.line())}", exc.exit_code
            finally:
                errors.note_sink = None
            if line is None:  # notes after the output, once each; a failing command says only why
                line = "\n".join(f"llm-anatomy: note: {escape(text)}" for text in dict.fromkeys(notes)) or None
    sys.stdout.flush()  # a full disk (or /dev/full) shows here, while it can still be said
    if line is not None:
        print(line, file=sys.stderr)
    return code


def entry() -> None:
    catch_signals()
    sys.exit(main())


if __name__ == "__main__":
    entry()
