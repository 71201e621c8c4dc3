"""A hostile or broken skeleton cache (issue 14): a cache folder that cannot be written, a
file where the folder should be, a HOME that is not writable, damaged or forged entries,
a FIFO or a device planted as an entry. The command still succeeds, with the same output,
and one escaped note on stderr; the cache never lands in the working (model) folder; and
what transformers says about a config it cannot build reaches the terminal as one escaped line."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import pytest

import checkpoints
from hostile import TERMINAL_UNSAFE, assert_refused, run_cli, snapshot

BUILD_SECONDS = 120  # these runs import torch and transformers on a shared, loaded machine


def _tree(model, **env):
    return run_cli("tree", model, "--depth", "2", env=env, timeout=BUILD_SECONDS)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return checkpoints.tiny_llama(str(tmp_path_factory.mktemp("cache_model")), shard=None)


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    outcome = _tree(model, LLM_ANATOMY_CACHE=str(tmp_path_factory.mktemp("cache_reference")))
    assert (outcome.code, outcome.err) == (0, "")
    return outcome.out


def _one_note(outcome, reference) -> str:
    assert outcome.code == 0, outcome.err[-2000:]
    assert outcome.out == reference
    lines = outcome.err.split("\n")
    assert len(lines) == 2 and lines[1] == "", outcome.err[-2000:]
    assert lines[0].startswith("llm-anatomy: note: ") and not TERMINAL_UNSAFE.search(lines[0])
    return lines[0]


def test_cache_is_a_file(model, reference, tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE=str(cache)), reference)
    assert (
        line
        == f"llm-anatomy: note: cannot write the skeleton cache in {cache}/skeletons (Not a directory); continuing without it"
    )
    assert cache.read_text() == "not a folder"


def test_a_linked_skeletons_folder_is_not_written_through(model, reference, tmp_path):
    """A shared cache whose skeletons/ folder is a link into a model folder: the skeleton is
    built and shown, nothing lands behind the link, and the note says why it is not kept."""
    cache, victim = tmp_path / "cache", tmp_path / "model-folder"
    cache.mkdir()
    shutil.copytree(model, victim)
    (cache / "skeletons").symlink_to(victim)
    before = snapshot(victim)
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE=str(cache)), reference)
    assert (
        line
        == f"llm-anatomy: note: cannot write the skeleton cache in {cache}/skeletons (a symbolic link); continuing without it"
    )
    assert snapshot(victim) == before


def test_cache_is_a_device(model, reference):
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE="/dev/null"), reference)
    assert (
        line
        == "llm-anatomy: note: cannot write the skeleton cache in /dev/null/skeletons (Not a directory); continuing without it"
    )


def test_xdg_cache_is_a_file(model, reference, tmp_path):
    (tmp_path / "xdg").write_text("")
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE="", XDG_CACHE_HOME=str(tmp_path / "xdg")), reference)
    assert (
        line
        == f"llm-anatomy: note: cannot write the skeleton cache in {tmp_path}/xdg/llm-anatomy/skeletons (Not a directory); continuing without it"
    )


def test_home_not_writable(model, reference):
    """/proc refuses new folders even to root, as a read-only HOME would."""
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE="", XDG_CACHE_HOME="", HOME="/proc/self/fdinfo"), reference)
    assert line.startswith(
        "llm-anatomy: note: cannot write the skeleton cache in /proc/self/fdinfo/.cache/llm-anatomy/skeletons ("
    )
    assert line.endswith("); continuing without it")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_cache_folder_read_only(model, reference, tmp_path):
    cache = tmp_path / "ro"
    cache.mkdir(mode=0o555)
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE=str(cache)), reference)
    assert (
        line
        == f"llm-anatomy: note: cannot write the skeleton cache in {cache}/skeletons (Permission denied); continuing without it"
    )


def test_relative_xdg_cache_is_ignored(model, reference, tmp_path):
    """XDG_CACHE_HOME=. run from the model folder would put the cache into it."""
    before = snapshot(model)
    sources = os.pathsep.join(
        os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
    )  # cwd changes
    env = {"LLM_ANATOMY_CACHE": "", "XDG_CACHE_HOME": ".", "HOME": str(tmp_path), "PYTHONPATH": sources}
    outcome = run_cli("tree", model, "--depth", "2", env=env, cwd=model, timeout=BUILD_SECONDS)
    assert (outcome.code, outcome.err, outcome.out) == (0, "", reference)
    assert snapshot(model) == before
    assert len(glob.glob(str(tmp_path / ".cache/llm-anatomy/skeletons/*.json"))) == 1


def _deep(path):
    path.write_text("[" * 100_000)


def _wrong_types(path):
    entry = json.loads(path.read_text())
    entry["parameters"][0]["shape"] = ["x"]
    path.write_text(json.dumps(entry))


def _huge_shape(path):
    entry = json.loads(path.read_text())
    entry["parameters"][0]["shape"] = [2**62] * 40
    path.write_text(json.dumps(entry))


def _sparse_gigabyte(path):
    with open(path, "r+b") as handle:
        handle.truncate(2**30)


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _zero_device(path):
    path.unlink()
    path.symlink_to("/dev/zero")


def _not_json(path):
    path.write_bytes(b"\xff\xfe garbage")


# damage -> the exception the entry is ignored for
DAMAGES = {
    "nested 100,000 deep": (_deep, "RecursionError"),
    "a shape of strings": (_wrong_types, "TypeError"),
    "a shape of rank 40": (_huge_shape, "ValueError"),
    "a sparse 1 GB file": (_sparse_gigabyte, "ValueError"),
    "a FIFO": (_fifo, "ValueError"),
    "a link to /dev/zero": (_zero_device, "ValueError"),
    "not JSON": (_not_json, "JSONDecodeError"),
}


@pytest.fixture(scope="module")
def good_cache(model, reference, tmp_path_factory):
    cache = tmp_path_factory.mktemp("good_cache")
    assert _tree(model, LLM_ANATOMY_CACHE=str(cache)).out == reference
    return cache


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_entry_is_rebuilt(model, reference, good_cache, tmp_path, damage):
    damage_entry, why = DAMAGES[damage]
    cache = tmp_path / "cache"
    shutil.copytree(good_cache, cache)
    [entry] = glob.glob(str(cache / "skeletons/*.json"))
    good = open(entry).read()
    damage_entry(Path(entry))
    line = _one_note(_tree(model, LLM_ANATOMY_CACHE=str(cache)), reference)
    assert line == f"llm-anatomy: note: ignoring the skeleton cache entry {entry} ({why}); building the skeleton again"
    assert os.path.isfile(entry) and not os.path.islink(entry) and open(entry).read() == good  # rewritten whole


EVIL = "\x1b[31mevil\nsecond line\u202e"


@pytest.fixture(scope="module")
def unbuildable(model, tmp_path_factory):
    """transformers refuses this config with a message quoting its model_type."""
    folder = tmp_path_factory.mktemp("unbuildable") / "model"
    return checkpoints.with_config(Path(model), folder, lambda config: config.update(model_type=EVIL))


def test_transformers_message_is_one_escaped_line(unbuildable, tmp_path):
    cache = str(tmp_path / "cache")
    line = f"llm-anatomy: {unbuildable}/config.json: expected a config transformers can build, found ValueError: The checkpoint you are trying to load has model type `\\x1b[31mevil; class names and parameter order fall back to tensor names"
    for _ in range(2):  # built, then read back from the cache
        assert_refused(
            run_cli("values", unbuildable, "--style", "torch", env={"LLM_ANATOMY_CACHE": cache}, timeout=BUILD_SECONDS),
            (1,),
            line,
        )
    outcome = run_cli("tree", unbuildable, env={"LLM_ANATOMY_CACHE": cache})
    assert outcome.code == 0 and not TERMINAL_UNSAFE.search(outcome.out.replace("\n", ""))
    assert (
        "note: no class names (transformers could not build the config: ValueError: The checkpoint you are trying to load has model type `\\x1b[31mevil); "
        in outcome.out
    )


def test_forged_unbuildable_entry_is_escaped(unbuildable, tmp_path):
    """A cached reason is a file's content like any other: escaped and cut when relayed."""
    cache = tmp_path / "cache"
    run_cli("tree", unbuildable, env={"LLM_ANATOMY_CACHE": str(cache)}, timeout=BUILD_SECONDS)
    [entry] = glob.glob(str(cache / "skeletons/*.json"))
    data = json.loads(open(entry).read())
    data["unbuildable"] = "\x1b]0;owned\x07\n" + "x" * 1000
    with open(entry, "w") as handle:
        json.dump(data, handle)
    found = ("\\x1b]0;owned\\x07\\x0a" + "x" * 1000)[:297] + "..."
    line = f"llm-anatomy: {unbuildable}/config.json: expected a config transformers can build, found {found}; class names and parameter order fall back to tensor names"
    assert_refused(
        run_cli("values", unbuildable, "--style", "torch", env={"LLM_ANATOMY_CACHE": str(cache)}), (1,), line
    )


def test_cache_files_are_never_written_through_a_link(tmp_path, monkeypatch):
    """cache_folder.write_file, which the skeleton, trace and Hub header caches write with: a
    link planted at its temporary name is refused, a link at the file's own name is replaced
    (the link, not what it points to), and nothing it points to is written."""
    from llm_anatomy.io.cache_dir import write_file

    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "cache"))
    victim = tmp_path / "weights.safetensors"
    victim.write_bytes(b"precious")
    entry = tmp_path / "cache" / "entry.json"
    entry.parent.mkdir()
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)  # every temporary name the same
    planted = tmp_path / "cache" / f".entry.json.{'00' * 6}.partial"
    planted.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_file(str(entry), b"{}")
    assert victim.read_bytes() == b"precious" and not entry.exists()
    planted.unlink()
    entry.symlink_to(victim)
    write_file(str(entry), b"{}")
    assert victim.read_bytes() == b"precious"
    assert not entry.is_symlink() and entry.read_bytes() == b"{}"
    assert sorted(p.name for p in entry.parent.iterdir()) == ["entry.json"]
