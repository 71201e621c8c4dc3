"""scan --deep: each file's sha256 (compared with hashlib on the same files), the weights'
NaN/Inf counts and absmax, and the findings their values show, for a local folder and the
same files in moto's S3 (one streamed GET per file)."""

import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from s3_moto import MotoS3, point_clients_at

from llm_anatomy import api
from llm_anatomy.analysis import inventory_deep
from llm_anatomy.cli.main import main

NAN_AT = "model.layers.0.self_attn.q_proj.weight"
ZERO = "model.layers.0.mlp.up_proj.weight"
BIG = "model.layers.0.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, llama_tied_dir):
    """The tied tiny Llama with 2 NaN and 1 Inf in one weight, one weight of zeros and one
    value past float16's range: written again with safetensors' own writer."""
    root = tmp_path_factory.mktemp("deep") / "damaged"
    shutil.copytree(llama_tied_dir, root)
    tensors = load_file(root / "model.safetensors")
    tensors[NAN_AT].flat[[0, 5]] = np.nan
    tensors[NAN_AT].flat[7] = -np.inf
    tensors[ZERO][...] = 0
    tensors[BIG].flat[3] = -1.5e5
    save_file(tensors, root / "model.safetensors")
    return root


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hashes(folder):
    """hashlib's sha256 of each weights and JSON file of the folder."""
    names = sorted(n for n in os.listdir(folder) if n.endswith((".safetensors", ".json")))
    assert "config.json" in names
    return {n: sha256(folder / n) for n in names}


def test_deep_local_row(damaged):
    (row,) = api.inventory([str(damaged)], deep=True).rows
    assert json.loads(row.sha256) == hashes(damaged)
    assert (row.nan_values, row.inf_values, row.absmax) == (2, 1, 1.5e5)
    assert row.findings == "high:1 low:2"
    assert row.parameters is not None and row.error is None


def test_deep_findings_name_the_tensors(damaged):
    from llm_anatomy.formats import catalog_from_source
    from llm_anatomy.locate import resolve

    catalog = catalog_from_source(resolve(str(damaged)))
    passes = inventory_deep.local_passes(str(damaged))
    columns, findings = inventory_deep.deep(catalog, passes)
    assert [(f.rule, f.file, f.location, f.message) for f in findings] == [
        ("LA-DATA-003", "model.safetensors", f"tensor {BIG}", "absmax 150000 in F32"),
        ("LA-DATA-002", "model.safetensors", f"tensor {ZERO}", "all 6144 values are zero"),
        ("LA-DATA-001", "model.safetensors", f"tensor {NAN_AT}", "2 NaN and 1 Inf of 4096 values"),
    ]  # in the file's offset order
    assert [p.rereads for p in passes.values()] == [0, 0, 0]  # one forward pass over each file


def test_deep_clean_sharded(llama_dir):
    (row,) = api.inventory([str(llama_dir)], deep=True).rows
    assert json.loads(row.sha256) == hashes(llama_dir)
    assert (row.nan_values, row.inf_values, row.findings) == (0, 0, "0")
    assert row.absmax == expected_absmax_sharded(llama_dir)


def expected_absmax_sharded(folder):
    values = []
    for name in os.listdir(folder):
        if name.endswith(".safetensors"):
            values += [float(np.abs(t).max()) for t in load_file(folder / name).values() if t.size]
    return max(values)


@pytest.mark.slow  # moto's server
def test_deep_s3_equals_local_one_get_per_file(damaged, monkeypatch):
    with MotoS3() as server:
        for name in os.listdir(damaged):
            server.put("models", "deep/damaged/" + name, (damaged / name).read_bytes())
        server.key = server.reader()
        point_clients_at(server, monkeypatch)
        shallow = api.inventory(["s3://models/deep/damaged"]).rows[0]
        before = server.count()
        (remote,) = api.inventory(["s3://models/deep/damaged"], deep=True).rows
        deep_requests = server.count() - before
        before = server.count()
        api.inventory(["s3://models/deep/damaged"])
        header_requests = server.count() - before
    (local,) = api.inventory([str(damaged)], deep=True).rows
    skip = ("location", "content", "findings")
    assert {k: v for k, v in dataclasses.asdict(remote).items() if k not in skip} == {
        k: v for k, v in dataclasses.asdict(local).items() if k not in skip
    }
    assert shallow.findings == "0"
    assert remote.findings == "high:1 low:2"
    # the header-only row's requests, then one streamed GET per file (config.json, the weights...)
    assert deep_requests - header_requests == len(hashes(damaged)) == 3


def test_cli_deep_json_and_resume(damaged, llama_tied_dir, tmp_path, capsys):
    out = tmp_path / "inventory.jsonl"
    assert main(["scan", str(llama_tied_dir), "--out", str(out)]) == 0  # header-only rows first
    capsys.readouterr()
    assert main(["scan", str(llama_tied_dir), str(damaged), "--deep", "--json", "--out", str(out)]) == 4
    lines, err = capsys.readouterr()
    rows = {r["location"]: r for r in map(json.loads, lines.splitlines())}
    assert err == ""  # the header-only row is no deep row: read again
    assert rows[str(damaged)]["findings"] == "high:1 low:2"
    assert rows[str(llama_tied_dir)]["sha256"] == json.dumps(hashes(llama_tied_dir), separators=(",", ":"))
    assert main(["scan", str(llama_tied_dir), str(damaged), "--deep", "--out", str(out)]) == 0
    assert capsys.readouterr().err.endswith("2 checkpoints already in " + str(out) + " for the same content skipped\n")


def test_a_file_shorter_than_its_size_is_one_line():
    chunks = iter([b"abc"])
    one = inventory_deep.Pass("s3://b/k", 5, chunks, lambda start, end: b"")
    with pytest.raises(api.AnatomyError) as caught:
        one.hexdigest()
    assert (
        caught.value.line()
        == "s3://b/k: expected 5 bytes, found 3 bytes; the file changed while it was read; run again"
    )
