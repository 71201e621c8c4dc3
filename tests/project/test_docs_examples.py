"""Every example in README.md and docs/*.md runs with the package under test, and prints what
the page shows (tests/docs_examples.py finds them, builds the models they name and runs them;
tests/project/test_extras.py runs them again with each extra installed in a fresh venv)."""

import doctest
import os

import pytest

import docs_examples
from docs_examples import EXAMPLES, REAL_FILES, SESSIONS, WAIVED
from test_dequant import llama_fp8  # noqa: F401 (a fixture: the block-FP8 tiny Llama and its BF16 original)

# The examples' models are written with torch and transformers, and some examples build
# skeletons or run trace: minutes in all.
pytestmark = [pytest.mark.slow, pytest.mark.torch]


def test_the_pages_have_examples_and_every_waiver_names_one():
    commands = [command for _, _, command, _ in EXAMPLES]
    assert len(commands) >= 50 and sum(page == "README.md" for page, *_ in EXAMPLES) == 5
    assert sorted((set(WAIVED) | set(REAL_FILES) | docs_examples.WITHOUT_AN_EXTRA) - set(commands)) == []


def test_ellipsis_matching():
    matches = docs_examples.matches
    assert matches(["a", "...", "d"], "a\nb\nc\nd\n") and matches(["a", "...", "b"], "a\nb\n")
    assert not matches(["a", "...", "d"], "a\nb\nc\n") and not matches(["a"], "a\nb\n")
    assert not matches(["        ...,"], "x\n")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, llama_fp8):
    """The folder the examples run in, with every model they name, and a `llm-anatomy` on PATH
    that runs the package under test."""
    work = tmp_path_factory.mktemp("examples")
    docs_examples.build_models(work, tmp_path_factory, llama_fp8)
    return work, docs_examples.source_script(tmp_path_factory.mktemp("bin"))


@pytest.fixture(scope="module")
def shell(workdir, tmp_path_factory):
    work, bin_dir = workdir
    hub = docs_examples.start_hub(work, tmp_path_factory)
    yield docs_examples.Shell(work, bin_dir, tmp_path_factory.mktemp("cache"), hub.url)
    hub.close()


@pytest.mark.parametrize(
    ("page", "number", "command", "expected"),
    [
        pytest.param(
            *example, id=f"{example[0]}:{example[1]}", marks=[pytest.mark.real] if example[2] in REAL_FILES else []
        )
        for example in EXAMPLES
    ],
)
def test_command_example_prints_what_the_page_shows(page, number, command, expected, shell):
    import transformers

    reason = docs_examples.skip_reason(command, shell.folder)
    if reason:
        pytest.skip(reason)
    _, output = shell.run(command)
    expected = [docs_examples.versions(line, transformers.__version__) for line in expected]
    assert docs_examples.matches(expected, output), f"{page}:{number}: `{command}` printed:\n{output}"


def test_the_python_sessions_are_found():
    assert {page for page, _, _ in SESSIONS} >= {"README.md", os.path.join("docs", "python.md")}


@pytest.mark.parametrize(
    ("page", "number", "session"), SESSIONS, ids=[f"{page}:{number}" for page, number, _ in SESSIONS]
)
def test_python_session_runs_as_a_doctest(page, number, session, workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(docs_examples.session_folder(page, workdir[0], tmp_path))
    test = doctest.DocTestParser().get_doctest(session, {}, f"{page}:{number}", page, number)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0 and results.attempted == len(test.examples) > 0
