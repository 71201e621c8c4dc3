"""Header-only commands import neither numpy, torch nor transformers (nor typing, dataclasses
or pathlib, which cost milliseconds on every call): `params` always, `tree` and `config`
once the skeleton is cached. Each runs in a fresh interpreter that reports which of these
it ended up with."""

import os

import pytest

from conftest import imported_by


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
    code, loaded, out = imported_by(argv[0], llama_dir, *argv[1:])
    assert (code, loaded) == (0, [])
    assert out == cli(argv[0], llama_dir, *argv[1:]).out


@pytest.mark.slow  # a fresh interpreter imports torch and transformers to build the skeleton (~13 s)
def test_cold_cache_does_import_transformers(llama_bf16_dir, tmp_path):
    """The check is real: building the skeleton is what pulls transformers in."""
    code, loaded, _ = imported_by(
        "tree", llama_bf16_dir, env=dict(os.environ, LLM_ANATOMY_CACHE=str(tmp_path / "cold"))
    )
    assert code == 0 and "transformers" in loaded and "torch" in loaded


def test_the_error_kinds_come_without_the_api():
    """`except llm_anatomy.GatedRepo:` costs what `import llm_anatomy` costs: the error kinds
    come from llm_anatomy.core.errors, the API is not imported for them."""
    import subprocess
    import sys

    names = (
        "AnatomyError",
        "UsageError",
        "CorruptFile",
        "MissingExtra",
        "HubError",
        "RepoNotFound",
        "GatedRepo",
        "RevisionNotFound",
    )
    script = f"import sys, llm_anatomy\nkinds = [getattr(llm_anatomy, n) for n in {names!r}]\nprint([k.__module__ for k in kinds], 'llm_anatomy.api' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == f"{['llm_anatomy.core.errors'] * len(names)} False\n"
