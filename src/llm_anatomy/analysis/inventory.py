"""An inventory of many checkpoints: one Row each (what it is, how big, in which precision,
what serving it costs), from local folders walked and s3:// prefixes listed, many read at
once, headers only. Each row is what `summary` computes (summarize: architecture, counts,
quantization, memory and KV cache), never computed again here, with `scan`'s findings on a
local checkpoint counted by severity (scan_model's, run as `scan` runs it).

Bounded whatever the count: the walk and the listing are streamed (a folder's keys are
held only while the listing is inside it: S3 lists in key order, so a folder's keys come
together), at most `workers` checkpoints are read at a time, and each one's byte sources
are let go when its row is made. A key is never a local path: an s3:// model's files are
byte sources their SourcedPaths carry (nothing registered: a row's files go with it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Iterator

from ..core.errors import AnatomyError
from ..core.text import escape

MAX_DEPTH = 8  # folders below a local root walked; model folders sit one or two deep
MAX_ENTRIES = 1_000_000  # files looked at in one local walk or keys in one listing
MAX_FOLDER_KEYS = 10_000  # objects held for one folder of a listing; a model has tens
WORKERS = 16  # checkpoints in flight: each waits on a few round trips, not on the CPU
README_BYTES = 16 * 1024  # the front matter sits at the top of a model card
KV_TOKENS = 1024
WEIGHTS = (".safetensors", ".gguf", ".bin", ".pth", ".pt")
MAX_JSON_VALUES = 1_000_000  # tokenizer_config.json holds a few thousand (added tokens)


@dataclass(frozen=True)
class Row:
    """One checkpoint. location: its path or s3:// address (escaped); content: a hash of
    its files' names, sizes and ETags (or modification times), what resuming compares;
    error: the one line that says why it could not be read (the other fields then None);
    findings: `scan`'s findings on it counted by severity, most severe first ("high:1
    low:2"; "0": none; an s3:// one's end in " (pickles not read)" when it has pickles),
    None where not inspected (a checkpoint in an object store that could not be read)."""

    location: str
    content: str
    format: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    active_parameters: int | None = None
    bytes: int | None = None
    dtypes: str | None = None
    quantization: str | None = None
    bits_per_weight: float | None = None
    weights_memory: int | None = None
    kv_cache_per_1k_tokens: int | None = None
    context_length: int | None = None
    config_sha256: str | None = None
    tokenizer_sha256: str | None = None
    license: str | None = None
    error: str | None = None
    findings: str | None = None
    # --deep (analysis/inventory_deep.py): None without it
    sha256: str | None = None  # {file: sha256 of its bytes} as JSON text, files sorted
    nan_values: int | None = None
    inf_values: int | None = None
    absmax: float | None = None


COLUMNS = tuple(f.name for f in fields(Row))


@dataclass(frozen=True)
class Target:
    """A checkpoint found: what to open (a path or s3:// address), its content key, and for
    an s3:// folder its listing (name -> (size, ETag)), so it is not listed again."""

    location: str
    content: str
    entries: dict[str, tuple[int, str]] | None = None
    hub: bool = False  # a repository listed on the Hub (--author): location is its id


def content_key(items: Iterable[tuple[str, int, str]]) -> str:
    digest = hashlib.sha256()
    for name, size, version in sorted(items):
        digest.update(f"{name}\0{size}\0{version}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


def _checkpoints_in(names: list[str]) -> list[list[str]]:
    """The checkpoints among one folder's file names, as the lists of names that make each:
    the folder as one (safetensors, torch, a shard index), or else one per GGUF file."""
    from ..formats.files import choose_weights, gguf_weights

    weights, index = choose_weights(names)
    if index is not None or (weights and not all(w.endswith(".gguf") for w in weights)):
        return [names]
    return [[g] for g in gguf_weights(names)]


def walk_local(root: str) -> Iterator[Target]:
    """Checkpoints under a local folder (or the file itself). The walk enters no linked
    folder, goes MAX_DEPTH deep and looks at MAX_ENTRIES files at most; a linked file counts
    only when it leads inside root (a Hugging Face cache's snapshots link into its blobs)."""
    if os.path.isfile(root):
        yield Target(root, _local_key(os.path.dirname(root), [os.path.basename(root)]))
        return
    inside = os.path.realpath(root)
    seen = 0
    base_depth = root.rstrip(os.sep).count(os.sep)
    for folder, subfolders, files in os.walk(root, followlinks=False):
        if folder.count(os.sep) - base_depth >= MAX_DEPTH:
            subfolders[:] = []
        subfolders.sort()
        seen += len(files)
        if seen > MAX_ENTRIES:
            raise AnatomyError(root, f"at most {MAX_ENTRIES} files to walk", "more", "point at a smaller folder")
        kept = sorted(f for f in files if _inside(os.path.join(folder, f), inside))
        for names in _checkpoints_in(kept):
            single_gguf = len(names) == 1 and names[0].endswith(".gguf")
            yield Target(os.path.join(folder, names[0]) if single_gguf else folder, _local_key(folder, names))


def _inside(path: str, root: str) -> bool:
    """A regular file, or a link to one inside root."""
    if not os.path.islink(path):
        return True
    target = os.path.realpath(path)
    return os.path.commonpath([root, target]) == root and os.path.isfile(target)


def _local_key(folder: str, names: list[str]) -> str:
    """content_key of local files: sizes and modification times (a file gone meanwhile: its
    row says so when read)."""
    items = []
    for name in names:
        if name.endswith(WEIGHTS) or name.endswith(".json"):
            try:
                stat = os.stat(os.path.join(folder, name))
                items.append((name, stat.st_size, str(stat.st_mtime_ns)))
            except OSError:
                items.append((name, -1, ""))
    return content_key(items)


def list_s3(address: str, store: Any) -> Iterator[Target]:
    """Checkpoints under s3://BUCKET/PREFIX, from one streamed listing: a folder's keys are
    contiguous in S3's key order, so each folder is judged once the listing leaves it."""
    from ..hub import s3

    bucket, prefix = s3.split(address)
    open_folders: dict[str, dict[str, tuple[int, str]]] = {}  # folder prefix -> its objects so far

    def close(folder: str) -> Iterator[Target]:
        entries = open_folders.pop(folder)
        for names in _checkpoints_in(sorted(entries)):
            key = content_key((n, *entries[n]) for n in names if n.endswith(WEIGHTS) or n.endswith(".json"))
            if len(names) == 1 and names[0].endswith(".gguf"):
                yield Target(s3.url_of(bucket, folder + names[0]), key)
            else:
                yield Target(s3.url_of(bucket, folder.rstrip("/")), key, entries)

    for count, (key, size, etag) in enumerate(s3.listing(store, bucket, prefix)):
        if count >= MAX_ENTRIES:
            raise AnatomyError(address, f"at most {MAX_ENTRIES} keys to list", "more", "list a narrower prefix")
        folder = key[: key.rfind("/") + 1]
        for done in [f for f in open_folders if not key.startswith(f)]:  # left behind for good
            yield from close(done)
        entries = open_folders.setdefault(folder, {})
        if len(entries) < MAX_FOLDER_KEYS:
            entries[key[len(folder) :]] = (size, etag)
    for done in list(open_folders):
        yield from close(done)


def _sha256(value: Any) -> str:
    """The fingerprint of a JSON value: sha256 of its canonical form (keys sorted, no
    spaces), so two copies that differ only in layout are the same."""
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def _json_sha256(data: bytes | None, name: str) -> str | None:
    """_sha256 of a small JSON file's bytes (depth and size bounded); None when absent or no JSON."""
    from ..io.bounded_json import loads

    if data is None:
        return None
    try:
        return _sha256(loads(data, name, "a JSON file", "", MAX_JSON_VALUES))
    except AnatomyError:
        return None


def _license(readme: bytes | None) -> str | None:
    """`license:` of a model card's YAML front matter (the Hub's field), if it states one."""
    if not readme or not readme.startswith(b"---"):
        return None
    for line in readme.decode("utf-8", "replace").splitlines()[1:]:
        if line.strip() == "---":
            break
        name, _, value = line.partition(":")
        if name.strip() == "license" and value.strip():
            return escape(value.strip().strip("'\""))[:100]
    return None


def _dtypes(summary: Any) -> str:
    total = sum(d.params for d in summary.dtypes) or 1
    return " ".join(f"{d.name}:{100 * d.params / total:.0f}%" for d in summary.dtypes)


def _gguf_scheme(summary: Any) -> str | None:
    """The block quantization holding most parameters of a GGUF (Q4_K in a Q4_K_M file,
    whose few Q6_K and F32 tensors are its mix), or None when none is block-quantized."""
    from ..core.ggml_types import GGML_TYPES

    blocks = {name for name, per_block, _ in GGML_TYPES.values() if per_block > 1}
    quantized = [d for d in summary.dtypes if d.name in blocks]
    return max(quantized, key=lambda d: d.params).name if quantized else None


def _row(target: Target, source: Any, read_small: Callable[[str, int], bytes | None]) -> Row:
    """The row of one checkpoint opened as source (a formats.files.Source)."""
    from ..formats import catalog_from_source
    from .summary import summarize

    catalog = catalog_from_source(source)
    summary = summarize(catalog)
    arch, memory, quant = summary.architecture, summary.memory, summary.quant
    kv = memory.kv_cache
    config = (
        catalog.config if source.config_file and isinstance(catalog.config, dict) else None
    )  # a file's, not one derived from GGUF metadata
    names = (config or {}).get("architectures")
    return Row(
        location=escape(target.location),
        content=target.content,
        format=summary.format,
        architecture=escape(str(names[0]))
        if isinstance(names, list) and names
        else arch.model_type
        if arch is not None
        else None,
        parameters=summary.total_params,
        active_parameters=summary.moe.active if summary.moe is not None else None,
        bytes=summary.total_nbytes,
        dtypes=_dtypes(summary),
        quantization=quant.method if quant is not None else _gguf_scheme(summary) if summary.format == "gguf" else None,
        bits_per_weight=round((quant or memory.weights[0]).bits_per_weight, 3),
        weights_memory=memory.weights[0].nbytes,  # as stored
        kv_cache_per_1k_tokens=kv.bytes_per_token * KV_TOKENS if kv is not None else None,
        context_length=arch.effective_context if arch is not None else None,
        config_sha256=_sha256(config) if config is not None else None,
        tokenizer_sha256=_json_sha256(read_small("tokenizer_config.json", 4 << 20), "tokenizer_config.json"),
        license=_license(read_small("README.md", README_BYTES)),
    )


def _local_row(target: Target, deep: bool = False) -> Row:
    from ..io.sources import read_capped
    from ..locate import resolve

    source = resolve(target.location)

    def read_small(name: str, limit: int) -> bytes | None:
        path = os.path.join(source.root, name)
        if not os.path.isfile(path) or os.path.islink(path):
            return None
        try:
            return _head_of(path, limit) if name == "README.md" else read_capped(path, limit, name, "")
        except AnatomyError:
            return None

    row = _row(target, source, read_small)
    if not deep:
        return row
    from ..formats import catalog_from_source
    from . import inventory_deep

    catalog = catalog_from_source(source)
    return _deepened(row, *inventory_deep.deep(catalog, inventory_deep.local_passes(target.location)))


def _deepened(row: Row, columns: dict[str, Any], findings: list) -> Row:
    """row with --deep's columns, its findings counted in (a local row's scan findings are
    merged in later: row_of)."""
    from .inventory_deep import counted, merge_counts

    return dataclasses.replace(row, findings=merge_counts(row.findings, counted(findings)), **columns)


def findings_of(location: str) -> str:
    """`scan`'s findings on a local checkpoint (a folder, its subfolders included but those
    that hold a checkpoint of their own, which are rows of their own: no file is counted in
    two rows; or a GGUF file), counted by severity: what it reads is bounded as `scan`'s is
    (headers, the pickles of torch files, at most 32 MB of a legacy one), never the weights'
    data."""
    from .scan import scan_entries, scan_model
    from .scan.files import walk

    if not os.path.isdir(location):
        return _counted(scan_model(location))
    entries, findings, skipped = walk(location)
    in_folder: dict[str, list[str]] = {}
    for rel, _ in entries:
        in_folder.setdefault(os.path.dirname(rel), []).append(os.path.basename(rel))
    nested = {folder for folder, names in in_folder.items() if folder and _checkpoints_in(sorted(names))}

    def own(rel: str) -> bool:
        folder = os.path.dirname(rel)
        while folder:
            if folder in nested:
                return False
            folder = os.path.dirname(folder)
        return True

    return _counted(
        scan_entries(
            location,
            [e for e in entries if own(e[0])],
            [f for f in findings if own(f.file)],
            [s for s in skipped if own(s[0])],
        )
    )


def _counted(result: Any) -> str:
    """A ScanResult's findings by severity, most severe first; " (pickles not read)" when
    some were skipped for it (an object store's)."""
    from .scan import SEVERITIES
    from .scan.files import PICKLES_NOT_READ

    counts = {severity: sum(f.severity == severity for f in result.findings) for severity in SEVERITIES}
    text = " ".join(f"{severity}:{count}" for severity, count in counts.items() if count) or "0"
    return text + " (pickles not read)" if any(why == PICKLES_NOT_READ for _, _, why in result.skipped) else text


def _s3_findings(location: str, source: Any, listed: dict[str, tuple[int, str]], fetch: Callable[[str], Any]) -> str:
    """`scan`'s findings on an s3:// checkpoint from what its row read (each weights file's
    header, the config, the index) and the folder's listing (.py and native files by name),
    plus the other JSON files a loader follows (tokenizer_config.json...: fetch(name), one
    request each). Pickles are not read: they would need the files' bytes."""
    from ..io.sources import SourcedPath
    from .scan import scan_entries
    from .scan.files import AUTO_MAP_FILES, FOREIGN, PICKLES_NOT_READ, TEMPLATE_KEYS, WEIGHTS

    known = {name: SourcedPath(remote) for name, remote in source.remote.files.items()}
    for path in (source.config_file, source.index_file):
        if isinstance(path, SourcedPath):
            known[path.rpartition("/")[2]] = path
    entries, skipped = [], []
    for name in sorted(listed):
        suffix = os.path.splitext(name)[1].lower()
        if name not in known and (name in AUTO_MAP_FILES or name in TEMPLATE_KEYS):
            known[name] = SourcedPath(fetch(name))
        if name in known:
            entries.append((name, known[name]))
        elif suffix in FOREIGN or suffix == ".py":
            entries.append((name, location + "/" + name))  # judged by its name, never opened
        else:
            skipped.append(
                (
                    name,
                    "SCAN_NOT_SUPPORTED",
                    PICKLES_NOT_READ if suffix in WEIGHTS else "no check reads this kind of file",
                )
            )
    return _counted(scan_entries(location, entries, [], skipped))


def counts_of(findings: str | None) -> dict[str, int]:
    """A row's findings as {severity: count} (empty when none or not inspected)."""
    pairs = (part.partition(":") for part in (findings or "").split())
    return {name: int(count) for name, _, count in pairs if count.isdigit()}


def _head_of(path: str, limit: int) -> bytes:
    from ..io.sources import open_regular

    with open_regular(path) as handle:
        return handle.read(limit)


def _s3_row(target: Target, store: Any, deep: bool = False) -> Row:
    from ..hub import s3

    bucket, key = s3.split(target.location)
    source = s3.resolve(target.location, store, target.entries)
    entries = target.entries or {}
    folder = key + "/" if target.entries is not None else key.rpartition("/")[0] + "/"

    def read_small(name: str, limit: int) -> bytes | None:
        if name not in entries:
            return None
        size, etag = entries[name]
        return s3.get(store, bucket, folder + name, 0, min(size, limit), etag)[0] if size else b""

    row = _row(target, source, read_small)
    listed = entries or {key.rpartition("/")[2]: (0, "")}  # one weights file named: itself
    row = dataclasses.replace(
        row,
        findings=_s3_findings(
            target.location, source, listed, lambda name: s3.whole(store, bucket, folder + name, entries[name][1])
        ),
    )
    if not deep:
        return row
    from ..formats import catalog_from_source
    from . import inventory_deep

    catalog = catalog_from_source(source)  # the headers read for the row, held by its source
    return _deepened(
        row, *inventory_deep.deep(catalog, inventory_deep.s3_passes(target.location, store, target.entries))
    )


def _hub_row(target: Target) -> Row:
    """The row of a Hub repository listed for an author, read as any model on the Hub is
    (headers only, through the header cache); its findings are not inspected. A listed id
    that is no repository id (control characters, '..') is refused before any request."""
    from ..locate import MODEL_ID, resolve

    repo = target.location
    if not MODEL_ID.fullmatch(repo) or repo.count("/") != 1 or ":" in repo or ".." in repo:
        raise AnatomyError(escape(repo), "a repository id from the Hub's list", "another string", "check HF_ENDPOINT")
    source = resolve(repo)
    row = _row(target, source, lambda name, limit: None)
    if source.remote is not None:
        source.remote.save()  # the header cache, as every command keeps it
    return row


def row_of(target: Target, store: Callable[[str], Any], deep: bool = False) -> Row:
    """The row of one checkpoint; an unreadable one is a row with its error line. A local
    one's findings are `scan`'s, whether or not it could be read (a pickle the reader
    refuses is what the scan is for); deep: with --deep's columns and findings."""
    from ..hub import s3

    if target.hub:
        try:
            return _hub_row(target)
        except AnatomyError as exc:
            return Row(location=escape(target.location), content=target.content, error=exc.line())

    if s3.is_object_store(target.location):
        try:
            return _s3_row(target, store(s3.split(target.location)[0]), deep)
        except AnatomyError as exc:
            return Row(location=escape(target.location), content=target.content, error=exc.line())
    try:
        row = _local_row(target, deep)
    except AnatomyError as exc:
        row = Row(location=escape(target.location), content=target.content, error=exc.line())
    try:
        from .inventory_deep import merge_counts

        return dataclasses.replace(row, findings=merge_counts(findings_of(target.location), row.findings))
    except AnatomyError:  # the path gone since the walk: the row says what its reading found
        return row


def targets(inputs: Iterable[str], store: Callable[[str], Any], authors: Iterable[str] = ()) -> Iterator[Target]:
    """Every checkpoint under the inputs (local paths and s3:// prefixes, mixed), then the
    Hub repositories of each author (a page of the Hub's list at a time), streamed."""
    from ..hub import s3

    for given in inputs:
        if s3.is_object_store(given):
            yield from list_s3(given, store(s3.split(given)[0]))
        elif os.path.exists(given):
            yield from walk_local(given)
        else:
            raise AnatomyError(
                given,
                "a local folder or an s3://, gs:// or az://BUCKET/PREFIX",
                "no such file or folder",
                "check the path",
            )
    for author in authors:
        from ..hub.authors import models_of

        for repo, sha in models_of(author):
            yield Target(repo, sha, hub=True)


def inventory(
    inputs: Iterable[str],
    skip: Callable[[Target], bool] = lambda target: False,
    workers: int = WORKERS,
    deep: bool = False,
    authors: Iterable[str] = (),
    engine: Callable[[Iterator[Target], int, bool], Iterator[Row]] | None = None,
) -> Iterator[Row]:
    """A Row per checkpoint under inputs, as each is read (not in input order), at most
    `workers` read at once; skip(target) leaves out those already done (a resumed run).
    engine(targets, workers, deep) makes the rows elsewhere (inventory_ray.rows: on a Ray
    cluster); None: here, in a pool of threads."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    stores: dict[str, Any] = {}  # one client per bucket for the whole run

    def store(bucket: str) -> Any:
        if bucket not in stores:
            from ..hub import s3

            stores[bucket] = s3.store(bucket)
        return stores[bucket]

    todo = (t for t in targets(inputs, store, authors) if not skip(Target(escape(t.location), t.content)))
    if engine is not None:
        yield from engine(todo, workers, deep)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: set = set()
        for target in todo:
            if len(pending) >= workers:  # bounded: no more in flight than workers
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (future.result() for future in done)
            pending.add(pool.submit(row_of, target, store, deep))
        for future in pending:
            yield future.result()
