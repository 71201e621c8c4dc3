"""`demo`: the replica notice, then exactly what the four commands print on the replica;
the temporary folder is gone afterwards; --keep keeps a sparse replica."""

import json
import os
import shlex
import tempfile

from llm_anatomy.hf import skeleton
from llm_anatomy.cli import demo

NOTICE = (
    "A zero-weight layout replica of meta-llama/Llama-2-7b-chat-hf: the real tensor names, shapes,\n"
    "dtypes, two shards, index and config, but every weight is zero (sparse files, no disk\n"
    "used), so all values print as zeros.\n"
)
WHOLE = "(whole checkpoint: 291 tensors, 6,738,415,616 parameters, 12.55 GiB in 2 files)\n"


def _expected(cli, folder, fate):
    text = NOTICE + f"Replica: {folder} ({fate})\n"
    for command, extra in demo.VIEWS:
        text += f"\n$ llm-anatomy {command} {shlex.join(['Llama-2-7b-chat-hf', *extra])}\n"
        text += cli(command, folder, *extra).out
        if command == "params":
            text += WHOLE
    return text


def test_keep_shows_the_four_views_of_the_kept_replica(tmp_path, cli):
    folder = tmp_path / "replica"
    result = cli("demo", "--keep", folder)
    assert result.code == 0, result.err
    assert result.out == _expected(cli, folder, "kept")
    assert [c for c, _ in demo.VIEWS] == ["params", "values", "tree", "config"]
    assert "│   ├── layers: ModuleList  32 x LlamaDecoderLayer                -  6,476,267,520\n" in result.out
    assert "│   │   └── 0-31: LlamaDecoderLayer (each)                        -    202,383,360\n" in result.out
    assert "\nLlamaConfig {\n" in result.out and '  "num_hidden_layers": 32,\n' in result.out
    assert "\ntensor([0., 0., 0.,  ..., 0., 0., 0.], dtype=torch.float16)\n" in result.out
    assert len(result.out.splitlines()) <= 85
    names = sorted(os.listdir(folder))
    assert names == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    shard = os.stat(folder / names[1])
    assert shard.st_size == 9976570304 and shard.st_blocks * 512 < 1 << 20  # sparse


def _record_temp_folders(tmp_path, monkeypatch):
    """Make the demo's temporary folder under tmp_path and remember it."""
    made = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(prefix, **where):
        if where:  # --keep's staging folder, beside the folder kept
            return real_mkdtemp(prefix=prefix, **where)
        made.append(real_mkdtemp(prefix=prefix, dir=tmp_path))
        return made[-1]

    monkeypatch.setattr(demo.tempfile, "mkdtemp", mkdtemp)
    return made


def test_temporary_replica_is_deleted(tmp_path, cli, monkeypatch):
    made = _record_temp_folders(tmp_path, monkeypatch)
    result = cli("demo")
    assert result.code == 0, result.err
    replica = os.path.join(made[0], "Llama-2-7b-chat-hf")
    assert not os.path.exists(made[0])
    kept = tmp_path / "kept"
    # The same page as with --keep (checked view by view above), but for the folder and its fate.
    with_keep = cli("demo", "--keep", kept).out
    assert result.out == with_keep.replace(f"Replica: {kept} (kept)", f"Replica: {replica} (deleted afterwards)")
    assert result.out.startswith(
        NOTICE
        + f"Replica: {replica} (deleted afterwards)\n\n$ llm-anatomy params Llama-2-7b-chat-hf --filter 'model.layers.0.*'\n"
    )


def test_replica_deleted_even_when_a_view_fails(tmp_path, cli, monkeypatch):
    made = _record_temp_folders(tmp_path, monkeypatch)
    monkeypatch.setattr(demo, "VIEWS", (("tree", ("--node", "nope")),))
    result = cli("demo")
    assert result.code == 2
    assert not os.path.exists(made[0])


def test_keep_refuses_a_folder_with_files(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("demo", "--keep", tmp_path)
    assert result.code == 2
    assert (
        result.err
        == f"llm-anatomy: {tmp_path}: expected a new or empty folder for --keep, found an existing file or a folder with files in it; name a new folder\n"
    )
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_without_transformers_the_demo_is_the_same_page(tmp_path, cli, monkeypatch):
    """The shipped skeleton stands in for transformers (make demo installs no extra)."""
    built = cli("demo", "--keep", tmp_path / "built")
    installed = skeleton.installed_transformers_version()
    with open(skeleton.shipped_path("Llama-2-7b-chat-hf"), encoding="utf-8") as handle:
        shipped = skeleton.Skeleton.from_json(json.load(handle))
    monkeypatch.setattr(skeleton, "installed_transformers_version", lambda: None)
    result = cli("demo", "--keep", tmp_path / "bare")
    assert (result.code, result.err) == (0, "")
    assert result.out == built.out.replace(str(tmp_path / "built"), str(tmp_path / "bare")).replace(
        installed, shipped.transformers_version
    )
    assert "│   │   └── 0-31: LlamaDecoderLayer (each)                        -    202,383,360\n" in result.out
    assert "note:" not in result.out
