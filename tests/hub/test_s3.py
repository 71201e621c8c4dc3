"""s3://BUCKET/PREFIX as a model for every command: the same output as the local files
give, in a handful of ranged requests, and one line for each refusal. The store is
moto's server on 127.0.0.1 (tests/s3_moto.py)."""

import os
import sys

import pytest

import checkpoints
from s3_moto import MotoS3, etag, point_clients_at

from llm_anatomy.cli.main import main
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.hub import s3


@pytest.fixture(scope="module")
def models(tmp_path_factory, llama_dir, llama_tied_dir):
    """{kind: local path}: a sharded safetensors folder, a single-file one, and a GGUF folder."""
    gguf_dir = tmp_path_factory.mktemp("gguf")
    checkpoints.llama_gguf(str(llama_tied_dir), str(gguf_dir / "tiny.Q8_0.gguf"))
    return {"sharded": llama_dir, "single": llama_tied_dir, "gguf": gguf_dir}


@pytest.fixture(scope="module")
def server(models):
    with MotoS3() as standin:
        for path in models.values():
            for name in os.listdir(path):
                standin.put("models", f"org/{path.name}/{name}", (path / name).read_bytes())
        standin.put("secret", "x/config.json", b"{}")
        standin.key = standin.reader(denied=("secret",))
        yield standin


@pytest.fixture
def store(server, monkeypatch):
    return point_clients_at(server, monkeypatch)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def url(models, kind, *rest):
    return "/".join(["s3://models/org", models[kind].name, *rest])


COMMANDS = (
    ("params",),
    ("summary",),
    ("tree",),
    ("config",),
    ("params", "--json"),
    ("values", "model.norm.weight"),
)


@pytest.mark.parametrize("kind", ["sharded", "single", "gguf"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_same_output_as_the_local_files(store, models, capsys, kind, command):
    name, *rest = command
    if kind == "gguf" and name == "values":
        rest = ["output_norm.weight"]  # GGUF's own name
    local = run(capsys, name, str(models[kind]), *rest)
    remote = run(capsys, name, url(models, kind), *rest)
    assert local[0] == 0
    assert remote == local


def test_a_config_transformers_cannot_read_is_noted_as_locally(store, models, capsys, tmp_path):
    """config.json without a model_type: the same note as for the local folder, naming
    transformers' own complaint with this model's place (not the local folder's, which the
    cached verdict for these config bytes was first written for, nor an s3:// address taken
    for a repo id)."""
    folder = tmp_path / "no-model-type"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes((models["single"] / "model.safetensors").read_bytes())
    for name in os.listdir(folder):
        store.put("models", f"org/no-model-type/{name}", (folder / name).read_bytes())
    local = run(capsys, "config", str(folder))
    remote = run(capsys, "config", "s3://models/org/no-model-type")
    assert local[0] == 0
    assert "Should have a `model_type` key in its config.json" in local[1]
    assert f"Unrecognized model in {folder}. Should" in local[1]
    assert remote == (0, local[1].replace(str(folder), "s3://models/org/no-model-type"), "")


def test_stats_reads_every_byte_through_ranges(store, models, capsys):
    assert run(capsys, "stats", url(models, "single")) == run(capsys, "stats", str(models["single"]))


def test_one_weights_file_as_the_model(store, models, capsys):
    weights = models["single"] / "model.safetensors"
    assert run(capsys, "params", url(models, "single", "model.safetensors")) == run(capsys, "params", str(weights))


def test_single_file_safetensors_header_in_three_requests(store, models, capsys):
    before = store.count()
    assert run(capsys, "params", url(models, "single"))[0] == 0
    prefix = f"/models/org/{models['single'].name}"
    assert store.requests[before:] == [
        ("GET", f"/models?list-type=2&prefix=org%2F{models['single'].name}%2F"),
        ("GET", f"{prefix}/config.json"),
        ("GET", f"{prefix}/model.safetensors"),
    ]


def test_sharded_header_one_request_per_shard(store, models, capsys):
    shards = len([n for n in os.listdir(models["sharded"]) if n.endswith(".safetensors")])
    before = store.count()
    assert run(capsys, "params", url(models, "sharded"))[0] == 0
    assert store.count() - before == 3 + shards  # listing, config, index, one per shard


def refusal(store, capsys, address):
    code, out, err = run(capsys, "params", address)
    assert store.key[1] not in out + err and store.key[0] not in out + err
    return code, out, err


@pytest.mark.parametrize(
    "address, line",
    [
        (
            "s3://nobucket/x",
            "s3://nobucket/x/: expected an object store's answer, found no such bucket; check the bucket name and AWS_ENDPOINT_URL",
        ),
        (
            "s3://models/nothing",
            "s3://models/nothing: expected a model folder or a weights file in the bucket, found no such key or prefix; check the path",
        ),
        (
            "s3://models/org/x.safetensors",
            "s3://models/org/x.safetensors: expected an object store's answer, found no such key; check the path",
        ),
        (
            "s3://secret/x",
            "s3://secret/x/: expected an object store's answer, found access denied; check the credentials' permissions on the bucket",
        ),
    ],
)
def test_refusals_are_one_line(store, capsys, address, line):
    assert refusal(store, capsys, address) == (1, "", f"llm-anatomy: {line}\n")


def test_bucket_name_is_checked_before_any_request(store, capsys):
    before = store.count()
    expected = "llm-anatomy: s3://Bad_Bucket/x: expected s3://BUCKET/PREFIX with a bucket name of 3-63 lowercase letters, digits, dots and hyphens, found 'Bad_Bucket'; check the address\n"
    assert refusal(store, capsys, "s3://Bad_Bucket/x") == (2, "", expected)
    assert store.count() == before


def test_no_credentials(store, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")  # no instance to ask
    expected = "llm-anatomy: s3://models/x/: expected an object store's answer, found no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE\n"
    assert refusal(store, capsys, "s3://models/x") == (1, "", expected)


def test_profile_from_the_shared_credentials_file(store, models, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (tmp_path / "credentials").write_text(
        f"[team]\naws_access_key_id = {store.key[0]}\naws_secret_access_key = {store.key[1]}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "team")
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9")
    assert run(capsys, "summary", url(models, "single")) == run(capsys, "summary", str(models["single"]))


def test_missing_extra(store, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "obstore", None)  # find_spec: not installed
    expected = "llm-anatomy: s3://models: expected obstore to read models in S3, found obstore is not installed; pip install 'llm-anatomy[s3]'\n"
    assert refusal(store, capsys, "s3://models/x") == (1, "", expected)


def test_object_changed_since_listing(store, models):
    """The listing's ETag goes with every read: a replaced object is one line, not a mix."""
    prefix = f"org/{models['single'].name}/"
    entries = {
        name: (len(data), etag(data)) for name, data in ((p.name, p.read_bytes()) for p in models["single"].iterdir())
    }
    entries["model.safetensors"] = (entries["model.safetensors"][0], '"0123456789abcdef0123456789abcdef"')
    with pytest.raises(AnatomyError) as caught:
        s3.resolve(url(models, "single"), entries=entries)
    assert (
        caught.value.line()
        == f"s3://models/{prefix}model.safetensors: expected an object store's answer, found an object changed since it was listed; run again once the upload is finished"
    )
