"""MODEL as a folder, a single file, or a model id in the local Hugging Face cache."""

import shutil

import pytest

import checkpoints


def _fake_hub_cache(cache, model_id, snapshot_from, commit="0123abcd" * 5, ref="main"):
    repo = cache / ("models--" + model_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / ref).write_text(commit)
    shutil.copytree(snapshot_from, repo / "snapshots" / commit)
    return repo


def test_model_id_resolved_in_hf_home(tmp_path, llama_dir, cli, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    _fake_hub_cache(tmp_path / "hf" / "hub", "acme/tiny-llama", llama_dir)
    by_id = cli("params", "acme/tiny-llama", "--json")
    by_path = cli("params", llama_dir, "--json")
    assert by_id.code == 0
    assert by_id.out.replace("acme/tiny-llama", "X") == by_path.out.replace(llama_dir.name, "X")


def test_revision_by_branch_and_missing_revision(tmp_path, llama_dir, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    _fake_hub_cache(tmp_path, "acme/tiny-llama", llama_dir, commit="feedbeef" * 5, ref="v1")
    assert cli("params", "acme/tiny-llama", "--revision", "v1").code == 0
    result = cli("params", "acme/tiny-llama", "--revision", "v2")
    assert result.code == 1
    assert result.err == (
        f"llm-anatomy: acme/tiny-llama: expected revision 'v2' in the local Hugging Face cache ({tmp_path / 'models--acme--tiny-llama'}), "
        "found no such snapshot; download it with `hf download acme/tiny-llama --revision v2`\n"
    )


def test_single_file_without_config(tmp_path, cli):
    import torch

    path = checkpoints.safetensors_file(str(tmp_path / "w.safetensors"), {"x": torch.zeros(2, 2)})
    result = cli("params", path)
    assert result.out.splitlines()[-1] == "1 tensor, 4 parameters, 16 B in 1 file"


def test_training_args_bin_is_not_taken_for_weights(tmp_path):
    """A Trainer output folder: pytorch_model.bin beside training_args.bin, a pickled object."""
    import pickle

    import torch

    from llm_anatomy.locate import resolve

    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    (tmp_path / "training_args.bin").write_bytes(pickle.dumps({"learning_rate": 1e-4}))
    assert resolve(str(tmp_path)).weight_files == (str(tmp_path / "pytorch_model.bin"),)


def test_revision_of_a_local_folder_is_a_usage_error(llama_dir, cli):
    result = cli("params", llama_dir, "--revision", "v1")
    assert (result.code, result.err) == (
        2,
        f"llm-anatomy: {llama_dir}: expected a model id with --revision, found a local path; drop --revision for local folders and files\n",
    )


def test_a_ref_that_leaves_the_snapshots_folder_is_refused(tmp_path, llama_dir, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = _fake_hub_cache(tmp_path, "acme/tiny-llama", llama_dir, commit="../../elsewhere")
    result = cli("params", "acme/tiny-llama")
    assert (result.code, result.err) == (
        1,
        f"llm-anatomy: {repo / 'refs' / 'main'}: expected a commit hash, found '../../elsewhere'; the cache is damaged; download the model again\n",
    )


@pytest.mark.parametrize(
    "command", ["params", "values", "tree", "config", "summary", "stats", "diff", "report", "demo"]
)
def test_every_help_shows_an_example(command, cli_subprocess):
    result = cli_subprocess(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "example:\n  llm-anatomy " + command in result.stdout
