"""Turn what the user typed (a folder, a file, or a model id in the local Hugging Face
cache) into the files that hold the weights and config. Never touches the network."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import AnatomyError, UsageError

# Weight layouts in a model folder, most preferred first: (index file, glob of weight files).
# The index file, when present, names the shards; otherwise every file matching the glob.
FOLDER_LAYOUTS: tuple[tuple[str | None, str], ...] = (
    ("model.safetensors.index.json", "*.safetensors"),
    (None, "*.safetensors"),
)

MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Source:
    name: str  # what to call the model in output
    root: str  # folder holding the files
    weight_files: tuple[str, ...]
    index_file: str | None
    config_file: str | None


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(hf_home) / "hub"


def _cached_snapshot(model_id: str, revision: str | None) -> Path:
    cache = hub_cache_dir()
    repo_dir = cache / ("models--" + model_id.replace("/", "--"))
    download = f"download it with `hf download {model_id}" + (f" --revision {revision}" if revision else "") + "`"
    if not repo_dir.is_dir():
        raise AnatomyError(model_id, f"a model folder, a weights file, or a model in the local Hugging Face cache ({cache})", "none of these", download)
    wanted = revision or "main"
    ref = repo_dir / "refs" / wanted
    commit = ref.read_text().strip() if ref.is_file() else wanted
    if "/" in commit or commit in ("", ".", ".."):
        raise AnatomyError(ref, "a commit hash", repr(commit), "the cache is damaged; download the model again")
    snapshot = repo_dir / "snapshots" / commit
    if not snapshot.is_dir():
        raise AnatomyError(model_id, f"revision {wanted!r} in the local Hugging Face cache ({repo_dir})", "no such snapshot", download)
    return snapshot


def _weights_in_folder(folder: Path) -> tuple[tuple[str, ...], str | None]:
    for index_name, pattern in FOLDER_LAYOUTS:
        if index_name is not None:
            index = folder / index_name
            if index.is_file():
                return (), str(index)
        else:
            files = sorted(str(p) for p in folder.glob(pattern) if p.is_file())
            if files:
                return tuple(files), None
    return (), None


def resolve(model: str, revision: str | None = None) -> Source:
    """Find the weights and config for MODEL; raise AnatomyError saying what is missing."""
    path = Path(model)
    if path.exists():
        if revision:
            raise UsageError(model, "a model id with --revision", "a local path", "drop --revision for local folders and files")
        folder = path if path.is_dir() else path.parent
    elif MODEL_ID.match(model) and "/" in model:
        folder = _cached_snapshot(model, revision)
    else:
        raise AnatomyError(model, "a model folder, a weights file, or a model id such as meta-llama/Llama-2-7b-chat-hf", "no such file or folder", "check the path")
    config = folder / "config.json"
    config_file = str(config) if config.is_file() else None
    if path.exists() and path.is_file():
        return Source(path.name, str(folder), (str(path),), None, config_file)
    weights, index = _weights_in_folder(folder)
    if not weights and index is None:
        raise AnatomyError(folder, "weights (model.safetensors, shards with model.safetensors.index.json, or other *.safetensors files)", "none", "point at the folder that holds the weights")
    name = model if not path.exists() else (path.resolve().name or model)
    return Source(name, str(folder), weights, index, config_file)
