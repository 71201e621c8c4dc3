"""A model that lives only on the Hugging Face Hub: its file list and commit from the Hub's
model-info API (the request HfApi().model_info sends, with endpoint, token and user agent
read as huggingface_hub reads them: hub_env.py), its weight files as remote byte sources
(remote.py), and a header cache under the project's cache folder keyed by repo and commit
sha, so a second call on the same revision reads nothing but the branch's commit.

The header cache of one commit, under cache_dir()/hub/models--ORG--NAME/:
  refs/REVISION           the commit sha a branch or tag had when last asked (for offline use)
  SHA/config.json, ...    the small files, whole (config, params.json, the shard index)
  SHA/.ranges/FILE        each weight file's size and the byte ranges fetched for its header
  SHA/.listing.json       the repository's file list; written last, so its presence means complete
Nothing is ever written into the Hugging Face cache, and no code from a repository runs.
The cache is read back as hostile (capped, shape-checked: any doubt is a miss) and written
through no link (cache_folder.write_file)."""

from __future__ import annotations

import json
import os

from . import settings, http
from ..io.bounded_json import loads
from ..io.sources import SourcedPath, read_capped
from ..core.errors import AnatomyError
from .commit import LISTING, SMALL_FILE_BYTES, Hub, commit, repo_cache, write_atomic
from .remote_file import RemoteFile, parallel
from ..formats.files import Source, choose_quantization, choose_weights, gguf_weights
from ..hf.peft import ADAPTER_CONFIG

SMALL_FILES = ("config.json", "params.json", ADAPTER_CONFIG)
RANGES = ".ranges"
# A cached header: a safetensors header is at most 100 MB, GGUF metadata and a zip's
# directory and pickle tens of MB; the JSON line of its ranges a few KB.
MAX_RANGES_BYTES = 256 << 20
MAX_RANGES_LINE = 1 << 20


def _choose(repo: str, listing: list[str], quant: str) -> tuple[list[str], str | None]:
    """(weight files, index file) in the repository, chosen as source.py chooses in a folder."""
    top = [n for n in listing if "/" not in n]
    weights, index = choose_weights(top)
    gguf = gguf_weights(listing)
    if quant or (not weights and index is None and gguf) or (weights and all(w.endswith(".gguf") for w in weights)):
        return choose_quantization(repo, gguf, quant), None
    if not weights and index is None:
        raise AnatomyError(
            repo,
            "weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index)",
            "none in the repository",
            "check the model id",
        )
    return list(weights), index


class Snapshot:
    """The remote files of one commit (files: by name in the repository); save() keeps what was fetched."""

    def __init__(
        self, folder: str, listing: list[str], files: dict[str, RemoteFile], cached: set[str], fresh: bool
    ) -> None:
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


def _whole(value: object) -> bool:
    return type(value) is int and value >= 0  # type(): a JSON true is no size


def _load_ranges(folder: str, filename: str) -> tuple[int, list[tuple[int, bytes]]] | None:
    """(size, chunks) of a weight file's header as Snapshot.save wrote it: a JSON line
    {"size": N, "ranges": [[start, length], ...]}, then the chunks' bytes in that order.
    None when absent or in any doubt (too large, no such line, another shape, bytes that do
    not add up, not a regular file): a miss, read from the Hub again."""
    path = _ranges_path(folder, filename)
    try:
        data = read_capped(path, MAX_RANGES_BYTES, "a header cache file", "")
        end = data.find(b"\n", 0, MAX_RANGES_LINE)
        head = loads(data[:end], path, "the header cache's ranges", "") if end >= 0 else None
    except AnatomyError:
        return None
    size = head.get("size") if isinstance(head, dict) else None
    ranges = head.get("ranges") if isinstance(head, dict) else None
    if not _whole(size) or not isinstance(ranges, list):
        return None
    if not all(
        isinstance(r, list) and len(r) == 2 and _whole(r[0]) and _whole(r[1]) and r[0] + r[1] <= size for r in ranges
    ):
        return None
    if sum(length for _, length in ranges) != len(data) - end - 1:
        return None
    chunks, position = [], end + 1
    for start, length in ranges:
        chunks.append((start, data[position : position + length]))
        position += length
    return size, chunks


def _fetch_head(hub: Hub, folder: str, filename: str) -> RemoteFile:
    """A weight file's first HEAD_BYTES; for safetensors, the rest of the header if longer."""
    request = http.Request(hub, filename)
    name = os.path.join(folder, filename)
    data, size = request.get(name, 0, http.HEAD_BYTES - 1)
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
    sha, listing, fresh = commit(repo, revision, cache_error)
    folder = os.path.join(repo_cache(repo), sha)
    hub = None if settings.offline() else Hub(repo, sha)
    weights, index = _choose(repo, listing, quant)
    small = [n for n in (*SMALL_FILES, index) if n is not None and n in listing]
    missing = [n for n in small if not os.path.isfile(os.path.join(folder, n))]
    if missing and hub is None:
        raise cache_error
    for filename, data in zip(
        missing, parallel(missing, lambda n: http.Request(hub, n).get_whole(os.path.join(folder, n), SMALL_FILE_BYTES))
    ):
        write_atomic(os.path.join(folder, filename), data)
    if index is not None:
        from ..formats import safetensors

        weights = sorted(set(safetensors.read_index(os.path.join(folder, index)).values()))
    files: dict[str, RemoteFile] = {}
    to_fetch = []
    for filename in weights:
        if filename not in listing:
            continue  # formats reports a shard the index names but the repository lacks
        cached = _load_ranges(folder, filename)
        if cached is not None:
            name, size = os.path.join(folder, filename), cached[0]
            files[filename] = RemoteFile(
                name, size, http.Request(hub, filename).fetcher(name, size) if hub is not None else None, cached[1]
            )
        elif hub is None:
            raise cache_error
        else:
            to_fetch.append(filename)
    files.update(zip(to_fetch, parallel(to_fetch, lambda n: _fetch_head(hub, folder, n))))
    # A PEFT adapter's repository has adapter_config.json instead (read as its config, as in a folder).
    config = next(
        (path for path in (os.path.join(folder, n) for n in ("config.json", ADAPTER_CONFIG)) if os.path.isfile(path)),
        "",
    )
    snapshot = Snapshot(folder, listing, files, set(files) - set(to_fetch), fresh)
    return Source(
        model,
        folder,
        ()
        if index is not None
        else tuple(SourcedPath(files[w]) if w in files else os.path.join(folder, w) for w in weights),
        os.path.join(folder, index) if index is not None else None,
        config or None,
        snapshot,
    )
