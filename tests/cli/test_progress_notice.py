"""No silent waits on a terminal: a first `trace` (a forward pass traced on the meta device)
and `trace --run` (loading the weights, then running them) say what they are doing on stderr
while stderr is a terminal, one line each, cleared when the stage ends; nothing of the kind
when stderr is a pipe, and stdout is the same either way. Run in a real pseudo-terminal."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest

import checkpoints
from llm_anatomy.cli.main import NOTICES

CLEAR = "\r\x1b[K"
TIMEOUT = 300  # seconds: transformers imports and builds the model from nothing


def _with_stderr_on_a_terminal(args, env):
    """(exit status, stdout, what the terminal showed on stderr) of the CLI."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_anatomy.cli.main", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            if select.select([controller], [], [], 1)[0]:
                try:
                    chunk = os.read(controller, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        out = process.communicate(timeout=TIMEOUT)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return process.returncode, out.decode(), shown.decode()


@pytest.fixture
def cold_env(tmp_path):
    env = dict(os.environ, LLM_ANATOMY_CACHE=str(tmp_path / "cache"))
    env.pop("COLUMNS", None)
    return env


def test_a_first_trace_says_it_is_tracing_on_a_terminal_only(llama_dir, cold_env, cli_subprocess):
    code, out, shown = _with_stderr_on_a_terminal(("trace", llama_dir, "--seq", 8), cold_env)
    assert code == 0, shown
    assert shown == NOTICES["trace"] + CLEAR
    assert NOTICES["trace"] == "tracing the forward pass on the meta device, once per config and shape ..."
    # Traced once: the cached record comes back at once, unannounced.
    assert _with_stderr_on_a_terminal(("trace", llama_dir, "--seq", 8), cold_env)[1:] == (out, "")
    piped = cli_subprocess("trace", llama_dir, "--seq", 9, env=cold_env)  # a new shape, traced again
    assert (piped.returncode, piped.stderr) == (0, "")


@pytest.fixture(scope="module")
def llama_with_tokenizer(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("llama_tok"))
    checkpoints.tiny_llama(folder, shard=None)
    checkpoints.word_tokenizer(folder, 128)
    return folder


@pytest.mark.slow  # loads and runs the weights twice in fresh interpreters: about a minute
def test_trace_run_says_loading_then_running_on_a_terminal_only(llama_with_tokenizer, cold_env, cli_subprocess):
    code, out, shown = _with_stderr_on_a_terminal(("trace", llama_with_tokenizer, "--run", "the cat sat"), cold_env)
    assert code == 0, shown
    assert shown == NOTICES["load"] + CLEAR + NOTICES["run"] + CLEAR
    assert (NOTICES["load"], NOTICES["run"]) == (
        "loading the tokenizer and the weights with transformers ...",
        "running the weights on the text, on CPU ...",
    )
    piped = cli_subprocess("trace", llama_with_tokenizer, "--run", "the cat sat", env=cold_env)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, out, "")
