"""Turn what the user typed (a folder, a file, or a model id in the local Hugging Face
cache) into the files that hold the weights and config. A model id the cache lacks is
handed to hub.py, which alone touches the network."""

from __future__ import annotations

import os  # os.path, not pathlib: importing pathlib costs more than reading a 7B model's headers
import re
import stat

from .io.sources import kind_of, os_error, read_capped
from .core.errors import AnatomyError, UsageError
from .io.cache_dir import repo_folder
from .hub.settings import hub_cache, is_commit, valid_revision
from .core.text import escape
from .hf.peft import ADAPTER_CONFIG  # a PEFT adapter's config, read as its config when there is no config.json


CONFIG = "config.json"
MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?(:[\w.-]+)?$")  # :QUANT picks a GGUF file on the Hub
OBJECT_STORES = ("s3://", "gs://", "az://")  # a model in an object store (hub/s3.py's STORES), never a local path
MAX_REF_BYTES = 100  # a ref holds a 40-digit commit hash and maybe a newline

# The rules on file names (formats.files) and the readers (formats) are imported where
# they are used: the CLI imports this module to check the local cache before it sends its
# early request to the Hub (ask_early), and loading the formats package first would hold
# that request back.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .core.catalog import Catalog
    from .formats.files import Source
    from .hub.commit import Early


def _cached_snapshot(model_id: str, revision: str | None) -> str:
    cache = hub_cache()
    repo_dir = os.path.join(cache, repo_folder(model_id))
    download = f"download it with `hf download {model_id}" + (f" --revision {revision}" if revision else "") + "`"
    if not os.path.isdir(repo_dir):
        raise AnatomyError(
            model_id,
            f"a model folder, a weights file, or a model in the local Hugging Face cache ({cache})",
            "none of these",
            download,
        )
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
        raise AnatomyError(
            model_id,
            f"revision {wanted!r} in the local Hugging Face cache ({repo_dir})",
            "no such branch or tag",
            download,
        )
    snapshot = os.path.join(repo_dir, "snapshots", commit)
    if not os.path.isdir(snapshot):
        raise AnatomyError(
            model_id, f"revision {wanted!r} in the local Hugging Face cache ({repo_dir})", "no such snapshot", download
        )
    return snapshot


def check_revision(model_id: str, revision: str) -> None:
    """Refuse a revision that names no branch, tag or commit (hub_env.valid_revision), before
    it reaches a file name under refs/ or a request to the Hub: exit 2."""
    if not valid_revision(revision):
        raise UsageError(
            model_id,
            "a revision (branch, tag or commit)",
            f"{escape(repr(revision))}",
            "pass a name such as main, v1.0 or refs/pr/1",
        )


def _all_splits(files: list[str]) -> bool:
    """Every part of each split model among files is there (a download may have stopped)."""
    from .formats.files import SPLIT_SUFFIX

    groups: dict[tuple[str, str], set[str]] = {}
    for name in files:
        split = SPLIT_SUFFIX.search(name[: -len(".gguf")])
        if split is not None:
            groups.setdefault((SPLIT_SUFFIX.sub("", name[: -len(".gguf")]), split[2]), set()).add(split[1])
    return all(len(parts) == int(count) for (_, count), parts in groups.items())


def _cached_quantization(model: str, revision: str | None) -> Source:
    """REPO:QUANT in the local Hugging Face cache: the files of that quantization, if all
    of them are there (a GGUF repository is often downloaded one quantization at a time)."""
    from .formats.files import Source, gguf_weights, quant_tag

    repo, _, quant = model.partition(":")
    snapshot = _cached_snapshot(repo, revision)
    names = []
    for root, _, files in os.walk(snapshot):
        names += [os.path.relpath(os.path.join(root, f), snapshot) for f in files]
    present = gguf_weights(sorted(names))
    chosen = [n for n in present if quant_tag(n).upper() == quant.upper()]
    if not chosen or not _all_splits(chosen):
        found = (
            "part of them" if chosen else escape(", ".join(sorted({quant_tag(n) for n in present}))) or "no GGUF files"
        )
        raise AnatomyError(
            model,
            f"the {quant} GGUF files in the local Hugging Face cache ({snapshot})",
            found,
            f"download them with `hf download {repo} --include '*{quant}*'`",
        )
    config = os.path.join(snapshot, CONFIG)
    return Source(
        model,
        snapshot,
        tuple(os.path.join(snapshot, n) for n in chosen),
        None,
        config if os.path.isfile(config) else None,
    )


def _weights_in_folder(folder: str) -> tuple[tuple[str, ...], str | None]:
    from .formats.files import choose_weights

    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise os_error(folder, exc, "a readable folder") from None
    weights, index = choose_weights([n for n in names if os.path.isfile(os.path.join(folder, n))])
    return tuple(os.path.join(folder, n) for n in weights), index and os.path.join(folder, index)


def _no_weights(folder: str) -> AnatomyError:
    return AnatomyError(
        folder,
        "weights (*.safetensors, pytorch_model*.bin, *.gguf, *.pth or *.pt files, or a shard index)",
        "none",
        "point at the folder that holds the weights",
    )


def _check_complete(snapshot: str) -> None:
    """A snapshot of the HF cache may hold only some files (`hf download REPO config.json`,
    or huggingface_hub fetching an index): then the model is read from the Hub instead."""
    from .formats.files import shard_path

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


def ask_early(model: str, revision: str | None) -> Early | None:
    """For the CLI, before its command's modules are imported: the Hub asked early about
    model id MODEL (hub.commit.ask_early), unless the local Hugging Face cache holds it whole
    (that one stays offline). The request sent, or None."""
    if os.path.isdir(os.path.join(hub_cache(), repo_folder(model.partition(":")[0]))):
        try:
            cached_copy(model, revision)
            return None
        except AnatomyError:
            pass
    from .hub import commit

    return commit.ask_early(model, revision)


def resolve(model: str, revision: str | None = None) -> Source:
    """Find the weights and config for MODEL (a local path, a model id, or s3://, gs:// or
    az://BUCKET/PREFIX);
    raise AnatomyError saying what is missing."""
    from .formats.files import Source, choose_quantization, gguf_weights

    if model.startswith(OBJECT_STORES):
        if revision:
            scheme = model[: model.index("://") + 3]
            raise UsageError(
                model, "a model id with --revision", f"an {scheme} address", f"drop --revision for {scheme} models"
            )
        from .hub import s3

        return s3.resolve(model)
    local = os.path.exists(model)
    if local:
        if revision:
            raise UsageError(
                model, "a model id with --revision", "a local path", "drop --revision for local folders and files"
            )
        try:
            mode = os.stat(model).st_mode
        except OSError as exc:
            raise os_error(model, exc, "a model folder or a weights file") from None
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise AnatomyError(
                model, "a model folder or a weights file", kind_of(mode), "pass a model folder or a weights file"
            )
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
        raise AnatomyError(
            model,
            "a model folder, a weights file, or a model id such as meta-llama/Llama-2-7b-chat-hf",
            "no such file or folder",
            "check the path",
        )
    config_file = next(
        (path for path in (os.path.join(folder, n) for n in (CONFIG, ADAPTER_CONFIG)) if os.path.isfile(path)), None
    )
    if local and stat.S_ISREG(mode):
        if os.path.basename(model) in (
            CONFIG,
            ADAPTER_CONFIG,
        ):  # a model studied before its weights are downloaded; an adapter's config
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


def open_catalog(model: str, revision: str | None = None, allow_truncated: bool = False) -> Catalog:
    """The Catalog of MODEL: a folder, a weights file, or a model id (local HF cache, or the Hub)."""
    from .formats import catalog_from_source

    source = resolve(model, revision)
    catalog = catalog_from_source(source, allow_truncated)
    if source.remote is not None:
        source.remote.save()  # the header cache, once every header has been read
    return catalog
