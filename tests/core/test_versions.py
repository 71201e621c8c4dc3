"""The suite passes on a fresh machine: no test names a dependency's release. A fresh install
resolves the newest release the extras allow, so an expected string that spells one release
out fails there as soon as a newer one is published; tests build it from the installed version instead
(checkpoints.TRANSFORMERS_VERSION)."""

import re
from pathlib import Path

import checkpoints
import repo

TESTS = Path(repo.TESTS)
DEPENDENCIES = (
    "transformers",
    "torch",
    "numpy",
    "safetensors",
    "gguf",
    "huggingface_hub",
    "tokenizers",
    "accelerate",
    "mlx",
    "bitsandbytes",
    "compressed-tensors",
)
RELEASE = re.compile(rf"\b({'|'.join(map(re.escape, DEPENDENCIES))})[ =v-]+[0-9]+\.[0-9]+\.[0-9]+")


def hard_coded_releases(text: str) -> list[str]:
    return [match.group(0) for match in RELEASE.finditer(text)]


def test_no_test_hard_codes_a_release_of_a_dependency():
    found = {path.name: hard_coded_releases(path.read_text(encoding="utf-8")) for path in sorted(TESTS.rglob("*.py"))}
    assert {name: releases for name, releases in found.items() if releases} == {}


def test_the_check_sees_the_spellings_tests_used():
    # Spelled in pieces, or this file would hold what it forbids.
    sample = '"(meta device, transformers {0})", torch=={1} numpy v{2}'.format("5.24.0", "2.13.0", "2.4.6")
    assert hard_coded_releases(sample) == ["transformers " + "5.24.0", "torch==" + "2.13.0", "numpy v" + "2.4.6"]
    assert (
        hard_coded_releases(f"transformers {checkpoints.TRANSFORMERS_VERSION}") != []
    )  # what a built string looks like once formatted
    assert hard_coded_releases("transformers {checkpoints.TRANSFORMERS_VERSION}; torch>=2") == []


def test_the_built_version_is_the_installed_one():
    import transformers

    assert checkpoints.TRANSFORMERS_VERSION == transformers.__version__
