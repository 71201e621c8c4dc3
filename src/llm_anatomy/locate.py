"""Turn what the user typed (a folder, a file, or a model id in the local Hugging Face
cache) into the files that hold the weights and config. A model id the cache lacks is
handed to hub.py, which alone touches the network."""

from __future__ import annotations

import fnmatch
import os  # os.path, not pathlib: importing pathlib costs more than reading a 7B model's headers
import re
import stat
from collections import namedtuple

from .io.sources import is_local, kind_of, os_error, read_capped, what_is_at
from .core.errors import AnatomyError, UsageError
from .io.cache_dir import repo_folder
from .hub.settings import hub_cache, is_commit, valid_revision
from .core.text import escape

# Weight layouts in a model folder, most preferred first: an index file that names the
# shards, or a glob of weight files (every matching file).
FOLDER_LAYOUTS: tuple[tuple[str | None, str | None], ...] = (
    ("model.safetensors.index.json", None),
    (None, "*.safetensors"),
    ("pytorch_model.bin.index.json", None),
    (None, "pytorch_model*.bin"),  # not *.bin: training_args.bin is a pickled object, not weights
    (None, "*.gguf"),
    (None, "consolidated.*.pth"),
    (None, "*.pth"),
    (None, "*.pt"),
)

CONFIG = "config.json"
MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")  # :QUANT picks a GGUF file on the Hub
MAX_REF_BYTES = 100  # a ref holds a 40-digit commit hash and maybe a newline
SPLIT_SUFFIX = re.compile(r"-(\d{5})-of-(\d{5})$")  # llama.cpp's gguf-split names, before .gguf


class Source(namedtuple("Source", "name root weight_files index_file config_file remote", defaults=(None,))):
    """name: what to call the model in output; root: the folder holding the files;
    weight_files: the weights (empty when index_file names the shards, or for config.json alone); index_file and
    config_file: their paths or None; remote: for a model on the Hub, hub.Snapshot (its
    save() keeps the headers read). (A named tuple rather than a dataclass: see catalog.py.)"""

    __slots__ = ()


def _cached_snapshot(model_id: str, revision: str | None) -> str:
    cache = hub_cache()
    repo_dir = os.path.join(cache, repo_folder(model_id))
    download = f"download it with `hf download {model_id}" + (f" --revision {revision}" if revision else "") + "`"
    if not os.path.isdir(repo_dir):
        raise AnatomyError(model_id, f"a model folder, a weights file, or a model in the local Hugging Face cache ({cache})", "none of these", download)
    wanted = revision or "main"
    check_revision(model_id, wanted)
    ref = os.path.join(repo_dir, "refs", wanted)
    if os.path.isfile(ref):
        damaged = "the cache is damaged; download the model again"
        text = read_capped(ref, MAX_REF_BYTES, "a commit hash", damaged).strip()
        commit = text.decode("ascii") if text.isascii() else ""
        if not is_commit(commit):
            raise AnatomyError(ref, "a commit hash", escape(repr(commit if text.isascii() else text)), damaged)
    else:
        commit = wanted  # a commit hash given directly
    if "/" in commit:
        raise AnatomyError(model_id, f"revision {wanted!r} in the local Hugging Face cache ({repo_dir})", "no such branch or tag", download)
    snapshot = os.path.join(repo_dir, "snapshots", commit)
    if not os.path.isdir(snapshot):
        raise AnatomyError(model_id, f"revision {wanted!r} in the local Hugging Face cache ({repo_dir})", "no such snapshot", download)
    return snapshot


def check_revision(model_id: str, revision: str) -> None:
    """Refuse a revision that names no branch, tag or commit (hub_env.valid_revision), before
    it reaches a file name under refs/ or a request to the Hub: exit 2."""
    if not valid_revision(revision):
        raise UsageError(model_id, "a revision (branch, tag or commit)", f"{escape(repr(revision))}", "pass a name such as main, v1.0 or refs/pr/1")


def choose_weights(names: list[str]) -> tuple[tuple[str, ...], str | None]:
    """(weight file names, index name) by the first row of FOLDER_LAYOUTS the files match."""
    for index_name, pattern in FOLDER_LAYOUTS:
        if index_name is not None:
            if index_name in names:
                return (), index_name
        else:
            files = tuple(fnmatch.filter(names, pattern))
            if files:
                return files, None
    return (), None


def gguf_weights(names: list[str]) -> list[str]:
    """The GGUF model files among a repository's file names (in any folder; a vision
    projector, mmproj-*.gguf, is not the model)."""
    return [n for n in names if n.endswith(".gguf") and not os.path.basename(n).startswith("mmproj")]


def quant_tag(filename: str) -> str:
    """'llama-2-7b-chat.Q4_K_M.gguf' -> 'Q4_K_M': the last word of the name, as llama.cpp's
    repo:QUANT selector matches it (split files: before -0000N-of-0000M)."""
    stem = SPLIT_SUFFIX.sub("", os.path.basename(filename)[: -len(".gguf")])
    return re.split(r"[-.]", stem)[-1]


def choose_quantization(repo: str, files: list[str], quant: str) -> list[str]:
    """The GGUF files of one model: those of the QUANT asked for, or the only one there is;
    never several quantizations summed."""
    tags = sorted({quant_tag(f) for f in files})
    if quant:
        chosen = [f for f in files if quant_tag(f).upper() == quant.upper()]
        if not chosen:
            raise UsageError(f"{repo}:{quant}", "a quantization the repository has", escape(", ".join(tags)), f"pick one, e.g. {repo}:{tags[0]}" if tags else "")
        return chosen
    if len(tags) > 1 or len(files) > 1 and not all(SPLIT_SUFFIX.search(f[: -len(".gguf")]) for f in files):
        raise UsageError(repo, "one quantization (repo:QUANT)", f"{len(tags)}: {escape(', '.join(tags))}", f"pick one, e.g. {repo}:{tags[0]}")
    return files


def _all_splits(files: list[str]) -> bool:
    """Every part of each split model among files is there (a download may have stopped)."""
    groups: dict[tuple[str, str], set[str]] = {}
    for name in files:
        split = SPLIT_SUFFIX.search(name[: -len(".gguf")])
        if split is not None:
            groups.setdefault((SPLIT_SUFFIX.sub("", name[: -len(".gguf")]), split[2]), set()).add(split[1])
    return all(len(parts) == int(count) for (_, count), parts in groups.items())


def _cached_quantization(model: str, revision: str | None) -> Source:
    """REPO:QUANT in the local Hugging Face cache: the files of that quantization, if all
    of them are there (a GGUF repository is often downloaded one quantization at a time)."""
    repo, _, quant = model.partition(":")
    snapshot = _cached_snapshot(repo, revision)
    names = []
    for root, _, files in os.walk(snapshot):
        names += [os.path.relpath(os.path.join(root, f), snapshot) for f in files]
    present = gguf_weights(sorted(names))
    chosen = [n for n in present if quant_tag(n).upper() == quant.upper()]
    if not chosen or not _all_splits(chosen):
        found = "part of them" if chosen else escape(", ".join(sorted({quant_tag(n) for n in present}))) or "no GGUF files"
        raise AnatomyError(model, f"the {quant} GGUF files in the local Hugging Face cache ({snapshot})", found, f"download them with `hf download {repo} --include '*{quant}*'`")
    config = os.path.join(snapshot, CONFIG)
    return Source(model, snapshot, tuple(os.path.join(snapshot, n) for n in chosen), None, config if os.path.isfile(config) else None)


def _weights_in_folder(folder: str) -> tuple[tuple[str, ...], str | None]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise os_error(folder, exc, "a readable folder") from None
    weights, index = choose_weights([n for n in names if os.path.isfile(os.path.join(folder, n))])
    return tuple(os.path.join(folder, n) for n in weights), index and os.path.join(folder, index)


def _no_weights(folder: str) -> AnatomyError:
    return AnatomyError(folder, "weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index)", "none", "point at the folder that holds the weights")


def _allowed_folder(root: str) -> str:
    """Where the files of the model in root may lie: root itself, or for a snapshot of the
    Hugging Face cache (models--org--name/snapshots/SHA, whose files are links into the
    repository's blobs/ folder) the whole repository folder."""
    real = os.path.realpath(root)
    snapshots = os.path.dirname(real)
    repository = os.path.dirname(snapshots)
    if os.path.basename(snapshots) == "snapshots" and os.path.basename(repository).startswith("models--"):
        return repository
    return real


def shard_path(index_file: str, root: str, shard: str) -> str:
    """The path of a shard an index names: a regular file inside the model folder, or one
    line saying what is there instead (a fifo, a folder, a symlink loop: never opened), or
    where a link leads outside the folder. A downloaded model's index must not make the
    tools read a file elsewhere on the machine (the README's promise); a Hugging Face cache
    snapshot's links into its own blobs/ folder are inside."""
    path = os.path.join(root, shard)
    if not is_local(path):
        return path
    found = what_is_at(path)
    if found is not None:
        todo = "download the missing shard" if found == "no such file" else "put the shard file in its place, or download it again"
        raise AnatomyError(index_file, f"shard {escape(shard)} named by the index", found, todo)
    allowed, target = _allowed_folder(root), os.path.realpath(path)
    if os.path.commonpath([allowed, target]) != allowed:
        raise AnatomyError(index_file, f"shard {escape(shard)} named by the index inside the model folder", f"a link to {escape(target)}", "copy the shard into the model folder")
    return path


def _check_complete(snapshot: str) -> None:
    """A snapshot of the HF cache may hold only some files (`hf download REPO config.json`,
    or huggingface_hub fetching an index): then the model is read from the Hub instead."""
    weights, index = _weights_in_folder(snapshot)
    if not weights and index is None:
        raise _no_weights(snapshot)
    if index is not None:
        from .formats.safetensors import read_index

        for shard in sorted(set(read_index(index).values())):
            shard_path(index, snapshot, shard)


def cached_copy(model: str, revision: str | None) -> Source | str:
    """Where the local Hugging Face cache holds model id MODEL whole: the Source of REPO:QUANT,
    else the snapshot folder; AnatomyError saying why not."""
    if ":" in model:  # a GGUF quantization selector
        return _cached_quantization(model, revision)
    folder = _cached_snapshot(model, revision)
    _check_complete(folder)
    return folder


def resolve(model: str, revision: str | None = None) -> Source:
    """Find the weights and config for MODEL; raise AnatomyError saying what is missing."""
    local = os.path.exists(model)
    if local:
        if revision:
            raise UsageError(model, "a model id with --revision", "a local path", "drop --revision for local folders and files")
        try:
            mode = os.stat(model).st_mode
        except OSError as exc:
            raise os_error(model, exc, "a model folder or a weights file") from None
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise AnatomyError(model, "a model folder or a weights file", kind_of(mode), "pass a model folder or a weights file")
        folder = model if stat.S_ISDIR(mode) else (os.path.dirname(model) or ".")
    elif MODEL_ID.match(model) and "/" in model:
        check_revision(model, revision or "main")
        try:
            found = cached_copy(model, revision)
        except UsageError:
            raise  # a revision that is no name anywhere
        except AnatomyError as not_cached:
            from .hub import snapshot as hub

            return hub.resolve(model, revision, not_cached)
        if isinstance(found, Source):
            return found
        folder = found
    else:
        raise AnatomyError(model, "a model folder, a weights file, or a model id such as meta-llama/Llama-2-7b-chat-hf", "no such file or folder", "check the path")
    config = os.path.join(folder, CONFIG)
    config_file = config if os.path.isfile(config) else None
    if local and stat.S_ISREG(mode):
        if os.path.basename(model) == CONFIG:  # a model studied before its weights are downloaded
            return Source(os.path.basename(model), folder, (), None, model)
        return Source(os.path.basename(model), folder, (model,), None, config_file)
    weights, index = _weights_in_folder(folder)
    if not local and gguf_weights(list(weights)):  # a GGUF repository in the cache: one quantization, as on the Hub
        weights = tuple(choose_quantization(model, gguf_weights(list(weights)), ""))
    if not weights and index is None:
        if config_file is None:
            raise _no_weights(folder)
        weights = ()  # config.json alone: config, tree and summary show the model it implies
    name = os.path.basename(os.path.abspath(model)) if local else model
    return Source(name, folder, weights, index, config_file)
