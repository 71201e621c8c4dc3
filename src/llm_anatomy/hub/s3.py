"""A model in an object store (`s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`,
`az://CONTAINER/PREFIX`: a folder of weights or one weights file), read as the Hub's models
are: each file a RemoteFile over ranged GETs, named by a SourcedPath (its address, never a
local path, carrying the RemoteFile), so every reader and command works on it unchanged, and
nothing outlives the Source that names it. A folder costs one LIST (names, sizes, ETags), the small files whole (config,
index), and one ranged GET per weight file's header (a second for a header past HEAD_BYTES):
a single-file safetensors model is three requests. Every read after the listing carries
If-Match with the listed ETag, so an object replaced meanwhile is one line, never a mix of
two versions.

The client is obstore (the `s3` extra; bench/RESULTS.md has the measurements): one wheel
with no dependency, 28 ms to import, one request per ranged read with the object's size and
ETag in its answer, conditional reads (If-Match), a streamed listing, and each cloud's
credential chain read from the environment; the three stores differ only in what STORES
says (obstore's class, the bucket names allowed, the endpoint variable, what this module
adds to obstore's chain: the AWS shared credentials file's profile, an Azure connection
string). boto3 and s3fs (through aiobotocore) bring botocore, whose import alone costs more
than obstore's, and gcsfs and adlfs each another stack (the tests have boto3, for moto's
server). Credentials stay inside obstore: no message or output of this module names them,
and its errors are reported by kind, never by their text."""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from ..core.errors import AnatomyError, UsageError
from ..core.text import escape
from ..io.sources import SourcedPath
from .remote_file import RemoteFile, parallel

HEAD_BYTES = 100_000  # the first range of each weight file, as on the Hub (http.HEAD_BYTES)
MAX_SMALL_FILE_BYTES = 20 * 1024 * 1024  # a config or a shard index (bounded_json's caps)
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own cap
RETRY_SECONDS = 30  # obstore retries 5xx and dropped connections, with backoff, this long
MAX_FOLDER_KEYS = 10_000  # objects directly under one model folder; more is not a model
SMALL_FILES = ("config.json", "params.json")

DENIED = ("access denied", "check the credentials' permissions on the bucket")
BAD_KEY = ("a key with an empty, '.' or '..' path segment", "read the models under another prefix, or rename the key")
NO_CREDENTIALS = None  # in the tables below: the store's own (STORES' no_credentials)
# obstore's exception kinds (FileNotFoundError is the built-in one) -> (found, todo)
REFUSALS_BY_KIND = (
    ("FileNotFoundError", "no such key", "check the path"),
    ("PreconditionError", "an object changed since it was listed", "run again once the upload is finished"),
    ("PermissionDeniedError", *DENIED),
    ("UnauthenticatedError", NO_CREDENTIALS, ""),
    # obstore refuses keys with empty, "." or ".." segments, in a listing too (the page is lost)
    ("InvalidPathError", *BAD_KEY),
)
# What obstore's GenericError says, in order: the credential chains' last resort (an
# instance metadata endpoint: AWS's, Google's, Azure's) failing, or no account named, then
# the stores' error codes (S3's and GCS's XML API, Azure's), then the network.
REFUSALS_BY_TEXT = (
    ("/latest/api/token", NO_CREDENTIALS, ""),
    ("/latest/meta-data/", NO_CREDENTIALS, ""),
    ("/computeMetadata/", NO_CREDENTIALS, ""),
    ("/metadata/identity/", NO_CREDENTIALS, ""),
    ("MissingAccount", NO_CREDENTIALS, ""),
    ("<Code>NoSuchBucket</Code>", "no such bucket", "check the bucket name and {endpoint}"),
    ("ContainerNotFound", "no such container", "check the container name and {endpoint}"),
    ("<Code>AccessDenied</Code>", *DENIED),
    ("AuthenticationFailed", *DENIED),
    ("AuthorizationFailure", *DENIED),
    ("403 Forbidden", *DENIED),
    ("error sending request", "no connection", "check the network or {endpoint}"),
)


def _aws_profile() -> dict[str, str]:
    """Keys of the shared credentials file's profile (AWS_PROFILE or default), as the AWS
    tools read them: what obstore, which reads only the environment, would otherwise miss;
    nothing when the environment has keys."""
    import configparser

    if "AWS_ACCESS_KEY_ID" in os.environ:
        return {}
    path = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "credentials")
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return {}
    section = os.environ.get("AWS_PROFILE", "default")
    if not parser.has_section(section):
        return {}
    keys = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
    }
    return {ours: parser.get(section, theirs) for theirs, ours in keys.items() if parser.has_option(section, theirs)}


# An Azure connection string's fields -> obstore's AzureConfig keys (obstore reads the
# account's variables, not the connection string the Azure tools and Azurite print).
CONNECTION_STRING_KEYS = {
    "AccountName": "account_name",
    "AccountKey": "account_key",
    "BlobEndpoint": "endpoint",
    "SharedAccessSignature": "sas_key",
}


def _azure_connection_string() -> dict[str, str]:
    """AZURE_STORAGE_CONNECTION_STRING's fields, as obstore's configuration (none when the
    account's variables are set: they win, as in the Azure tools)."""
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    if not text or "AZURE_STORAGE_ACCOUNT_NAME" in os.environ:
        return {}
    fields = dict(part.partition("=")[::2] for part in text.split(";") if "=" in part)
    return {ours: fields[theirs] for theirs, ours in CONNECTION_STRING_KEYS.items() if fields.get(theirs)}


# scheme -> what differs between the stores: obstore's class; what it is for (the missing
# extra's line); the bucket (container) names
# the cloud allows (anything else is a typo, refused before a request); the variables that
# name an endpoint (plain http is allowed only to one named there: a stand-in such as MinIO,
# Azurite or a test server); what this module adds to obstore's credential chain; and what
# to say when no credentials were found.
STORES = {
    "s3://": {
        "class": "S3Store",
        "purpose": "to read models in S3",
        "bucket": re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"),
        "names": "3-63 lowercase letters, digits, dots and hyphens",
        "endpoint": ("AWS_ENDPOINT_URL",),
        "config": _aws_profile,
        "no_credentials": ("no AWS credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"),
    },
    "gs://": {
        "class": "GCSStore",
        "purpose": "to read models in Google Cloud Storage",
        "bucket": re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]"),
        "names": "3-63 lowercase letters, digits, dots, hyphens and underscores",
        "endpoint": ("GOOGLE_BASE_URL",),
        "config": dict,
        "no_credentials": (
            "no Google Cloud credentials",
            "set GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT to a service account's key file",
        ),
    },
    "az://": {
        "class": "AzureStore",
        "purpose": "to read models in Azure Blob Storage",
        "bucket": re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]"),
        "names": "3-63 lowercase letters, digits and single hyphens",
        "endpoint": ("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"),
        "config": _azure_connection_string,
        "no_credentials": (
            "no Azure credentials",
            "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or AZURE_STORAGE_CONNECTION_STRING",
        ),
    },
}
SCHEMES = tuple(STORES)


def is_object_store(model: str) -> bool:
    return model.startswith(SCHEMES)


def _scheme(url: str) -> str:
    return url[: url.index("://") + 3]


def split(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of s3://BUCKET/KEY (gs://, az://), the bucket with its
    scheme ("s3://models": what names its store); UsageError for anything else."""
    scheme = _scheme(url)
    kind = STORES[scheme]
    bucket, _, key = url[len(scheme) :].partition("/")
    if not kind["bucket"].fullmatch(bucket):
        raise UsageError(
            url,
            f"{scheme}BUCKET/PREFIX with a bucket name of {kind['names']}",
            escape(repr(bucket)),
            "check the address",
        )
    if key and any(part in ("", ".", "..") for part in key.rstrip("/").split("/")):
        raise AnatomyError(url, "an object store's answer", BAD_KEY[0], BAD_KEY[1])
    return scheme + bucket, key


def store(bucket: str) -> Any:
    """An obstore store for bucket ("s3://models", "gs://models", "az://models"), with
    credentials as obstore finds them in the environment (AWS_ACCESS_KEY_ID..., web
    identity, container and instance credentials; GOOGLE_APPLICATION_CREDENTIALS,
    GOOGLE_SERVICE_ACCOUNT...; AZURE_STORAGE_ACCOUNT_NAME and _KEY, AZURE_STORAGE_SAS_KEY,
    managed identity...) and what STORES' config adds. MissingExtra without the `s3` extra."""
    from ..core.extras import require

    scheme = _scheme(bucket)
    require("s3", bucket, STORES[scheme]["purpose"])
    from datetime import timedelta

    from obstore import store as stores

    kind = STORES[scheme]
    config = kind["config"]()
    endpoint = next((os.environ[name] for name in kind["endpoint"] if os.environ.get(name)), "")
    local = (config.get("endpoint") or endpoint).startswith("http://")
    retries = {"max_retries": 2, "retry_timeout": timedelta(seconds=RETRY_SECONDS)}
    try:
        return getattr(stores, kind["class"])(
            bucket[len(scheme) :], config=config or None, client_options={"allow_http": local}, retry_config=retries
        )
    except Exception as exc:  # obstore's configuration errors
        raise refused(bucket, exc) from None


def refused(where: str, exc: Exception) -> AnatomyError:
    """One line for what obstore raised, by its kind or the error code in its text (never
    the text itself: it may quote a request's address or headers)."""
    from obstore import exceptions

    kind = STORES[_scheme(where)]
    no_credentials = kind["no_credentials"]
    text = str(exc)
    chosen = next(
        (
            (found, todo)
            for kind, found, todo in REFUSALS_BY_KIND
            if isinstance(exc, getattr(exceptions, kind, None) or FileNotFoundError)
        ),
        None,
    ) or next(((found, todo) for mark, found, todo in REFUSALS_BY_TEXT if mark in text), None)
    if chosen is None:
        return AnatomyError(
            where, "an object store's answer", escape(type(exc).__name__), "check the address and the credentials"
        )
    found, todo = no_credentials if chosen[0] is NO_CREDENTIALS else chosen
    return AnatomyError(where, "an object store's answer", found, todo.format(endpoint=kind["endpoint"][0]))


def _calling(where: str, call: Callable[[], Any]) -> Any:
    """call(); obstore's errors as one line about where."""
    try:
        return call()
    except AnatomyError:
        raise
    except Exception as exc:  # obstore raises its own kinds and built-in ones (FileNotFoundError)
        raise refused(where, exc) from None


def url_of(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def listing(s3: Any, bucket: str, prefix: str, start_after: str = "") -> Iterator[tuple[str, int, str]]:
    """Objects under prefix (every depth) as (key, size, etag), a page of 1,000 at a time:
    streamed, never held whole."""
    import obstore

    where = url_of(bucket, prefix)
    pages = _calling(where, lambda: iter(obstore.list(s3, prefix or None, offset=start_after or None, chunk_size=1000)))
    while True:
        page = _calling(where, lambda: next(pages, None))
        if page is None:
            return
        for meta in page:
            yield meta["path"], int(meta["size"]), str(meta.get("e_tag") or "")


def get(
    s3: Any, bucket: str, key: str, start: int, end: int | None, etag: str, limit: int = 0
) -> tuple[bytes, int, str]:
    """(bytes start..end-1, object size, ETag); end None: the whole object, refused past
    limit bytes unread. etag "": any version (a key not listed first)."""
    import obstore

    where = url_of(bucket, key)
    options: dict[str, Any] = {"range": (start, end)} if end is not None else {}
    if etag:
        options["if_match"] = etag
    answer = _calling(where, lambda: obstore.get(s3, key, options=options))
    size = int(answer.meta["size"])
    if end is None and size > limit:
        raise AnatomyError(
            where, f"a file of at most {limit} bytes", f"{size} bytes", "check that this is the model's file"
        )
    data = _calling(where, lambda: bytes(answer.bytes()))
    return data, size, str(answer.meta.get("e_tag") or "")


def remote_file(s3: Any, bucket: str, key: str, size: int, etag: str, chunks: list[tuple[int, bytes]]) -> RemoteFile:
    """The object as a byte source: ranges fetched on demand, each held to the listed ETag."""
    name = url_of(bucket, key)

    def fetch(start: int, end: int) -> bytes:
        return get(s3, bucket, key, start, end, etag)[0]

    return RemoteFile(name, size, fetch, chunks)


def _head(s3: Any, bucket: str, key: str, etag: str) -> RemoteFile:
    """A weight file's first HEAD_BYTES (size and ETag from the answer); for safetensors,
    the rest of its header in a second request if longer."""
    data, size, etag = get(s3, bucket, key, 0, HEAD_BYTES, etag)
    source = remote_file(s3, bucket, key, size, etag, [(0, data)] if data else [])
    if len(data) >= 9 and data[8:9] == b"{":
        header_end = 8 + int.from_bytes(data[:8], "little")
        if len(data) < header_end <= min(size, 8 + MAX_SAFETENSORS_HEADER):
            source.prefetch([(len(data), header_end - len(data))])
    return source


def whole(s3: Any, bucket: str, key: str, etag: str) -> RemoteFile:
    """A small file (a config, an index) whole, refused past MAX_SMALL_FILE_BYTES unread."""
    data, size, etag = get(s3, bucket, key, 0, None, etag, MAX_SMALL_FILE_BYTES)
    return remote_file(s3, bucket, key, size, etag, [(0, data)])


class Opened:
    """The weight files of one model read from S3 (files: by name in its folder, where
    formats looks up the shards an index names); they go when the Source goes."""

    def __init__(self, files: dict[str, RemoteFile]) -> None:
        self.files = files

    def save(self) -> None:
        """Nothing kept between runs (locate calls this after the headers are read)."""


def _folder_entries(s3: Any, bucket: str, prefix: str) -> dict[str, tuple[int, str]]:
    """name -> (size, ETag) of the objects directly in a folder (deeper ones skipped), of at
    most MAX_FOLDER_KEYS objects listed."""
    entries: dict[str, tuple[int, str]] = {}
    for count, (key, size, etag) in enumerate(listing(s3, bucket, prefix)):
        if count >= MAX_FOLDER_KEYS:
            raise AnatomyError(
                url_of(bucket, prefix),
                f"a model folder of at most {MAX_FOLDER_KEYS} objects",
                "more",
                "point at the folder that holds the weights",
            )
        if "/" not in key[len(prefix) :]:
            entries[key[len(prefix) :]] = (size, etag)
    return entries


def resolve(url: str, s3: Any = None, entries: dict[str, tuple[int, str]] | None = None) -> Any:
    """The Source of the model at s3://BUCKET/PREFIX (gs://, az://): one weights file, or a folder (whose
    listing, name -> (size, ETag), the inventory may pass in: it listed it already)."""
    from ..formats.files import Source, choose_quantization, choose_weights, gguf_weights

    bucket, key = split(url)
    s3 = s3 or store(bucket)
    if entries is None and _is_weights_name(key):
        folder = key.rpartition("/")[0]
        weight = key.rpartition("/")[2]
        files = {weight: _head(s3, bucket, key, "")}
        prefix = folder + "/" if folder else ""
        try:
            files["config.json"] = whole(s3, bucket, prefix + "config.json", "")
        except AnatomyError as missing:
            if missing.found != "no such key":
                raise
        config = files.pop("config.json", None)
        return Source(
            weight,
            url_of(bucket, folder),
            (SourcedPath(files[weight]),),
            None,
            config and SourcedPath(config),
            Opened(files),
        )
    prefix = key if not key or key.endswith("/") else key + "/"
    if entries is None:
        entries = _folder_entries(s3, bucket, prefix)
    if not entries:
        raise AnatomyError(
            url, "a model folder or a weights file in the bucket", "no such key or prefix", "check the path"
        )
    names = sorted(entries)
    weights, index = choose_weights(names)
    if weights and all(w.endswith(".gguf") for w in weights):
        weights = tuple(choose_quantization(url, gguf_weights(list(weights)), ""))
    small = [n for n in (*SMALL_FILES, index) if n is not None and n in entries]
    # SourcedPaths: read_index and the config reader read them through their sources
    fetched = {
        n: SourcedPath(f)
        for n, f in zip(small, parallel(small, lambda n: whole(s3, bucket, prefix + n, entries[n][1])))
    }
    root = url_of(bucket, prefix.rstrip("/"))
    if index is not None:
        from ..formats import safetensors

        shard_names = sorted(set(safetensors.read_index(fetched[index]).values()))
        absent = [s for s in shard_names if s not in entries]
        if absent:
            raise AnatomyError(
                fetched[index],
                f"shard {escape(absent[0])} named by the index",
                "no such key",
                "upload the missing shard",
            )
        weights = tuple(shard_names)
    if not weights and index is None and "config.json" not in fetched:
        raise AnatomyError(
            root,
            "weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index)",
            "none",
            "point at the folder that holds the weights",
        )
    heads = dict(zip(weights, parallel(list(weights), lambda n: _head(s3, bucket, prefix + n, entries[n][1]))))
    name = prefix.rstrip("/").rpartition("/")[2] or bucket[len(_scheme(bucket)) :]
    return Source(
        name,
        root,
        () if index is not None else tuple(SourcedPath(heads[w]) for w in weights),
        fetched.get(index) if index is not None else None,
        fetched.get("config.json"),
        Opened(heads),
    )


WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pth", ".pt")


def _is_weights_name(key: str) -> bool:
    return os.path.basename(key).endswith(WEIGHT_SUFFIXES)
