"""A model that lives only on the Hugging Face Hub: its file list and commit from the Hub's
model-info API (the request HfApi().model_info sends, with endpoint, token and user agent
read as huggingface_hub reads them: hub_env.py), its weight files as remote byte sources
(remote.py), and a header cache under the project's cache folder keyed by repo and commit
sha, so a second call on the same revision reads nothing but the branch's commit.

The header cache of one commit, under cache_dir()/hub/models--ORG--NAME/:
  refs/REVISION           the commit sha a branch or tag had when last asked (for offline use,
                          and for the CLI to go ahead from while the Hub is asked again)
  SHA/config.json, ...    the small files, whole (config, params.json, the shard index)
  SHA/.ranges/FILE        each weight file's size and the byte ranges fetched for its header
  SHA/.listing.json       the repository's file list; written last, so its presence means complete
Nothing is ever written into the Hugging Face cache, and no code from a repository runs."""

from __future__ import annotations

import json
import os

from . import hub_env, remote
from .byte_io import register
from .errors import AnatomyError
from .hub_commit import LISTING, SMALL_FILE_BYTES, Hub, commit, repo_cache, write_atomic
from .remote_file import RemoteFile, parallel
from .source import Source, choose_quantization, choose_weights, gguf_weights

SMALL_FILES = ("config.json", "params.json")
RANGES = ".ranges"


def _choose(repo: str, listing: list[str], quant: str) -> tuple[list[str], str | None]:
    """(weight files, index file) in the repository, chosen as source.py chooses in a folder."""
    top = [n for n in listing if "/" not in n]
    weights, index = choose_weights(top)
    gguf = gguf_weights(listing)
    if quant or (not weights and index is None and gguf) or (weights and all(w.endswith(".gguf") for w in weights)):
        return choose_quantization(repo, gguf, quant), None
    if not weights and index is None:
        raise AnatomyError(repo, "weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index)", "none in the repository", "check the model id")
    return list(weights), index


class Snapshot:
    """The remote files of one commit, registered as byte sources; save() keeps what was fetched."""

    def __init__(self, folder: str, listing: list[str], files: dict[str, RemoteFile], cached: set[str], fresh: bool) -> None:
        self.folder, self.listing, self.files, self.fresh = folder, listing, files, fresh
        self._saved = {name: len(f.chunks()) if name in cached else 0 for name, f in files.items()}

    def save(self) -> None:
        """Write each header's ranges to the cache (after the catalog is read), then the listing."""
        for filename, source in self.files.items():
            source.keep()
            chunks = source.chunks()
            if len(chunks) == self._saved[filename]:
                continue
            ranges = [[start, len(data)] for start, data in chunks]
            head = json.dumps({"size": source.size, "ranges": ranges}).encode() + b"\n"
            write_atomic(_ranges_path(self.folder, filename), head + b"".join(data for _, data in chunks))
            self._saved[filename] = len(chunks)
        if self.fresh:
            write_atomic(os.path.join(self.folder, LISTING), json.dumps(self.listing).encode())
            self.fresh = False


def _ranges_path(folder: str, filename: str) -> str:
    return os.path.join(folder, RANGES, filename.replace("/", "%2F"))


def _load_ranges(folder: str, filename: str) -> tuple[int, list[tuple[int, bytes]]] | None:
    try:
        with open(_ranges_path(folder, filename), "rb") as handle:
            head = json.loads(handle.readline())
            chunks, rest = [], handle.read()
    except (OSError, ValueError):
        return None
    position = 0
    for start, length in head["ranges"]:
        chunks.append((start, rest[position : position + length]))
        position += length
    return head["size"], chunks


def _fetch_head(hub: Hub, folder: str, filename: str) -> RemoteFile:
    """A weight file's first HEAD_BYTES; for safetensors, the rest of the header if longer."""
    request = remote.Request(hub, filename)
    name = os.path.join(folder, filename)
    data, size = request.get(name, 0, remote.HEAD_BYTES - 1)
    source = RemoteFile(name, size, request.fetcher(name, size), [(0, data)])
    if len(data) >= 9 and data[8:9] == b"{":
        header_end = 8 + int.from_bytes(data[:8], "little")
        if len(data) < header_end <= min(size, 8 + 100 * 1024 * 1024):
            source.prefetch([(len(data), header_end - len(data))])
    return source


def resolve(model: str, revision: str | None, cache_error: AnatomyError) -> Source:
    """The Source of a model on the Hub (MODEL is REPO or REPO:QUANT); cache_error is why the
    Hugging Face cache did not have it, raised as it was when offline without a header cache."""
    repo, _, quant = model.partition(":")
    sha, listing, check = commit(repo, revision, cache_error)
    folder = os.path.join(repo_cache(repo), sha)
    fresh = listing is not None and not os.path.isfile(os.path.join(folder, LISTING))
    if listing is None:
        with open(os.path.join(folder, LISTING), encoding="utf-8") as handle:
            listing = json.load(handle)
    hub = None if hub_env.offline() else Hub(repo, sha, check)
    weights, index = _choose(repo, listing, quant)
    small = [n for n in (*SMALL_FILES, index) if n is not None and n in listing]
    missing = [n for n in small if not os.path.isfile(os.path.join(folder, n))]
    if missing and hub is None:
        raise cache_error
    for filename, data in zip(missing, parallel(missing, lambda n: remote.Request(hub, n).get_whole(os.path.join(folder, n), SMALL_FILE_BYTES))):
        write_atomic(os.path.join(folder, filename), data)
    if index is not None:
        from .formats import safetensors

        weights = sorted(set(safetensors.read_index(os.path.join(folder, index)).values()))
    files: dict[str, RemoteFile] = {}
    to_fetch = []
    for filename in weights:
        if filename not in listing:
            continue  # formats reports a shard the index names but the repository lacks
        cached = _load_ranges(folder, filename)
        if cached is not None:
            name, size = os.path.join(folder, filename), cached[0]
            files[filename] = RemoteFile(name, size, remote.Request(hub, filename).fetcher(name, size) if hub is not None else None, cached[1])
        elif hub is None:
            raise cache_error
        else:
            to_fetch.append(filename)
    files.update(zip(to_fetch, parallel(to_fetch, lambda n: _fetch_head(hub, folder, n))))
    for source in files.values():
        register(source)
    config = os.path.join(folder, "config.json")
    snapshot = Snapshot(folder, listing, files, set(files) - set(to_fetch), fresh)
    return Source(
        model,
        folder,
        () if index is not None else tuple(os.path.join(folder, w) for w in weights),
        os.path.join(folder, index) if index is not None else None,
        config if os.path.isfile(config) else None,
        snapshot,
    )
