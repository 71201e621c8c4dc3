"""Header-only commands import neither numpy, torch nor transformers (nor typing, dataclasses
or pathlib, which cost milliseconds on every call): `params` always, `tree` and `config`
once the skeleton is cached. Each runs in a fresh interpreter that reports which of these
it ended up with."""

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("numpy", "torch", "transformers", "typing", "dataclasses", "pathlib")
REPORT = (
    "import json, sys\n"
    "from llm_anatomy.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]), file=sys.stderr)\n"
)


def _heavy_modules(*argv, env=None):
    """(exit status, heavy modules loaded, stdout) of one CLI call in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", REPORT, *map(str, argv)], capture_output=True, text=True, env=env)
    code, loaded = json.loads(result.stderr.splitlines()[-1])
    return code, loaded, result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("params",),
        ("params", "--json"),
        ("tree",),
        ("tree", "--style", "torch", "--node", "model.layers.0"),
        ("tree", "--json"),
        ("config",),
        ("config", "--json"),
    ],
)
def test_header_only_commands_stay_light(llama_dir, cli, argv):
    assert cli("tree", llama_dir).code == 0  # warms the skeleton cache (this one may import torch)
    code, loaded, out = _heavy_modules(argv[0], llama_dir, *argv[1:])
    assert (code, loaded) == (0, [])
    assert out == cli(argv[0], llama_dir, *argv[1:]).out


def test_cold_cache_does_import_transformers(llama_bf16_dir, tmp_path):
    """The check is real: building the skeleton is what pulls transformers in."""
    code, loaded, _ = _heavy_modules("tree", llama_bf16_dir, env=dict(os.environ, LLM_ANATOMY_CACHE=str(tmp_path / "cold")))
    assert code == 0 and "transformers" in loaded and "torch" in loaded
