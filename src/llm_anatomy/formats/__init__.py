"""Pick the reader for each weight file by its content, and build one Catalog."""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any, Callable

from ..io import bounded_json
from ..io.sources import SourcedPath, open_bytes
from ..core.catalog import MAX_TENSORS, Catalog, TensorInfo
from ..core.errors import AnatomyError, CorruptFile
from ..core.ggml_types import GGUF_MAGIC
from ..core.text import escape
from . import safetensors

from .files import Source, shard_path
from .signatures import LEGACY_TORCH_MAGIC, ZIP_MAGIC

# How each format's files begin, and the module under llm_anatomy.formats that reads them.
# Detection is by content, never by file name. A reader module is imported only when one of
# its files is met: the GGUF and torch readers cost ~10 ms to import, as much as all the
# rest of `params` beyond Python's start-up. Each module has read_tensors(path) ->
# (tensors, metadata) and may have check_file_set(paths) for rules about several files.
FORMATS: "tuple[tuple[str, str, Callable[[bytes], bool]], ...]" = (
    ("safetensors", "safetensors", lambda prefix: prefix[8:9] == b"{"),  # u64 header length, then JSON
    ("gguf", "gguf", lambda prefix: prefix.startswith(GGUF_MAGIC)),
    ("torch", "torch_zip", lambda prefix: prefix.startswith((ZIP_MAGIC, LEGACY_TORCH_MAGIC))),
)

# Readers that can also list the tensors of a file cut short, for commands that read
# what is there and report the rest (stats, diff); other formats stay strict.
TRUNCATION_TOLERANT = {"safetensors": lambda path: safetensors.read_tensors(path, allow_truncated=True)}

PREFIX_BYTES = 16


def detect(path: str) -> str:
    """The format of one file, from its first bytes."""
    with open_bytes(path) as source:
        size = source.size
        prefix = source.read(0, min(PREFIX_BYTES, size), "the first bytes")
    for name, _, matches in FORMATS:
        if matches(prefix):
            return name
    formats = ", ".join(name for name, _, _ in FORMATS)
    found = "an empty file" if size == 0 else f"a file starting with {escape(repr(prefix[:8]))}"
    raise AnatomyError(
        path, f"a checkpoint ({formats})", found, "the file is empty, truncated or of an unsupported format"
    )


def reader_module(format_name: str):
    module_name = next(module for name, module, _ in FORMATS if name == format_name)
    return importlib.import_module(f"{__name__}.{module_name}")


def _shard_files(source: Source) -> tuple[list[str], dict[str, str] | None]:
    if source.index_file is None:
        return list(source.weight_files), None
    weight_map = safetensors.read_index(source.index_file)
    remote = source.remote.files if source.remote is not None else {}  # a model on the Hub: its shards' sources
    files = [
        SourcedPath(remote[shard]) if shard in remote else shard_path(source.index_file, source.root, shard)
        for shard in sorted(set(weight_map.values()))
    ]
    return files, weight_map


def catalog_from_source(source: Source, allow_truncated: bool = False) -> Catalog:
    files, weight_map = _shard_files(source)
    tensors: list[TensorInfo] = []
    metadata: dict[str, Any] = {}
    seen: dict[str, str] = {}
    format_of = {path: detect(path) for path in files}
    formats = set(format_of.values())
    for fmt in sorted(formats):
        check_file_set = getattr(reader_module(fmt), "check_file_set", None)
        if check_file_set is not None:
            check_file_set([path for path in files if format_of[path] == fmt])
    for path in files:
        fmt = format_of[path]
        reader = reader_module(fmt).read_tensors
        if allow_truncated:
            reader = TRUNCATION_TOLERANT.get(fmt, reader)
        file_tensors, file_metadata = reader(path)
        for t in file_tensors:
            if t.name in seen:
                raise CorruptFile(
                    path,
                    "each tensor name once",
                    f"{escape(t.name)} also in {seen[t.name]}",
                    "the checkpoint is corrupt",
                )
            seen[t.name] = path
        tensors.extend(file_tensors)
        metadata.update(file_metadata)
        if len(tensors) > MAX_TENSORS:
            raise CorruptFile(
                source.root,
                f"at most {MAX_TENSORS} tensors in one checkpoint",
                f"{len(tensors)} in its first {files.index(path) + 1} files",
                "the checkpoint is corrupt or hostile",
            )
    if weight_map is not None:
        missing = sorted(name for name in weight_map if name not in seen)
        if missing:
            raise AnatomyError(
                source.index_file,
                f"tensor {escape(missing[0])} in {escape(weight_map[missing[0]])}",
                "it is not in that shard",
                "download the shards again",
            )
    config, config_error = (
        bounded_json.read_json_object(source.config_file, "a JSON config") if source.config_file else (None, None)
    )
    if config is None and config_error is None:  # GGUF metadata or Meta's params.json
        from . import derived_config

        config, config_error = derived_config.derive(source.root, files, tensors, metadata, formats)
    return Catalog(
        name=source.name,
        format="+".join(sorted(formats)) or "config",  # config.json alone
        root=source.root,
        files=tuple(files),
        tensors=tuple(tensors),
        config=config,
        config_file=source.config_file,
        config_error=config_error,
        metadata=metadata,
    )
