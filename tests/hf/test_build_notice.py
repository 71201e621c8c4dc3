"""While transformers builds a skeleton (seconds, the first time a config is seen) the CLI
says so on stderr when stderr is a terminal, and clears the line afterwards; never when
stderr is not a terminal, and never when the skeleton is cached."""

import sys

import pytest

import checkpoints
from llm_anatomy.core.notice import LISTENER
from llm_anatomy.cli.main import BUILD_NOTICE

CLEAR = "\r\x1b[K"


@pytest.fixture
def cold_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "cache"))
    assert LISTENER.get() is None  # main() sets it only while a command runs


def test_on_a_terminal_the_build_is_announced_once(llama_dir, cli, cold_cache, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert BUILD_NOTICE == "building the module tree with transformers, once per config ..."
    first = cli("tree", llama_dir)
    assert (first.code, first.err) == (0, BUILD_NOTICE + CLEAR)
    assert "\nLlamaForCausalLM " in first.out
    again = cli("config", llama_dir)
    assert (again.code, again.err) == (0, "")


def test_the_line_is_cleared_when_the_build_fails(llama_dir, tmp_path, cli, cold_cache, monkeypatch):
    folder = checkpoints.with_config(llama_dir, tmp_path / "bad", lambda c: c.update(hidden_size=30))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    result = cli("tree", folder)
    assert result.code == 0 and "note: no class names (transformers could not build the config: " in result.out
    assert result.err == BUILD_NOTICE + CLEAR


def test_the_hook_is_set_only_while_the_command_runs(llama_dir, cli, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli("params", llama_dir).code == 0
    assert LISTENER.get() is None  # a later command on a pipe stays silent


def test_not_a_terminal_no_notice(llama_dir, cli, cold_cache):
    result = cli("tree", llama_dir)
    assert (result.code, result.err) == (0, "")
    assert LISTENER.get() is None
