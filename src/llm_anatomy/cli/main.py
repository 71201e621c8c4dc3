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
    from ..hub.commit import Early

from ..core import errors
from ..core.errors import AnatomyError
from ..core.text import escape, escape_json, escape_page
from ._args import COMMANDS, build_parser


def _command_module(name: str) -> object:
    return importlib.import_module(f"{__package__}.{name}")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command named on the command line: its first argument that is not an option."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


class OutputFailed(Exception):
    """Writing stdout or stderr failed (a full disk, /dev/full): the command cannot go on."""

    def __init__(self, stream: str, error: OSError) -> None:
        code = errno.errorcode.get(error.errno or 0, type(error).__name__)
        reason = (error.strerror or "").lower()
        todo = (
            "free some space or send the output elsewhere"
            if error.errno in (errno.ENOSPC, errno.EDQUOT)
            else "send the output elsewhere"
        )
        super().__init__(f"{stream}: expected to write the output, found {reason} ({code}); {todo}")


class Escaping:
    """stdout or stderr as everything in the process sees it while a command runs: every
    string from a file, a path or a library message reaches the terminal escaped (see
    core/text.py), whoever writes it: renderers, notes, transformers' logging, warnings. A
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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised wherever the program is, so that both unwind as Ctrl-C does
    (workers ended, temporary files removed) and exit with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


class _Interrupts:
    """The handler of SIGINT and SIGTERM, installed by catch_signals in the process it names."""

    def __init__(self, main_pid: int) -> None:
        self.main_pid = main_pid
        self.unwinding = False  # a first signal is being unwound

    def __call__(self, signum: int, frame: object) -> None:
        if self.unwinding or os.getpid() != self.main_pid:
            # A second signal while unwinding, or a worker forked before it set its own handlers
            # (io.parallel.run_parallel): end now, quietly; workers die with their parent.
            os._exit(128 + signum)
        self.unwinding = True
        raise Interrupted(signum)


def catch_signals() -> None:
    """Install the handlers (the command-line entry only: a host program keeps its own)."""
    handler = _Interrupts(os.getpid())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


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


def _ask_hub_early(name: str, argv: list[str]) -> Early | None:
    """For `COMMAND ORG/NAME ...`, a model read from the Hub before, start asking the Hub which
    commit its branch has now, before the command's modules are even imported: the answer
    comes while they load, and the command waits for it before it uses the commit
    (hub_commit.commit). Only where the id is sure to be the model (right after the command,
    --revision spelled out) and online; hub_commit.ask_early checks the rest. The request
    sent, or None."""
    at = argv.index(name) + 1
    model = argv[at] if at < len(argv) else ""
    if "/" not in model or model.startswith(("-", "s3://", "gs://", "az://")) or os.path.exists(model):
        return None
    revision = None
    for i, arg in enumerate(argv):
        option, equals, value = arg.partition("=")
        if option == "--revision":
            revision = value if equals else argv[i + 1] if i + 1 < len(argv) else ""
        elif len(option) > 2 and "--revision".startswith(option):  # an abbreviation: argparse's to read
            return None
    from ..hub import settings
    from ..io.cache_dir import cache_dir, repo_folder

    repo = model.partition(":")[0]
    if revision == "" or settings.offline() or not os.path.isdir(os.path.join(cache_dir(), "hub", repo_folder(repo))):
        return None
    from ..locate import ask_early

    return ask_early(model, revision)


def _run_command(module: object, args: argparse.Namespace) -> int:
    """The command's exit status; on a terminal, slow stages are announced meanwhile."""
    if not sys.stderr.isatty():
        return module.run(args, sys.stdout) or 0  # type: ignore[attr-defined]
    from ..core.notice import LISTENER

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
    early = _ask_hub_early(name, argv) if name is not None else None
    if early is None:
        return _parse_and_run(name, argv)
    from ..hub import commit

    token = commit.EARLY.set(early)  # for this command only: what it did not use answers no later one
    try:
        return _parse_and_run(name, argv)
    finally:
        commit.EARLY.reset(token)


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
            token = errors.NOTES.set(notes.append)
            try:
                code = _run_command(modules[args.command], args)
            except AnatomyError as exc:
                if getattr(args, "debug", False):
                    raise
                # escape(), not the page's escape: a message with a newline is still one line.
                line, code = f"llm-anatomy: {escape(exc.line())}", exc.exit_code
            finally:
                errors.NOTES.reset(token)
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
