"""Files swapped after the catalog was read (issue 14): what is opened later is held to the
same rules as what was opened first, so a fifo or a grown config found at that moment is
refused in one line instead of blocking or being read whole."""

import os
import shutil
import signal

import pytest

import llm_anatomy as la
from llm_anatomy.core.errors import AnatomyError


def _waited_too_long(signum, frame):
    raise TimeoutError("stats blocked on the fifo")


@pytest.fixture
def llama_copy(llama_dir, tmp_path):
    folder = tmp_path / "llama"
    shutil.copytree(llama_dir, folder)
    return folder


def test_stats_refuses_a_shard_swapped_for_a_fifo(llama_copy):
    model = la.open(str(llama_copy))
    shard = sorted(llama_copy.glob("*.safetensors"))[0]
    shard.unlink()
    os.mkfifo(shard)
    signal.signal(signal.SIGALRM, _waited_too_long)
    signal.alarm(120)  # opening a fifo without O_NONBLOCK waits for a writer forever
    try:
        report = model.stats()
    finally:
        signal.alarm(0)
    line = f"{shard}: expected a regular file, found a fifo; pass a model folder or a weights file"
    assert report.errors and all(message == line for _, message in report.errors)
    assert {name for name, _ in report.errors} == {t.name for t in model.catalog.tensors if t.file == str(shard)}


def test_tree_refuses_a_config_grown_past_the_cap(llama_copy):
    model = la.open(str(llama_copy))
    config = llama_copy / "config.json"
    with open(config, "r+b") as handle:
        handle.truncate(5 * 1024 * 1024)  # sparse: the cap is checked before reading
    with pytest.raises(AnatomyError) as caught:
        list(model.named_children())
    assert (
        str(caught.value)
        == f"{config}: expected a config file of at most 4194304 bytes, found 5242880 bytes; fix or re-download config.json"
    )
