"""Hostile output paths (issue 14): `report -o` and `demo --keep` never write into a model
folder, onto a file of the model (however linked), through a link, or over a file that is
not ours; failures are one line, and the model folder and the hub cache stay as they were."""

import errno
import hashlib
import os
import shutil

import pytest

import checkpoints
from hostile import assert_refused, run_cli, snapshot
from llm_anatomy.io import files

INSIDE = "expected an output path outside the model folder, found {found}; pass -o with another folder; llm-anatomy never writes into a model folder"
COMMIT = "0123abcd" * 5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A sharded model folder with a subfolder, and a hub cache holding the same model as
    snapshot links to blobs: (folder, cache, snapshot folder, blob of the first shard)."""
    root = tmp_path_factory.mktemp("hostile-out")
    folder = root / "model"
    checkpoints.tiny_llama(str(folder))
    (folder / "original").mkdir()
    cache = root / "hub"
    repo = cache / "models--acme--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    for name in sorted(os.listdir(folder)):
        if (folder / name).is_file():
            data = (folder / name).read_bytes()
            blob = hashlib.sha256(data).hexdigest()
            (repo / "blobs" / blob).write_bytes(data)
            os.symlink(f"../../blobs/{blob}", snap / name)
    shard = sorted(n for n in os.listdir(snap) if n.endswith(".safetensors"))[0]
    return folder, cache, snap, os.path.realpath(snap / shard)


def _shard(folder):
    return folder / sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))[0]


def _refused(model, out_dir, output, message, code=2, by_id=False):
    """report -o OUTPUT is refused with exactly `message`; model folder, cache and output
    folder are left exactly as they were."""
    folder, cache, _, _ = model
    before = snapshot(folder, cache, out_dir)
    target = "acme/tiny" if by_id else folder
    outcome = run_cli("report", target, "-o", output, env={"HF_HUB_CACHE": str(cache)})
    assert_refused(outcome, codes=(code,), message=f"llm-anatomy: {output}: {message}")
    assert outcome.out == ""
    assert snapshot(folder, cache, out_dir) == before


def test_symlink_onto_a_weights_file(model, tmp_path):
    folder = model[0]
    os.symlink(_shard(folder), tmp_path / "out.html")
    _refused(model, tmp_path, tmp_path / "out.html", INSIDE.format(found=f"a path inside {folder}"))


def test_symlink_onto_a_folder_inside_the_model(model, tmp_path):
    folder = model[0]
    os.symlink(folder / "original", tmp_path / "sub")
    _refused(model, tmp_path, tmp_path / "sub" / "report.html", INSIDE.format(found=f"a path inside {folder}"))


def test_path_through_a_symlinked_folder_into_the_model(model, tmp_path):
    folder = model[0]
    os.symlink(folder, tmp_path / "models")
    os.symlink(tmp_path, tmp_path / "again")
    output = tmp_path / "again" / "models" / _shard(folder).name
    _refused(model, tmp_path, output, INSIDE.format(found=f"a path inside {folder}"))


def test_hub_cache_blob_named_directly(model, tmp_path):
    _, cache, _, blob = model
    repo = cache / "models--acme--tiny"
    _refused(model, tmp_path, blob, INSIDE.format(found=f"a path inside {repo}"), by_id=True)
    _refused(model, tmp_path, repo / "blobs" / "new.html", INSIDE.format(found=f"a path inside {repo}"), by_id=True)


def test_hub_cache_blob_through_the_snapshot_link(model, tmp_path):
    _, cache, snap, blob = model
    repo = cache / "models--acme--tiny"
    link = snap / os.path.basename(_shard(model[0]))
    _refused(model, tmp_path, link, INSIDE.format(found=f"a path inside {repo}"), by_id=True)
    os.symlink(link, tmp_path / "out.html")  # a link to the link to the blob
    _refused(model, tmp_path, tmp_path / "out.html", INSIDE.format(found=f"a path inside {repo}"), by_id=True)


def test_hard_link_to_a_weights_file(model, tmp_path):
    folder, _, snap, blob = model
    shard = _shard(folder)
    os.link(shard, tmp_path / "out.html")
    _refused(model, tmp_path, tmp_path / "out.html", INSIDE.format(found=f"the weights file {shard}"))
    os.link(blob, tmp_path / "blob.html")  # the blob behind the snapshot's link
    _refused(
        model,
        tmp_path,
        tmp_path / "blob.html",
        INSIDE.format(found=f"the weights file {snap / shard.name}"),
        by_id=True,
    )


def test_hard_link_to_the_index_beside_a_model_file(model, tmp_path):
    folder = model[0]
    os.link(folder / "model.safetensors.index.json", tmp_path / "out.html")
    _refused(
        model,
        tmp_path,
        tmp_path / "out.html",
        INSIDE.format(found=f"the model file {folder / 'model.safetensors.index.json'}"),
    )


def test_fifo_is_refused_without_waiting(model, tmp_path):
    os.mkfifo(tmp_path / "out.html")
    _refused(
        model,
        tmp_path,
        tmp_path / "out.html",
        "expected a file name for the report, found a fifo; pass -o with another path",
    )


def test_folder_is_refused(model, tmp_path):
    (tmp_path / "pages").mkdir()
    _refused(
        model,
        tmp_path,
        tmp_path / "pages",
        "expected a file name for the report, found a folder; pass -o FOLDER/report.html",
    )


def test_unrelated_file_is_left_alone(model, tmp_path):
    (tmp_path / "notes.html").write_text("<!DOCTYPE html>\n<html><head><title>mine</title></head></html>\n")
    _refused(
        model,
        tmp_path,
        tmp_path / "notes.html",
        "expected a new file or a previous llm-anatomy report, found a file llm-anatomy did not write; remove it or pass -o with another path",
    )
    assert (tmp_path / "notes.html").read_text().endswith("<title>mine</title></head></html>\n")


def test_dangling_symlink_is_refused(model, tmp_path):
    os.symlink(tmp_path / "nowhere" / "x.html", tmp_path / "out.html")
    _refused(
        model,
        tmp_path,
        tmp_path / "out.html",
        "expected a file name for the report, found a symbolic link that leads nowhere; remove the link or pass -o with another path",
    )


def test_missing_output_folder(model, tmp_path):
    output = tmp_path / "nope" / "report.html"
    _refused(
        model,
        tmp_path,
        output,
        f"expected an existing folder for the report, found no folder {tmp_path / 'nope'}; create it or pass -o with another path",
        code=1,
    )


def test_previous_report_is_replaced_and_planted_partials_are_not_followed(model, tmp_path):
    folder, cache, _, _ = model
    shard = _shard(folder)
    out_dir = tmp_path / "pages"
    out_dir.mkdir()
    output = out_dir / "report.html"
    first = run_cli("report", folder, "-o", output)
    assert (first.code, first.err) == (0, "")
    old = os.stat(output)
    # Links where a careless writer would put its temporary file: neither may be followed.
    os.symlink(shard, out_dir / "report.html.partial")
    os.symlink(shard, out_dir / ".report.html.partial")
    before = snapshot(folder, cache)
    again = run_cli("report", folder, "-o", output)
    assert (again.code, again.err) == (0, "")
    assert again.out.startswith(f"wrote {output} (")
    assert os.stat(output).st_ino != old.st_ino  # a new file renamed over the old one
    assert sorted(os.listdir(out_dir)) == [".report.html.partial", "report.html", "report.html.partial"]
    assert os.readlink(out_dir / "report.html.partial") == str(shard)
    assert snapshot(folder, cache) == before
    assert (
        (out_dir / "report.html")
        .read_text(encoding="utf-8")
        .startswith(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="llm-anatomy">'
        )
    )


def test_a_symlink_to_a_previous_report_replaces_the_report(model, tmp_path):
    folder = model[0]
    output = tmp_path / "report.html"
    assert run_cli("report", folder, "-o", output).code == 0
    os.symlink(output, tmp_path / "latest.html")
    again = run_cli("report", folder, "-o", tmp_path / "latest.html")
    assert (again.code, again.err) == (0, "")
    assert os.path.islink(tmp_path / "latest.html")  # the link still leads to the new page
    assert sorted(os.listdir(tmp_path)) == ["latest.html", "report.html"]


@pytest.mark.parametrize("failure", [errno.ENOSPC, errno.EACCES])
def test_a_failing_file_system_is_one_line_and_leaves_nothing(model, tmp_path, cli, monkeypatch, failure):
    """A full disk shows at the latest on fsync (delayed allocation); permissions can't be
    tested for real as root, so both are injected where the writer meets them."""

    def fail(fd):
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(files.os, "fsync", fail)
    result = cli("report", model[0], "-o", tmp_path / "r.html")
    todo = {
        errno.ENOSPC: "free some space or pass -o with another folder",
        errno.EACCES: "pass -o with a folder you can write to",
    }[failure]
    name = errno.errorcode[failure]
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {tmp_path / 'r.html'}: expected to write the report, found {os.strerror(failure).lower()} ({name}); {todo}\n"
    )
    assert os.listdir(tmp_path) == []


def test_demo_keep_refuses_links(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    os.symlink(empty, tmp_path / "link")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    (tmp_path / "planted").mkdir()
    os.symlink(empty / "x", tmp_path / "planted" / "config.json")
    before = snapshot(tmp_path)
    for name, found in (
        ("link", "a symbolic link"),
        ("dangling", "a symbolic link"),
        ("planted", "an existing file or a folder with files in it"),
    ):
        outcome = run_cli("demo", "--keep", tmp_path / name)
        assert_refused(
            outcome,
            codes=(2,),
            message=f"llm-anatomy: {tmp_path / name}: expected a new or empty folder for --keep, found {found}; name a new folder",
        )
    assert snapshot(tmp_path) == before


def test_demo_keep_fills_an_empty_folder_and_leaves_no_staging(tmp_path, cli):
    (tmp_path / "replica").mkdir()
    result = cli("demo", "--keep", tmp_path / "replica")
    assert result.code == 0, result.err
    assert os.listdir(tmp_path) == ["replica"]
    assert sorted(os.listdir(tmp_path / "replica"))[0] == "config.json"
    shutil.rmtree(tmp_path / "replica")


FULL = "llm-anatomy: stdout: expected to write the output, found no space left on device (ENOSPC); free some space or send the output elsewhere"


@pytest.mark.parametrize(
    "args",
    [
        ("params", "MODEL"),
        ("params", "MODEL", "--json"),
        ("values", "MODEL", "--style", "torch"),
        ("tree", "MODEL"),
        ("config", "MODEL", "--explain"),
        ("summary", "MODEL", "--json"),
        ("stats", "MODEL", "--csv"),
        ("report", "MODEL", "-o", "OUT"),
        ("--help",),
    ],
)
def test_dev_full_as_stdout(model, tmp_path, cli, args):
    """Output that cannot be written (here /dev/full) is one line and exit 1, however much
    was buffered: a stream of values fails mid-way, a short table only at the final flush."""
    cli("tree", model[0])  # the skeleton cached here: the subprocess need not import transformers
    args = [model[0] if a == "MODEL" else tmp_path / "r.html" if a == "OUT" else a for a in args]
    outcome = run_cli(*args, stdout_path="/dev/full")
    assert_refused(outcome, codes=(1,), message=FULL)


def test_a_single_file_of_a_hub_snapshot_guards_its_repository(model, tmp_path):
    _, cache, snap, _ = model
    repo = cache / "models--acme--tiny"
    shard = snap / os.path.basename(_shard(model[0]))
    before = snapshot(model[0], cache, tmp_path)
    for output in (snap / "report.html", repo / "blobs" / "report.html"):
        outcome = run_cli("report", shard, "-o", output)
        assert_refused(
            outcome, codes=(2,), message=f"llm-anatomy: {output}: " + INSIDE.format(found=f"a path inside {repo}")
        )
    assert snapshot(model[0], cache, tmp_path) == before


def test_a_trailing_slash_names_a_folder_and_a_long_name_still_fits(model, tmp_path):
    _refused(
        model,
        tmp_path,
        f"{tmp_path}/pages/",
        "expected a file name for the report, found a folder; pass -o FOLDER/report.html",
    )
    long_name = "r" * 250 + ".html"  # 255 bytes: the most a name may have; the temporary file's name must fit too
    outcome = run_cli("report", model[0], "-o", tmp_path / long_name)
    assert (outcome.code, outcome.err) == (0, "")
    assert os.listdir(tmp_path) == [long_name]


def test_closed_stdout(model):
    """stdout closed at start (`>&-`): Python's sys.stdout is None; still one line, exit 1."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "llm_anatomy.cli.main", "params", model[0]],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.close(1),
    )
    assert (result.returncode, result.stderr) == (
        1,
        "llm-anatomy: stdout: expected to write the output, found bad file descriptor (EBADF); send the output elsewhere\n",
    )
