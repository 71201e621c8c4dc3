"""A plain install (no extra: no numpy, gguf, torch nor transformers) in a real virtual
environment: every command either works or says in one line which extra to install, and
never shows a traceback. Also what the build and `--version` say.

The wheel and the venv are tests/installs.py's (conftest's `installed(None)`): a few seconds,
and no network (the package alone has no dependencies)."""

import os
import subprocess
import sys

import pytest

import checkpoints

from repo import ROOT

EXTRA_MODULES = ("numpy", "gguf", "torch", "transformers", "safetensors")


def _run(*argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def bare(installed, wheel):
    """(the venv's python, the wheel build's verbose output): the session's venv without extras."""
    return installed(None), wheel[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny Llama folder and a GGUF of it with Q4_0 and Q8_0 tensors, written here (with the
    real writers) for the bare install to read."""
    folder = tmp_path_factory.mktemp("bare-models")
    llama = checkpoints.tiny_llama(str(folder / "llama"), shard=None)
    gguf_file = checkpoints.llama_gguf(llama, str(folder / "llama.gguf"))
    return llama, gguf_file


def anatomy(bare, *argv, cwd=None):
    python, _ = bare
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    return _run(python, "-m", "llm_anatomy.cli.main", *argv, cwd=cwd, env=env)


def test_the_venv_really_lacks_the_extras(bare):
    python, _ = bare
    probe = _run(python, "-c", f"import importlib.util as u; print([m for m in {EXTRA_MODULES!r} if u.find_spec(m)])")
    assert probe.stdout == "[]\n"


def test_build_prints_no_setuptools_deprecation(bare):
    _, build_output = bare
    assert "running bdist_wheel" in build_output  # the backend's own output is there to be checked
    assert "Warning" not in build_output and "deprecated" not in build_output


def test_the_wheel_carries_the_compiled_code_counter(bare):
    """setup.py builds stats' C counter (llm_anatomy.decode._codes) into the wheel; it needs no numpy."""
    from test_code_counts import has_c_compiler

    if not has_c_compiler():
        pytest.skip("no C compiler: the wheel is built without the optional extension")
    python, build_output = bare
    assert "building 'llm_anatomy.decode._codes' extension" in build_output
    env = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")
    }  # the wheel's, not a source tree's
    probe = _run(python, "-c", "import llm_anatomy.decode._codes as c; print(c.count.__doc__.split(':')[0])", env=env)
    assert (probe.stdout, probe.stderr) == ("count(data, counts)\n", "")


VERSION_IMPORTS = (
    "import sys\n"
    "from llm_anatomy.cli.main import main\n"
    "try:\n"
    "    main(['--version'])\n"
    "finally:\n"
    "    print(sorted(m for m in sys.modules if m.split('.')[0] in ('typing', 'dataclasses', 'pathlib') or m.startswith('llm_anatomy.cli.') and m not in ('llm_anatomy.cli.main', 'llm_anatomy.cli._args')))\n"
)


def test_version_is_the_installed_metadata(bare):
    python, _ = bare
    metadata = _run(python, "-c", "import importlib.metadata as m; print(m.version('llm-anatomy'))")
    result = anatomy(bare, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"llm-anatomy {metadata.stdout}", "")
    assert result.stdout == "llm-anatomy 0.1.0\n"
    # No command module is imported to print it (nor what they import).
    light = _run(sys.executable, "-c", VERSION_IMPORTS, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")))
    assert (light.returncode, light.stdout) == (0, "llm-anatomy 0.1.0\n[]\n")


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ("stats", "{llama}"),
            "stats: expected numpy to compute weight statistics, found numpy is not installed; pip install 'llm-anatomy[stats]'",
        ),
        (
            ("diff", "{llama}", "{gguf}"),
            "diff: expected numpy to compare tensor values, found numpy is not installed; pip install 'llm-anatomy[stats]'",
        ),
        (
            ("report", "{llama}", "--stats", "-o", "r.html"),
            "report --stats: expected numpy to compute weight statistics, found numpy is not installed; pip install 'llm-anatomy[stats]'",
        ),
        (
            ("values", "{gguf}", "blk.0.ffn_gate.weight"),
            "{gguf}: tensor blk.0.ffn_gate.weight: expected gguf and numpy to dequantize Q4_0 blocks, found gguf and numpy are not installed; pip install 'llm-anatomy[gguf]'",
        ),
        (
            ("values", "{gguf}", "--filter", "blk.0.attn_*"),
            "{gguf}: tensor blk.0.attn_k.weight: expected gguf and numpy to dequantize Q8_0 blocks, found gguf and numpy are not installed; pip install 'llm-anatomy[gguf]'",
        ),
        # Exit 1 as every missing extra (they were usage errors, exit 2).
        (
            ("tree", "{llama}", "--style", "torch"),
            "tree --style torch: expected transformers and torch for class names, found transformers and torch are not installed; pip install 'llm-anatomy[transformers]'",
        ),
        (
            ("trace", "{llama}"),
            "trace: expected transformers and torch for the forward pass, found transformers and torch are not installed; pip install 'llm-anatomy[transformers]'",
        ),
        (
            ("trace", "{llama}", "--run", "Hello"),
            "trace --run: expected transformers and torch to run the model, found transformers and torch are not installed; pip install 'llm-anatomy[transformers]'",
        ),
        # A GGUF needs [all]: said at once, not after [transformers] is installed.
        (
            ("trace", "{gguf}", "--run", "Hello"),
            "trace --run: expected transformers and torch and accelerate and gguf and numpy to load a GGUF's weights with transformers, found transformers and torch and accelerate and gguf and numpy are not installed; pip install 'llm-anatomy[all]'",
        ),
    ],
)
def test_what_needs_an_extra_names_it_in_one_line(bare, models, tmp_path, argv, line):
    llama, gguf_file = models
    result = anatomy(bare, *(a.format(llama=llama, gguf=gguf_file) for a in argv), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"llm-anatomy: {line.format(gguf=gguf_file)}\n")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ("params", "{llama}"),
        ("params", "{gguf}", "--hf-names"),
        ("values", "{llama}", "model.norm.weight"),
        ("values", "{gguf}", "token_embd.weight"),
        ("tree", "{llama}"),
        ("config", "{gguf}"),
        ("summary", "{llama}"),
        ("report", "{llama}", "-o", "{tmp}/r.html"),
    ],
)
def test_the_rest_works_without_extras(bare, models, tmp_path, argv):
    llama, gguf_file = models
    result = anatomy(bare, *(a.format(llama=llama, gguf=gguf_file, tmp=tmp_path) for a in argv))
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout


def test_demo_shows_class_names_without_transformers(bare):
    result = anatomy(bare, "demo")
    assert (result.returncode, result.stderr) == (0, "")
    assert "│   │   └── 0-31: LlamaDecoderLayer (each)                        -    202,383,360\n" in result.stdout
    assert "\nLlamaConfig {\n" in result.stdout and "note:" not in result.stdout
