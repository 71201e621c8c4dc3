"""The files of a model folder as `scan` sees them: which to read with which check, links
that leave the folder, files no loader expects, code a loader would run, and the index
against the files it names."""

from __future__ import annotations

import json
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ...core.errors import AnatomyError
from ...core.text import escape
from ...formats import gguf, safetensors
from ...formats.signatures import ZIP_MAGIC
from ...formats.torch_zip import MAX_PICKLE_BYTES, _check_directory
from ...io import bounded_json
from ...io.sources import is_local, open_bytes, open_regular, read_prefix
from . import pickles, templates
from .rules import Finding

MAX_FILES = 100_000  # entries walked in one folder
GGUF_MAGIC = b"GGUF"
# What rewrites a terminal when printed: controls but tab, newline and carriage return (which
# descriptions and templates hold), DEL and C1 (0x9b is a one-byte CSI), line separators,
# bidi overrides and isolates.
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TAR_MAGIC, TAR_MAGIC_AT = b"ustar", 257  # POSIX and GNU tars say so in their first header
# Suffixes of files that no model loader reads: native code and scripts.
FOREIGN = {".so", ".dll", ".dylib", ".exe", ".sh", ".bash", ".bat", ".cmd", ".ps1"}
WEIGHTS = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".pkl", ".pickle"}
# The JSON files whose auto_map transformers follows (config, tokenizer, processors).
AUTO_MAP_FILES = {
    "config.json",
    "tokenizer_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "feature_extractor_config.json",
    "image_processor_config.json",
    "video_preprocessor_config.json",
}
TEMPLATE_KEYS = {
    "tokenizer_config.json": "chat_template",
    "chat_template.json": "chat_template",
    "processor_config.json": "chat_template",
}
INDEX_SUFFIX = ".index.json"
SAFETENSORS_NEAR_CAP = safetensors.MAX_HEADER_BYTES * 9 // 10


def _refusal(exc: AnatomyError, path: str) -> tuple[str, str]:
    """(location, message) of a reader's refusal, without the path it starts with."""
    where = exc.where[len(escape(path)) :].lstrip(": ") if exc.where.startswith(escape(path)) else exc.where
    return where or "header", f"expected {exc.expected}, found {exc.found}"


def walk(root: str) -> tuple[list[tuple[str, str]], list[Finding], list[tuple[str, str, str]]]:
    """(relative name, path) of each regular file to read, link findings, and what was skipped.
    Links are not followed out of the folder, nor into folders (os.walk's followlinks=False)."""
    allowed = os.path.realpath(root)
    if os.path.basename(os.path.dirname(allowed)) == "snapshots":
        # A Hugging Face cache snapshot links each file to ../../blobs/: inside the repo's folder.
        allowed = os.path.dirname(os.path.dirname(allowed))
    files, findings, skipped = [], [], []

    def unreadable(error: OSError) -> None:  # os.walk's onerror: a folder it cannot list
        skipped.append(
            (
                os.path.relpath(error.filename or root, root),
                "UNREADABLE",
                escape(f"unreadable: {(error.strerror or str(error)).lower()}"),
            )
        )

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if len(files) + len(skipped) >= MAX_FILES:
                skipped.append((rel, "TOO_MANY_FILES", f"more than {MAX_FILES} files; the rest were not read"))
                return files, findings, skipped
            if os.path.islink(path):
                target = os.path.realpath(path)
                if os.path.commonpath([allowed, target]) != allowed:
                    findings.append(Finding("LA-FILE-002", rel, "link", escape(f"points to {os.readlink(path)}")))
                    skipped.append((rel, "LINK_NOT_FOLLOWED", "a link out of the folder, not followed"))
                    continue
                if not os.path.isfile(target):
                    continue
            elif not os.path.isfile(path):
                continue
            files.append((rel, path))
    return files, findings, skipped


# Why a remote file (an s3:// inventory row) whose checks would read its bytes beyond the
# header already fetched is skipped: a pickle's bytes, the whole of a weights file in time.
PICKLES_NOT_READ = "a pickle in an object store, not read (its checks need the file's bytes: scan a local copy)"


def check_file(rel: str, path: str, out: list[Finding]) -> str | None:
    """Run the checks that fit one file; None when it was read, else why it was skipped. A
    remote file (a SourcedPath) is read through its source: headers and small files only."""
    name = os.path.basename(rel)
    suffix = os.path.splitext(name)[1].lower()
    if suffix in FOREIGN:
        out.append(Finding("LA-FILE-001", rel, "file", f"a {suffix} file"))
        return None
    if suffix == ".py":
        out.append(Finding("LA-CODE-002", rel, "file", "Python source"))
        return None
    if not is_local(path):
        with open_bytes(path) as source:
            head = source.read(0, min(source.size, TAR_MAGIC_AT + len(TAR_MAGIC)), "the first bytes")
        if (
            suffix != ".safetensors"
            and not (suffix == ".gguf" or head.startswith(GGUF_MAGIC))
            and not (name in AUTO_MAP_FILES or name in TEMPLATE_KEYS)
            and not name.endswith(INDEX_SUFFIX)
        ):
            return (
                PICKLES_NOT_READ
                if head.startswith((ZIP_MAGIC, b"\x80")) or head[TAR_MAGIC_AT:] == TAR_MAGIC or suffix in WEIGHTS
                else "no check reads this kind of file"
            )
    else:
        head = read_prefix(path, TAR_MAGIC_AT + len(TAR_MAGIC))
    if suffix == ".safetensors":
        _safetensors(rel, path, out)
    elif suffix == ".gguf" or head.startswith(GGUF_MAGIC):
        _gguf(rel, path, out)
    elif head.startswith(ZIP_MAGIC):
        _zip(rel, path, out)
    elif head[TAR_MAGIC_AT:] == TAR_MAGIC:
        with open_regular(path) as handle:
            pickles.scan_tar(handle, rel, out)
    elif head.startswith(b"\x80") or suffix in (".pkl", ".pickle"):
        pickles.scan_pickles(read_prefix(path, MAX_PICKLE_BYTES), rel, out)
    elif name in AUTO_MAP_FILES or name in TEMPLATE_KEYS:
        _config(rel, path, name, out)
    elif name.endswith(".jinja"):
        _template_file(rel, path, out)
    elif name.endswith(INDEX_SUFFIX):
        pass  # read with the folder (check_index), which knows the other files
    else:
        return "no check reads this kind of file"
    return None


def _zip(rel: str, path: str, out: list[Finding]) -> None:
    try:
        with open_bytes(path) as source:
            _check_directory(source)  # the loader's bounds on the directory, before zipfile reads it
    except AnatomyError as exc:
        out.append(Finding("LA-ZIP-003", rel, "zip directory", _refusal(exc, path)[1]))
        return
    with open_regular(path) as handle:
        pickles.scan_zip(handle, rel, out)


def _safetensors(rel: str, path: str, out: list[Finding]) -> None:
    try:
        header, data_start, size = safetensors.read_header(path)
    except AnatomyError as exc:
        out.append(Finding("LA-FILE-005", rel, *_refusal(exc, path)))
        return
    if data_start - 8 > SAFETENSORS_NEAR_CAP:
        out.append(Finding("LA-ST-005", rel, "header", f"a header of {data_start - 8} bytes"))
    metadata = header.pop("__metadata__", None)
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if TERMINAL_CONTROLS.search(f"{key}{value}"):
                out.append(Finding("LA-ST-006", rel, escape(f"__metadata__.{key}"), escape(f"{str(value)[:80]!r}")))
    spans = []
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            spans.append((offsets[0], offsets[1], name))
    ordered = sorted(spans)
    if [s[2] for s in ordered] != [s[2] for s in spans]:
        out.append(Finding("LA-ST-004", rel, "header", "data offsets in another order than the tensors in the header"))
    previous_end, previous = 0, None
    overlaps = False
    for begin, end, name in ordered:
        if begin < previous_end and end > begin:
            overlaps = True
            out.append(
                Finding(
                    "LA-ST-001",
                    rel,
                    f"tensor {escape(name)}",
                    escape(f"data bytes {begin}..{end} overlap {previous}'s, which end at {previous_end}"),
                )
            )
        elif begin > previous_end:
            out.append(
                Finding(
                    "LA-ST-002",
                    rel,
                    f"tensor {escape(name)}",
                    f"{begin - previous_end} uncovered bytes before it, from data byte {previous_end}",
                )
            )
        if end > previous_end:
            previous_end, previous = end, name
    data_size = size - data_start
    if data_size > previous_end:
        out.append(
            Finding(
                "LA-ST-003",
                rel,
                "end of data",
                f"{data_size - previous_end} bytes after the last tensor's data, from data byte {previous_end}",
            )
        )
    if overlaps:
        return  # the reader's refusal would say the same again
    try:
        safetensors.read_tensors(path)
    except AnatomyError as exc:
        out.append(Finding("LA-FILE-005", rel, *_refusal(exc, path)))


def _gguf(rel: str, path: str, out: list[Finding]) -> None:
    try:
        tensors, metadata = gguf.read_tensors(path)
    except AnatomyError as exc:
        out.append(Finding("LA-FILE-005", rel, *_refusal(exc, path)))
        return
    previous_end, previous = 0, None
    for info in sorted(tensors, key=lambda t: (t.offset, t.nbytes)):
        if info.offset < previous_end and info.nbytes:
            out.append(
                Finding(
                    "LA-GGUF-001",
                    rel,
                    f"tensor {escape(info.name)}",
                    escape(
                        f"bytes {info.offset}..{info.offset + info.nbytes} overlap {previous}'s, which end at {previous_end}"
                    ),
                )
            )
        if info.offset + info.nbytes > previous_end:
            previous_end, previous = info.offset + info.nbytes, info.name
    for key, value in metadata.items():
        if type(value) is str and TERMINAL_CONTROLS.search(
            f"{key}{value}"
        ):  # not ArraySummary or LongString: summaries the reader wrote
            out.append(Finding("LA-GGUF-002", rel, escape(key), escape(f"{value[:80]!r}")))
        if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template."):
            if isinstance(value, gguf.LongString):
                out.append(
                    Finding(
                        "LA-TEMPLATE-004",
                        rel,
                        escape(key),
                        f"a template of more than {gguf.MAX_KEPT_STRING_BYTES} bytes; not rendered",
                    )
                )
            elif isinstance(value, str):
                templates.check(value, rel, escape(key), out)


def _read_json(rel: str, path: str, out: list[Finding]) -> Any:
    try:
        return bounded_json.read(path, "a JSON object", bounded_json.MAX_INDEX_BYTES, "the file is corrupt")
    except AnatomyError as exc:
        out.append(Finding("LA-FILE-005", rel, *_refusal(exc, path)))
        return None


def _compact(value: Any) -> str:
    return escape(json.dumps(value, ensure_ascii=False))[:200]


def _config(rel: str, path: str, name: str, out: list[Finding]) -> None:
    config = _read_json(rel, path, out)
    if not isinstance(config, dict):
        return
    auto_map = config.get("auto_map")
    if name in AUTO_MAP_FILES and isinstance(auto_map, dict):
        for key, value in auto_map.items():
            out.append(Finding("LA-CODE-001", rel, escape(f"auto_map.{key}"), _compact(value)))
    pipelines = config.get("custom_pipelines")
    if name == "config.json" and isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            out.append(Finding("LA-CODE-003", rel, escape(f"custom_pipelines.{task}"), _compact(spec)))
    key = TEMPLATE_KEYS.get(name)
    template = config.get(key) if key else None
    if isinstance(template, str):
        templates.check(template, rel, key, out)
    elif isinstance(template, list):  # [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
        for entry in template:
            if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                templates.check(entry["template"], rel, escape(f"{key}[{entry.get('name')}]"), out)


def _template_file(rel: str, path: str, out: list[Finding]) -> None:
    raw = read_prefix(path, templates.MAX_TEMPLATE_CHARS * 4 + 1)
    templates.check(raw.decode("utf-8", "replace"), rel, "", out)


def check_index(rel: str, path: str, present: set[str], out: list[Finding]) -> None:
    """The shards an index names against the files beside it, both ways."""
    try:
        weight_map = safetensors.read_index(path)
    except AnatomyError as exc:
        out.append(Finding("LA-FILE-005", rel, *_refusal(exc, path)))
        return
    folder = os.path.dirname(rel)
    named = {os.path.join(folder, shard) for shard in weight_map.values()}
    for shard in sorted(named - present):
        out.append(Finding("LA-FILE-003", rel, "weight_map", escape(f"{os.path.basename(shard)} is not in the folder")))
    suffix = os.path.splitext(os.path.basename(rel)[: -len(INDEX_SUFFIX)])[
        1
    ]  # model.safetensors.index.json -> .safetensors
    for other in sorted(present - named):
        if os.path.dirname(other) == folder and other.endswith(suffix) and suffix in WEIGHTS:
            out.append(Finding("LA-FILE-004", other, "file", escape(f"not named by {os.path.basename(rel)}")))
