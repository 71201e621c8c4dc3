"""The documentation is real: the docstrings' examples run as doctests on the checkpoint they
name, the API reference builds offline with every public name on its page, the tutorial
notebook runs and prints what transformers prints, and mypy accepts the public API."""

import doctest
import os
import subprocess
import sys

import pytest

import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_llama_folder(tmp_path_factory):
    """The docstrings' model: a tiny bfloat16 Llama in one file, seed 0, opened as "tiny-llama"."""
    parent = tmp_path_factory.mktemp("docs")
    checkpoints.tiny_llama(str(parent / "tiny-llama"), dtype="bfloat16", shard=None)
    return parent


def _docstring_tests():
    from llm_anatomy import api

    return [test for test in doctest.DocTestFinder().find(api, "llm_anatomy.api") if test.examples]


def test_the_public_api_has_examples():
    named = {test.name.removeprefix("llm_anatomy.api.") for test in _docstring_tests()}
    assert {"open", "diff", "Size", "Parameter", "Parameter.__getitem__", "Parameter.__str__", "Module", "Module.get_submodule", "Model.summary"} <= named


@pytest.mark.parametrize("test", _docstring_tests(), ids=lambda test: test.name.removeprefix("llm_anatomy.api."))
def test_docstring_examples(test, tiny_llama_folder, monkeypatch):
    import llm_anatomy as la

    monkeypatch.chdir(tiny_llama_folder)
    test.globs = {"la": la, "m": la.open("tiny-llama")}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_mypy_accepts_the_public_api_and_a_users_code():
    """[tool.mypy] in pyproject.toml: api.py fully annotated, tests/typed_usage.py type-checks against it."""
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found in 3 source files")
