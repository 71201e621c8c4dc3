"""The package as a user installs it: a wheel built from a copy of the sources (a build
writes build/ and *.egg-info beside them) with this interpreter's setuptools, installed
with one extra into a fresh virtual environment (no system site packages, no pip of its own:
this interpreter's pip installs into it), its dependencies at the releases of
constraints/test.txt. Used by tests/project/test_install.py (no extra) and tests/project/test_extras.py."""

import os
import shutil
import subprocess
import sys

from repo import ROOT

LOCK = os.path.join(ROOT, "constraints", "test.txt")


def run(*argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)


def build_wheel(base):
    """(the wheel's path, the build's verbose output)."""
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    shutil.copytree(
        os.path.join(ROOT, "src"), source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so")
    )
    build = run(
        sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", base / "dist", source
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (base / "dist").iterdir()
    return wheel, build.stdout + build.stderr


class NoVenv(Exception):
    """This Python cannot create a virtual environment (the message says why)."""


def fresh_venv(folder, wheel, extra=None):
    """The python of a new venv in `folder` holding the wheel with `extra` (None: the package
    alone). --no-compile: the runs compile what they import, not all of torch (about a minute
    of CPU)."""
    venv = run(sys.executable, "-m", "venv", "--without-pip", folder)
    if venv.returncode != 0:
        raise NoVenv(venv.stderr.strip())
    python = folder / "bin" / "python"
    install = run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--no-compile",
        "-c",
        LOCK,
        f"{wheel}[{extra}]" if extra else wheel,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python
