"""The Makefile's venv logic, run for real by make in a temporary folder (a copy of the
Makefile and pyproject.toml) with stand-in Pythons that log their arguments instead of
installing: what `make demo` and `make test` install, in which order, and how a half-made
venv is recovered from. Each make run takes milliseconds."""

import os
import shutil
import subprocess

import pytest

from repo import ROOT

# The venv's python: logs every call; `-m pip` fails as in a venv made without ensurepip
# when the venv holds a file named no-pip.
VENV_PYTHON = """#!/bin/sh
echo "python $*" >> "$MAKE_TEST_LOG"
if [ "$1 $2" = "-m pip" ] && [ -e "$(dirname "$0")/../no-pip" ]; then
  echo "$0: No module named pip" >&2; exit 1
fi
"""
TOOL = """#!/bin/sh
echo "llm-anatomy $*" >> "$MAKE_TEST_LOG"
"""
# The base Python: `-m venv DIR` makes a stand-in venv, or (with MAKE_TEST_NO_ENSUREPIP) leaves
# a half-made one and fails, as Debian's python3 does without python3-venv.
BASE_PYTHON = """#!/bin/sh
echo "base $*" >> "$MAKE_TEST_LOG"
mkdir -p "$3/bin" && touch "$3/pyvenv.cfg"
cp "$MAKE_TEST_STUBS/venv-python" "$3/bin/python" && cp "$MAKE_TEST_STUBS/llm-anatomy" "$3/bin/llm-anatomy"
if [ -n "$MAKE_TEST_NO_ENSUREPIP" ]; then
  touch "$3/no-pip"; echo "Error: ensurepip is not available" >&2; exit 1
fi
"""


@pytest.fixture
def project(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml", "constraints/test.txt"):
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), folder / name)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in (("venv-python", VENV_PYTHON), ("llm-anatomy", TOOL), ("python", BASE_PYTHON)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    return folder


def make(project, target, **env):
    """(exit status, stderr, the calls logged since the last run)."""
    log = project.parent / "calls.log"
    log.write_text("")
    full_env = dict(os.environ, MAKE_TEST_LOG=str(log), MAKE_TEST_STUBS=str(project.parent / "stubs"), **env)
    for inherited in (
        "MAKEFLAGS",
        "MAKEOVERRIDES",
        "MFLAGS",
        "MAKELEVEL",
        "VENV",
        "PYTEST_ARGS",
    ):  # when run under `make test`
        full_env.pop(inherited, None)
    base = project.parent / "stubs" / "python"
    result = subprocess.run(
        ["make", "-s", target, f"PYTHON={base}", "PYTEST_ARGS="],
        cwd=project,
        capture_output=True,
        text=True,
        env=full_env,
    )
    return result.returncode, result.stderr, log.read_text().splitlines()


FRESH_VENV = ["base -m venv .venv", "python -m pip install -q pip>=22.3"]
PIP_OK = "python -m pip --version"
TEST_INSTALL = "python -m pip install -q -c constraints/test.txt -e .[test]"  # the locked releases
RUN_TESTS = [
    "python -m ruff check -q src tests bench",
    "python -m ruff format -q --check src tests bench",
    "python -m pytest -q",
]  # lint first


def test_demo_installs_no_extra_then_test_adds_them_and_neither_repeats(project):
    assert make(project, "demo") == (0, "", [*FRESH_VENV, "python -m pip install -q -e .", "llm-anatomy demo"])
    assert make(project, "test") == (0, "", [PIP_OK, TEST_INSTALL, *RUN_TESTS])
    assert make(project, "demo") == (0, "", ["llm-anatomy demo"])
    assert make(project, "test") == (0, "", RUN_TESTS)


def test_after_test_demo_installs_nothing(project):
    assert make(project, "test")[2] == [*FRESH_VENV, TEST_INSTALL, *RUN_TESTS]
    assert make(project, "demo") == (0, "", ["llm-anatomy demo"])


def test_docs_installs_the_docs_extra_once_and_test_covers_it(project):
    assert make(project, "docs") == (
        0,
        "",
        [*FRESH_VENV, "python -m pip install -q -e .[docs]", "python -m mkdocs build --strict --site-dir site"],
    )
    assert make(project, "docs") == (0, "", ["python -m mkdocs build --strict --site-dir site"])
    assert make(project, "demo") == (0, "", ["llm-anatomy demo"])  # the docs install holds the package


def test_after_test_docs_installs_nothing(project):
    make(project, "test")
    assert make(project, "docs") == (0, "", ["python -m mkdocs build --strict --site-dir site"])


def test_a_changed_pyproject_reinstalls(project):
    make(project, "test")
    stamp = os.stat(project / ".venv" / ".installed-test").st_mtime
    os.utime(project / "pyproject.toml", (stamp + 10, stamp + 10))
    assert make(project, "demo")[2] == [PIP_OK, "python -m pip install -q -e .", "llm-anatomy demo"]
    assert make(project, "test")[2] == [PIP_OK, TEST_INSTALL, *RUN_TESTS]


def test_a_changed_lock_reinstalls_the_test_venv_only(project):
    make(project, "test")
    stamp = os.stat(project / ".venv" / ".installed-test").st_mtime
    os.utime(project / "constraints" / "test.txt", (stamp + 10, stamp + 10))
    assert make(project, "demo")[2] == ["llm-anatomy demo"]
    assert make(project, "test")[2] == [PIP_OK, TEST_INSTALL, *RUN_TESTS]


def test_a_venv_without_pip_is_made_again(project):
    (project / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(project.parent / "stubs" / "venv-python", project / ".venv" / "bin" / "python")
    (project / ".venv" / "pyvenv.cfg").touch()
    (project / ".venv" / "no-pip").touch()  # as a Python without ensurepip leaves it
    code, err, calls = make(project, "demo")
    assert (code, err) == (0, "make: .venv has no working pip (a half-made venv): making it again\n")
    assert calls == [PIP_OK, *FRESH_VENV, "python -m pip install -q -e .", "llm-anatomy demo"]
    assert not (project / ".venv" / "no-pip").exists()


def test_a_python_that_cannot_make_a_venv_is_named_and_nothing_is_left(project):
    code, err, calls = make(project, "test", MAKE_TEST_NO_ENSUREPIP="1")
    assert code != 0
    assert err.startswith(
        "Error: ensurepip is not available\n"
        f"make: '{project.parent}/stubs/python -m venv' could not make a venv with pip; on Debian or Ubuntu run "
        "'apt install python3-venv' (or pass PYTHON=another-python), then make again\n"
    )
    assert calls == ["base -m venv .venv"]
    assert not (project / ".venv").exists()


def test_a_folder_that_is_no_venv_is_left_alone(project):
    (project / ".venv").mkdir()
    (project / ".venv" / "notes.txt").write_text("mine")
    code, err, calls = make(project, "demo")
    assert code != 0 and err.startswith(
        "make: .venv is not a virtual environment; move it away or pass VENV=another-folder\n"
    )
    assert os.listdir(project / ".venv") == ["notes.txt"] and calls == []


def test_clean_removes_the_venv_and_build_leftovers(project):
    make(project, "demo")
    for leftover in ("build", "dist", "site", "llm_anatomy.egg-info", "src/llm_anatomy.egg-info"):
        (project / leftover).mkdir(parents=True)
    (project / "src" / "llm_anatomy" / "decode").mkdir(parents=True)
    (project / "src" / "llm_anatomy" / "decode" / "_codes.c").write_text("source")
    (project / "src" / "llm_anatomy" / "decode" / "_codes.cpython-311-x86_64-linux-gnu.so").write_text(
        "built in place by pip install -e"
    )
    assert make(project, "clean")[0] == 0
    assert sorted(os.listdir(project)) == ["Makefile", "constraints", "pyproject.toml", "src"]
    assert os.listdir(project / "src") == ["llm_anatomy"]
    assert os.listdir(project / "src" / "llm_anatomy") == ["decode"]
    assert os.listdir(project / "src" / "llm_anatomy" / "decode") == ["_codes.c"]
