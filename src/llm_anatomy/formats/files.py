"""Which files of a model folder or repository hold the weights: the folder layouts in order
of preference, a GGUF repository's quantizations, where a shard an index names may lie, and
the Source record that names a model's files. Rules, applied by locate to a folder or the
local Hugging Face cache and by hub.snapshot to a repository's file list."""

from __future__ import annotations

import fnmatch
import os  # os.path, not pathlib: importing pathlib costs more than reading a 7B model's headers
import re
from collections import namedtuple

from ..core.errors import AnatomyError, UsageError
from ..core.text import escape
from ..io.sources import is_local, what_is_at

# Weight layouts in a model folder, most preferred first: an index file that names the
# shards, or a glob of weight files (every matching file).
FOLDER_LAYOUTS: tuple[tuple[str | None, str | None], ...] = (
    ("model.safetensors.index.json", None),
    (None, "*.safetensors"),
    ("pytorch_model.bin.index.json", None),
    (None, "pytorch_model*.bin"),  # not *.bin: training_args.bin is a pickled object, not weights
    (None, "adapter_model.bin"),  # a PEFT adapter saved with safe_serialization=False
    (None, "*.gguf"),
    (None, "consolidated.*.pth"),
    (None, "*.pth"),
    (None, "*.pt"),
)


SPLIT_SUFFIX = re.compile(r"-(\d{5})-of-(\d{5})$")  # llama.cpp's gguf-split names, before .gguf


class Source(namedtuple("Source", "name root weight_files index_file config_file remote", defaults=(None,))):
    """name: what to call the model in output; root: the folder holding the files;
    weight_files: the weights (empty when index_file names the shards, or for config.json alone); index_file and
    config_file: their paths or None; remote: for a model on the Hub, hub.Snapshot (its
    save() keeps the headers read). (A named tuple rather than a dataclass: see catalog.py.)"""

    __slots__ = ()


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
            raise UsageError(
                f"{repo}:{quant}",
                "a quantization the repository has",
                escape(", ".join(tags)),
                f"pick one, e.g. {repo}:{tags[0]}" if tags else "",
            )
        return chosen
    if len(tags) > 1 or len(files) > 1 and not all(SPLIT_SUFFIX.search(f[: -len(".gguf")]) for f in files):
        raise UsageError(
            repo,
            "one quantization (repo:QUANT)",
            f"{len(tags)}: {escape(', '.join(tags))}",
            f"pick one, e.g. {repo}:{tags[0]}",
        )
    return files


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
        todo = (
            "download the missing shard"
            if found == "no such file"
            else "put the shard file in its place, or download it again"
        )
        raise AnatomyError(index_file, f"shard {escape(shard)} named by the index", found, todo)
    allowed, target = _allowed_folder(root), os.path.realpath(path)
    if os.path.commonpath([allowed, target]) != allowed:
        raise AnatomyError(
            index_file,
            f"shard {escape(shard)} named by the index inside the model folder",
            f"a link to {escape(target)}",
            "copy the shard into the model folder",
        )
    return path
