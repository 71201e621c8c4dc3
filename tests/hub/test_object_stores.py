"""gs:// and az:// beside s3://: one reading code, what differs in hub/s3.py's STORES table.
Azure against Azurite on 127.0.0.1 (tests/azurite.py): the same rows as local folders, the
ETag held between listing and reading, a connection string as the Azure tools print it.
GCS against moto's S3 server (tests/s3_moto.py) standing in for GCS's XML API, which is what
obstore's GCS client speaks (a ListObjectsV2 listing, path-style GETs with Range and
If-Match): no emulator of GCS itself works with it here (gcp-storage-emulator answers no
XML-API listing and sends no ETag), so Google's own answers (its error bodies, its token
service) are held only to the error lines below."""

import os

import pytest

import azurite
from test_inventory import facts, server, tree  # noqa: F401 (server, tree: fixtures)

from llm_anatomy import api, locate
from llm_anatomy.analysis import inventory as inv
from llm_anatomy.cli.main import main
from llm_anatomy.hub import s3


def test_the_schemes_are_the_ones_locate_knows():
    assert s3.SCHEMES == locate.OBJECT_STORES == ("s3://", "gs://", "az://")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("gs://my_models/a/b", ("gs://my_models", "a/b")),
        ("az://models/team/", ("az://models", "team/")),
        ("s3://models", ("s3://models", "")),
    ],
)
def test_split_keeps_the_scheme_with_the_bucket(url, expected):
    assert s3.split(url) == expected


def test_bucket_names_by_each_cloud_rules(capsys):
    """An underscore is a GCS bucket's right, not an Azure container's (nor two hyphens)."""
    assert main(["params", "az://my_models/x"]) == 2
    assert capsys.readouterr().err == (
        "llm-anatomy: az://my_models/x: expected az://BUCKET/PREFIX with a bucket name of 3-63 lowercase"
        " letters, digits and single hyphens, found 'my_models'; check the address\n"
    )
    with pytest.raises(api.UsageError):
        s3.split("az://my--models/x")


def test_connection_string_as_obstore_config(monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
    )
    assert s3._azure_connection_string() == {"account_name": "acme", "account_key": "a2V5=="}
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "other")  # the account's variables win
    assert s3._azure_connection_string() == {}


def test_no_credentials_line_by_store(monkeypatch):
    """What each cloud's credential chain ends on, as one line that names its variables and
    never the request obstore quotes."""
    from obstore import exceptions

    google = exceptions.GenericError(
        "Generic GCS error: Error performing token request: Error performing GET"
        " http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token - 403 Forbidden"
    )
    assert s3.refused("gs://models/x", google).line() == (
        "gs://models/x: expected an object store's answer, found no Google Cloud credentials;"
        " set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT to a service account's key file"
    )
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(api.AnatomyError) as raised:
        s3.store("az://models")
    assert raised.value.line() == (
        "az://models: expected an object store's answer, found no Azure credentials;"
        " set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or AZURE_STORAGE_CONNECTION_STRING"
    )


def test_gcs_store_from_the_table(monkeypatch):
    """A gs:// store is obstore's GCSStore for the bucket; plain http only to GOOGLE_BASE_URL's."""
    from obstore.store import GCSStore

    monkeypatch.setenv("GOOGLE_BASE_URL", "http://127.0.0.1:9")
    assert isinstance(s3.store("gs://my_models"), GCSStore)


def test_missing_extra_names_the_cloud(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "obstore", None)
    assert main(["params", "gs://models/m"]) == 1
    assert capsys.readouterr().err == (
        "llm-anatomy: gs://models: expected obstore to read models in Google Cloud Storage,"
        " found obstore is not installed; pip install 'llm-anatomy[s3]'\n"
    )


@pytest.fixture(scope="module")
def blobs(tree):  # noqa: F811
    """tree's files in Azurite's container models, under team/."""
    path = azurite.program()
    if path is None:
        pytest.skip("azurite-blob not found (.ci/run installs it with npm; or set AZURITE_BLOB)")
    with azurite.Azurite(path) as server:
        server.container("models")
        for folder, _, files in os.walk(tree):
            for name in files:
                with open(os.path.join(folder, name), "rb") as handle:
                    server.put(
                        "models", "team/" + os.path.relpath(os.path.join(folder, name), tree.parent), handle.read()
                    )
        yield server


@pytest.fixture
def azure(blobs, monkeypatch):
    return azurite.point_clients_at(blobs, monkeypatch)


@pytest.mark.slow  # Azurite (Node.js) starts in ~5 s
def test_azure_rows_equal_local_rows(tree, azure):  # noqa: F811
    local = {os.path.relpath(r.location, tree.parent): facts(r) for r in api.inventory([str(tree)]).rows}
    remote = {r.location.removeprefix("az://models/team/"): facts(r) for r in api.inventory(["az://models/team/"]).rows}
    assert remote == local
    assert len(remote) == 3


@pytest.mark.slow
def test_azure_model_for_every_command(tree, azure, capsys):  # noqa: F811
    assert main(["params", str(tree / "single")]) == 0
    local = capsys.readouterr().out
    assert main(["params", "az://models/team/models/single"]) == 0
    assert capsys.readouterr().out == local
    assert main(["params", "az://models/team/nothing"]) == 1
    assert capsys.readouterr().err == (
        "llm-anatomy: az://models/team/nothing: expected a model folder or a weights file in the bucket,"
        " found no such key or prefix; check the path\n"
    )
    assert main(["params", "az://absent/m/model.safetensors"]) == 1  # Azure's 404, as obstore reports it
    assert capsys.readouterr().err == (
        "llm-anatomy: az://absent/m/model.safetensors: expected an object store's answer, found no such key;"
        " check the path\n"
    )
    assert main(["scan", "az://absent/"]) == 1  # a listing: Azure's error code
    assert capsys.readouterr().err == (
        "llm-anatomy: az://absent/: expected an object store's answer, found no such container;"
        " check the container name and AZURE_STORAGE_ENDPOINT\n"
    )


@pytest.mark.slow
def test_azure_blob_changed_between_listing_and_reading(tree, azure):  # noqa: F811
    """Azure lists an ETag without quotes and answers with quotes: If-Match holds either way."""
    targets = list(inv.list_s3("az://models/team/models/single", s3.store("az://models")))
    key = "team/models/single/model.safetensors"
    original = (tree / "single" / "model.safetensors").read_bytes()
    azure.put("models", key, original[:-4] + b"\0\0\0\0")
    try:
        rows = [inv.row_of(t, s3.store) for t in targets]
    finally:
        azure.put("models", key, original)
    assert [(r.location, r.error, r.parameters) for r in rows] == [
        (
            "az://models/team/models/single",
            f"az://models/{key}: expected an object store's answer, found an object changed since it was listed; run again once the upload is finished",
            None,
        )
    ]


@pytest.fixture
def google(server, monkeypatch):  # noqa: F811
    """The environment a GCS client reads, aimed at moto as the XML API, with a static
    bearer token (moto checks none unless told to)."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_SERVICE_ACCOUNT", "GOOGLE_SERVICE_ACCOUNT_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_BEARER_TOKEN", "test-token")
    monkeypatch.setenv("GOOGLE_BASE_URL", server.endpoint)
    return server


def test_gcs_rows_equal_local_rows_and_cost_the_same_requests(tree, google):  # noqa: F811
    local = {os.path.relpath(r.location, tree.parent): facts(r) for r in api.inventory([str(tree)]).rows}
    remote = {r.location.removeprefix("gs://models/team/"): facts(r) for r in api.inventory(["gs://models/team/"]).rows}
    assert remote == local
    before = google.count()
    assert [r.error for r in api.inventory(["gs://models/team/models/single"]).rows] == [None]
    # one listing page, then config.json, the header, README.md (license): as for s3://
    assert google.count() - before == 4


def test_gcs_object_changed_between_listing_and_reading(tree, server, google):  # noqa: F811
    targets = list(inv.list_s3("gs://models/team/models/single", s3.store("gs://models")))
    key = "team/models/single/model.safetensors"
    original = server.get("models", key)
    client = server.client(key=server.key)  # replaced through S3's API, as a user's upload
    client.put_object(Bucket="models", Key=key, Body=original[:-4] + b"\0\0\0\0")
    try:
        rows = [inv.row_of(t, s3.store) for t in targets]
    finally:
        client.put_object(Bucket="models", Key=key, Body=original)
    assert [(r.location, r.error) for r in rows] == [
        (
            "gs://models/team/models/single",
            f"gs://models/{key}: expected an object store's answer, found an object changed since it was listed; run again once the upload is finished",
        )
    ]
