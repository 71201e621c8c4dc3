"""What the install table claims (docs/install.md, copied in README.md's "## Install"): each
extra, installed into a fresh venv (tests/installs.py), runs every example of the pages that
its row and the rows it covers claim, printing what the page shows (tests/docs_examples.py's
examples, models and comparison), and each other example stops with the one line that names
the extra to install, exit 1 (issue 22, item 9).

The table is the only statement of who needs what: an example needs the extra of the most
specific command its row names in backquotes (`report --stats` beats `report`, `trace --run`
beats `trace`); an extra covers a row when it adds all that row adds ([gguf] adds numpy, so
it runs [stats]' examples too). Where the table says more than its backquotes, it is data
here: the shipped replica needs no transformers for class names (CLASS_NAMES), a few examples
need more than their command's row for what they read (BY_WHAT_THEY_READ), transformers
brings numpy (BROUGHT)."""

import os
import re
import shlex
import subprocess

import pytest

import docs_examples
from docs_examples import EXAMPLES, ROOT, SESSIONS
from test_dequant import llama_fp8  # noqa: F401 (a fixture: the block-FP8 tiny Llama and its BF16 original)

# Each extra is a fresh venv: torch and transformers alone are about 75 s to install here.
pytestmark = [pytest.mark.slow, pytest.mark.torch]

INSTALL_PAGES = ("README.md", os.path.join("docs", "install.md"))
PLAIN = "plain"  # the row of `pip install .`
EXTRAS = (PLAIN, "stats", "gguf", "transformers", "all")
ROW = re.compile(r"^\| `pip install (?:\.|'\.\[(\w+)\]')` \| ([^|]*) \| ([^|]*) \|$", re.M)
# The Python sessions name no command: what they need, from the row that adds it. Both read
# values (numpy: an array); docs/python.md's shows a tiny Llama's class names too.
SESSION_NEEDS = {"README.md": "stats", os.path.join("docs", "python.md"): "transformers"}


def _table(page):
    """extra -> (what it adds, the commands it claims) in the page's install table."""
    from llm_anatomy.cli.main import COMMANDS

    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        rows = {extra or PLAIN: (adds, claims) for extra, adds, claims in ROW.findall(handle.read())}
    table = {}
    for extra in EXTRAS:
        adds, claims = rows[extra]
        added = set(re.findall(r"[a-z][a-z_-]*", adds.replace("all three", ""))) - {"and", "nothing"}
        if adds.startswith("all three"):
            added |= set().union(*(table[other][0] for other in ("stats", "gguf", "transformers")))
        commands = [
            claim
            for claim in re.findall(r"`([^`]+)`", claims)
            if claim.split()[0] in COMMANDS or claim.startswith("--")
        ]
        table[extra] = (added, commands)
    return table


TABLE = _table(INSTALL_PAGES[1])
# What an extra brings that its row does not name: transformers requires numpy.
BROUGHT = {"transformers": {"numpy"}}


def _holds(extra):
    return TABLE[extra][0] | BROUGHT.get(extra, set())


def test_both_tables_claim_the_same():
    assert _table(INSTALL_PAGES[0]) == TABLE
    assert TABLE["transformers"] == ({"transformers", "torch"}, ["--style torch", "trace", "report --trace"])
    assert TABLE["all"][0] == {"numpy", "gguf", "transformers", "torch", "accelerate"}


def _arguments(command):
    """The words after `llm-anatomy` in an example's shell line, up to a pipe or a comment."""
    words = shlex.split(command, comments=True)
    words = words[words.index("llm-anatomy") + 1 :]
    return words[: words.index("|")] if "|" in words else words


def _score(claim, arguments):
    """How many words of the claim the arguments match (0: none): a command first, then
    options in a row (`trace --run`, `--style torch`)."""
    words = claim.split()
    if not words[0].startswith("--"):
        if arguments[:1] != words[:1]:
            return 0
        words, arguments = words[1:], arguments[1:]
    found = any(arguments[start : start + len(words)] == words for start in range(len(arguments) - len(words) + 1))
    return 1 + len(words) if found else 0


# The plain row's "(the demo replica's as transformers builds it: that skeleton ships with the
# package)": on the shipped replica, class names and `--style torch` need no transformers.
CLASS_NAMES = "--style torch"
# Examples that need more than their command's row, for what they read: transformers' view
# of a model other than the shipped replica (the transformers row's "class names, parameter
# order and print(model.config) for any config"), GGUF block quants (the gguf row's). Without
# that extra they run, but do not print what the page shows.
BY_WHAT_THEY_READ = {
    "llm-anatomy tree broken-llama": (
        "transformers",
        "the refusal to build a config with a NaN field (without transformers tree shows the tensor names' tree, building nothing)",
    ),
    "llm-anatomy summary ggml-vocab-llama-bpe.gguf | head -1": (
        "transformers",
        "the parameters a vocab-only GGUF implies, counted on the model built from its metadata",
    ),
    "llm-anatomy summary bert-base-uncased | tail -1": (
        "transformers",
        "a config alone: its parameters counted on the model transformers builds",
    ),
    "llm-anatomy tree tiny-lora --node model.layers.1.self_attn": (
        "transformers",
        "the class names of the adapter's base, tiny-llama",
    ),
    "llm-anatomy diff tiny-llama tiny-llama.gguf --top 3 | tail -7     # the GGUF converted from it, partly quantized": (
        "gguf",
        "the GGUF's Q4_0 and Q8_0 tensors",
    ),
    "llm-anatomy verify tiny-llama tiny-llama.gguf | tail -9     # the GGUF converted from it: F16, BF16, Q8_0 and Q4_0 tensors": (
        "gguf",
        "the GGUF's Q4_0 and Q8_0 tensors",
    ),
    "llm-anatomy report tiny-llama -o tiny.html --compare tiny-llama.gguf     # the GGUF converted from it: F16, BF16, Q8_0 and Q4_0 tensors": (
        "gguf",
        "the GGUF's Q4_0 and Q8_0 tensors",
    ),
}


def needs(command):
    """The extra whose row's command matches the example most specifically; of two rows that
    name it (`values`: GGUF block quants apart), the one that adds least."""
    from llm_anatomy.hf.skeleton import SHIPPED

    if command in BY_WHAT_THEY_READ:
        return BY_WHAT_THEY_READ[command][0]
    arguments = _arguments(command)
    score, _, extra, claim = max(
        (_score(claim, arguments), -len(adds), extra, claim)
        for extra, (adds, claims) in TABLE.items()
        for claim in claims
    )
    assert score, f"no row of the install table claims `{command}`"
    model = next((word for word in arguments[1:] if not word.startswith("-")), "")
    return PLAIN if claim == CLASS_NAMES and os.path.basename(model) in SHIPPED else extra


def covers(extra, needed):
    """An install runs the examples of every row whose additions it holds."""
    return TABLE[needed][0] <= _holds(extra)


def test_needs_reads_the_table():
    lines = (
        "params x",
        "report x -o r.html",
        "report x --stats -o r.html",
        "trace x --run 'a b'",
        "tree x --style torch | head -3",
        "diff a b # c",
    )
    assert [needs(f"LANG=C llm-anatomy {line}") for line in lines] == [
        PLAIN,
        PLAIN,
        "stats",
        "all",
        "transformers",
        "stats",
    ]
    assert needs("llm-anatomy values tiny-llama 'lm_head.weight[0, :8]'") == PLAIN
    assert (
        needs("llm-anatomy tree tiny-llama --style torch") == "transformers"
        and needs("llm-anatomy tree Llama-2-7b-chat-hf --style torch") == PLAIN
    )
    assert sorted(set(BY_WHAT_THEY_READ) - {command for _, _, command, _ in EXAMPLES}) == []
    assert covers("gguf", "stats") and covers("all", "transformers") and covers("stats", PLAIN)
    assert (
        not covers("stats", "gguf")
        and not covers("transformers", "gguf")
        and not covers(PLAIN, "stats")
        and covers("transformers", "stats")
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory, llama_fp8):
    folder = tmp_path_factory.mktemp("examples")
    docs_examples.build_models(folder, tmp_path_factory, llama_fp8)
    hub = docs_examples.start_hub(folder, tmp_path_factory)
    yield folder, hub
    hub.close()


@pytest.fixture(scope="module", params=EXTRAS)
def venv(request, installed, work, tmp_path_factory):
    """(the extra, its venv's python, a Shell whose `llm-anatomy` is the venv's)."""
    python = installed(None if request.param == PLAIN else request.param)
    shell = docs_examples.Shell(work[0], python.parent, tmp_path_factory.mktemp("cache"), work[1].url)
    # The venv is installed without bytecode: its runs write what they import, as a user's do.
    shell.env.pop("PYTHONDONTWRITEBYTECODE", None)
    return request.param, python, shell


def test_the_venv_holds_what_its_row_adds(venv):
    """The extra's additions are installed, the others' are not (no system site packages)."""
    extra, python, _ = venv
    everything = TABLE["all"][0]
    probe = subprocess.run(
        [
            python,
            "-c",
            f"import importlib.util as u; print(sorted(m for m in {sorted(everything)!r} if u.find_spec(m)))",
        ],
        capture_output=True,
        text=True,
        env={},
    )
    assert probe.stdout == f"{sorted(_holds(extra))}\n", probe.stderr


def _installed_transformers(python):
    probe = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('transformers'))"],
        capture_output=True,
        text=True,
        env={},
    )
    return probe.stdout.strip()


@pytest.mark.parametrize(
    ("page", "number", "command", "expected"), EXAMPLES, ids=[f"{page}:{number}" for page, number, *_ in EXAMPLES]
)
def test_example_runs_or_names_the_extra(page, number, command, expected, venv):
    extra, python, shell = venv
    needed = needs(command)
    if command in docs_examples.WITHOUT_AN_EXTRA:
        if covers(extra, needed):
            pytest.skip(f"shows the message of an install without [{needed}]")
    else:
        reason = docs_examples.skip_reason(command, shell.folder)
        if reason:
            pytest.skip(reason)
    status, output = shell.run(command)
    if command in docs_examples.WITHOUT_AN_EXTRA:
        assert (status, output) == (1, "".join(line + "\n" for line in expected)), (
            f"[{extra}] {page}:{number}: `{command}` exited {status}:\n{output}"
        )
    elif covers(extra, needed):
        expected = [docs_examples.versions(line, _installed_transformers(python) or "0") for line in expected]
        assert docs_examples.matches(expected, output), (
            f"[{extra}] {page}:{number}: `{command}` (needs [{needed}]) printed:\n{output}"
        )
    elif command in BY_WHAT_THEY_READ:
        assert not docs_examples.matches(expected, output), (
            f"[{extra}] {page}:{number}: `{command}` printed what the page shows without [{needed}]:\n{output}"
        )
    else:
        assert status == 1 and re.fullmatch(rf"llm-anatomy: [^\n]*; pip install 'llm-anatomy\[{needed}\]'\n", output), (
            f"[{extra}] {page}:{number}: `{command}` (needs [{needed}]) exited {status}:\n{output}"
        )


SESSION_RUNNER = """\
import doctest, sys
test = doctest.DocTestParser().get_doctest(sys.stdin.read(), {}, sys.argv[1], sys.argv[1], 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
runner.run(test)
results = runner.summarize(verbose=False)
sys.exit(results.failed != 0 or results.attempted != len(test.examples))
"""


@pytest.mark.parametrize(
    ("page", "number", "session"), SESSIONS, ids=[f"{page}:{number}" for page, number, _ in SESSIONS]
)
def test_python_session_runs_or_names_the_extra(page, number, session, venv, work, tmp_path):
    extra, python, shell = venv
    folder = docs_examples.session_folder(page, work[0], tmp_path)
    result = subprocess.run(
        [python, "-c", SESSION_RUNNER, f"{page}:{number}"],
        input=session,
        cwd=folder,
        env=shell.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if covers(extra, SESSION_NEEDS[page]):
        assert result.returncode == 0, f"[{extra}] {page}:{number}:\n{result.stdout}{result.stderr}"
    else:
        assert result.returncode == 1, f"[{extra}] {page}:{number}:\n{result.stdout}{result.stderr}"
        if not covers(extra, "stats"):  # reading values without numpy: the one-line error, raised
            assert (
                "llm_anatomy.core.errors.MissingExtra: " in result.stdout
                and "pip install 'llm-anatomy[stats]'" in result.stdout
            ), result.stdout
