"""Tokenizers and chat templates compared where both sides have one: an HF folder's
tokenizer.json and tokenizer_config.json (and chat_template.jinja), a GGUF's tokenizer.ggml.*
keys and tokenizer.chat_template, read into one form and compared as meaning.

What maps text to other ids is a failure: a token with other text at an id, ids one side lacks,
merges that differ (or, against a sentencepiece GGUF that stores scores instead, an HF merge
whose result is no token or that comes before a merge whose result scores higher), scores that
differ. What leaves the mapping alone but changes how the model is prompted is a warning: a
special token id (bos, eos, pad, unk), an added token the other side treats as ordinary text,
the chat template's text. The pre-tokenizer is not compared: GGUF names it (tokenizer.ggml.pre),
tokenizer.json describes it, and no table relates the two."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from ..core.errors import AnatomyError
from ..core.text import escape

# Caps before reading: the largest real tokenizer.json (Gemma-3's, 262k tokens) is 33 MB;
# configs with inline chat templates a few hundred KB.
MAX_TOKENIZER_BYTES = 64 * 1024 * 1024
MAX_TOKENIZER_VALUES = 1 << 24
MAX_TOKENIZER_CONFIG_BYTES = 16 * 1024 * 1024
MAX_TEMPLATE_BYTES = 4 * 1024 * 1024
MAX_VOCAB = 1 << 21  # tokens or merges of one side held to compare; a GGUF may claim 2^24
SPECIAL = ("bos", "eos", "pad", "unk")
GGUF_SPECIAL = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id", "unk": "unknown_token_id"}
# llama.cpp's token types: UNKNOWN, CONTROL and USER_DEFINED are what HF calls added tokens;
# UNUSED fills the ids past the tokenizer's own up to the embedding's rows.
GGUF_ADDED_TYPES = frozenset({2, 3, 4})
GGUF_UNUSED = 5


@dataclass(frozen=True)
class Tokenizer:
    kind: str  # "hf" or "gguf"
    tokens: dict[int, str]
    merges: tuple[str, ...] | None  # "left right"
    scores: dict[int, float] | None
    special: dict[str, int]
    added: frozenset[int]
    unused: frozenset[int]
    template: str | None


@dataclass(frozen=True)
class TokenizerComparison:
    compared: bool
    failures: tuple[str, ...]
    warnings: tuple[str, ...]
    summary: str  # one line: what was compared, or why not

    @property
    def differences(self) -> tuple[str, ...]:
        return self.failures + self.warnings


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", float(value)))[0]


def _json(path: str, limit: int, values: int | None = None) -> Any:
    from ..io import bounded_json

    return bounded_json.read(
        path, os.path.basename(path), limit, f"fix or re-download {escape(os.path.basename(path))}", values
    )


def _content(token: Any) -> str | None:
    """A special token as tokenizer_config.json states it: a string, or {"content": ...}."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _template(config: dict[str, Any], root: str) -> str | None:
    """chat_template.jinja (transformers 5 saves it beside the config), else the config's own:
    a string, or a list of named templates (the one named default)."""
    path = os.path.join(root, "chat_template.jinja")
    if os.path.isfile(path):
        from ..io.sources import read_capped

        return read_capped(
            path, MAX_TEMPLATE_BYTES, "chat_template.jinja", "fix or re-download chat_template.jinja"
        ).decode("utf-8", "replace")
    template = config.get("chat_template")
    if isinstance(template, list):
        template = next(
            (t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None
        )
    return template if isinstance(template, str) else None


def _merge(merge: Any) -> str:
    return " ".join(merge) if isinstance(merge, list) else str(merge)


def _hf(root: str, model_config: dict[str, Any] | None) -> Tokenizer | None:
    path = os.path.join(root, "tokenizer.json")
    if not os.path.isfile(path):
        return None
    document = _json(path, MAX_TOKENIZER_BYTES, MAX_TOKENIZER_VALUES)
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict):
        raise AnatomyError(path, "a tokenizer.json with a model", "none", "fix or re-download tokenizer.json")
    vocab = model.get("vocab")
    tokens: dict[int, str] = {}
    scores = None
    if isinstance(vocab, dict):
        tokens = {int(i): str(t) for t, i in vocab.items() if isinstance(i, int)}
    elif isinstance(vocab, list):  # Unigram: [piece, score] by id
        entries = [e for e in vocab if isinstance(e, list) and len(e) == 2 and isinstance(e[1], (int, float))]
        tokens = {i: str(e[0]) for i, e in enumerate(entries)}
        scores = {i: _float32(e[1]) for i, e in enumerate(entries)}
    merges = model.get("merges")
    added = [a for a in document.get("added_tokens") or () if isinstance(a, dict) and isinstance(a.get("id"), int)]
    tokens.update({a["id"]: str(a.get("content")) for a in added})
    config_path = os.path.join(root, "tokenizer_config.json")
    config = _json(config_path, MAX_TOKENIZER_CONFIG_BYTES) if os.path.isfile(config_path) else {}
    config = config if isinstance(config, dict) else {}
    by_text = {t: i for i, t in sorted(tokens.items(), reverse=True)}  # the lowest id of a text
    special = {}
    for kind in SPECIAL:
        text = _content(config.get(f"{kind}_token"))
        if text is not None and text in by_text:
            special[kind] = by_text[text]
        elif isinstance((model_config or {}).get(f"{kind}_token_id"), int):
            special[kind] = model_config[f"{kind}_token_id"]
    return Tokenizer(
        "hf",
        tokens,
        tuple(_merge(m) for m in merges) if isinstance(merges, list) else None,
        scores,
        special,
        frozenset(a["id"] for a in added),
        frozenset(),
        _template(config, root),
    )


def _items(metadata: dict[str, Any], key: str) -> list[Any] | None:
    array = metadata.get(key)
    if array is None or not hasattr(array, "iter_items"):
        return None
    if array.item_count > MAX_VOCAB:
        raise AnatomyError(
            key, f"at most {MAX_VOCAB} items to compare", str(array.item_count), "the tokenizer is not compared"
        )
    return list(array.iter_items())


def _gguf(metadata: dict[str, Any]) -> Tokenizer | None:
    tokens = _items(metadata, "tokenizer.ggml.tokens")
    if tokens is None:
        return None
    types = _items(metadata, "tokenizer.ggml.token_type") or []
    scores = _items(metadata, "tokenizer.ggml.scores")
    merges = _items(metadata, "tokenizer.ggml.merges")
    special = {
        kind: metadata[f"tokenizer.ggml.{key}"]
        for kind, key in GGUF_SPECIAL.items()
        if isinstance(metadata.get(f"tokenizer.ggml.{key}"), int)
    }
    template = metadata.get("tokenizer.chat_template")
    return Tokenizer(
        "gguf",
        dict(enumerate(map(str, tokens))),
        tuple(map(str, merges)) if merges is not None else None,
        {i: _float32(s) for i, s in enumerate(scores) if isinstance(s, (int, float))} if scores is not None else None,
        special,
        frozenset(i for i, t in enumerate(types) if t in GGUF_ADDED_TYPES),
        frozenset(i for i, t in enumerate(types) if t == GGUF_UNUSED),
        template if isinstance(template, str) else None,
    )


def read_tokenizer(catalog: Any) -> Tokenizer | None:
    """The catalog's tokenizer, or None when it has none that can be read here (a GGUF without
    tokenizer.ggml.tokens, a folder without tokenizer.json, a remote folder)."""
    from ..io.sources import is_local

    if catalog.format == "gguf":
        return _gguf(dict(catalog.metadata))
    if catalog.root is None or not is_local(catalog.root) or not os.path.isdir(catalog.root):
        return None
    return _hf(catalog.root, catalog.config)


def _first(differing: list[int], what: str, show: Any) -> str:
    first = differing[0]
    many = f"{len(differing)} {what}s differ, the first " if len(differing) > 1 else ""
    return f"tokenizer: {many}{what} {first}: {show(first)}"


def _mapping(a: Tokenizer, b: Tokenizer) -> list[str]:
    failures = []
    common = sorted(a.tokens.keys() & b.tokens.keys())
    texts = [
        i
        for i in common
        if a.tokens[i] != b.tokens[i]
        and not (
            i in a.added and i in b.added and a.tokens[i].replace("\u2581", " ") == b.tokens[i].replace("\u2581", " ")
        )
    ]
    if texts:
        failures.append(
            _first(texts, "token", lambda i: f"{escape(repr(a.tokens[i]))} in A, {escape(repr(b.tokens[i]))} in B")
        )
    for side, x, y in (("A", a, b), ("B", b, a)):
        ids = sorted(x.tokens.keys() - y.tokens.keys() - x.unused)  # a GGUF's padding ids are no tokens
        if ids:
            failures.append(
                f"tokenizer: {len(ids)} token id{'s' if len(ids) > 1 else ''} only in {side} (the first {ids[0]}: {escape(repr(x.tokens[ids[0]]))})"
            )
    if a.merges is not None and b.merges is not None:
        if a.merges != b.merges:
            differing = [i for i, (x, y) in enumerate(zip(a.merges, b.merges)) if x != y]
            if differing:
                failures.append(
                    _first(
                        differing,
                        "merge",
                        lambda i: f"{escape(repr(a.merges[i]))} in A, {escape(repr(b.merges[i]))} in B",
                    )
                )
            if len(a.merges) != len(b.merges):
                failures.append(f"tokenizer: {len(a.merges)} merges in A, {len(b.merges)} in B")
    elif a.scores is not None and b.scores is not None:
        differing = [i for i in common if a.scores.get(i) != b.scores.get(i)]
        if differing:
            failures.append(_first(differing, "score", lambda i: f"{a.scores.get(i)!r} in A, {b.scores.get(i)!r} in B"))
    else:
        for side, merged, scored in (("A", a, b), ("B", b, a)):
            if merged.merges is not None and scored.scores is not None:
                failures += _merges_against_scores(side, merged.merges, scored)
    return failures


def _merges_against_scores(side: str, merges: tuple[str, ...], scored: Tokenizer) -> list[str]:
    """BPE merges made from a sentencepiece model (transformers' converter) against the model's
    scores: each merge makes a token of the other side, and merges run from the highest score
    down (ties in any order)."""
    other = "B" if side == "A" else "A"
    by_text = {t: i for i, t in sorted(scored.tokens.items(), reverse=True)}
    previous = None
    for rank, merge in enumerate(merges):
        product = merge.replace(" ", "", 1)
        if product not in by_text:
            return [
                f"tokenizer: {side}'s merge {rank} ({escape(repr(merge))}) makes {escape(repr(product))}, no token of {other}"
            ]
        score = scored.scores.get(by_text[product]) if scored.scores else None
        if previous is not None and score is not None and score > previous[1]:
            return [
                f"tokenizer: {side}'s merge {rank} ({escape(repr(merge))}) comes after merge {previous[0]} ({escape(repr(merges[previous[0]]))}), but its result scores higher in {other}"
            ]
        if score is not None:
            previous = (rank, score)
    return []


def _prompting(a: Tokenizer, b: Tokenizer) -> list[str]:
    warnings = []
    for kind in SPECIAL:
        if kind in a.special and kind in b.special and a.special[kind] != b.special[kind]:
            warnings.append(f"tokenizer: {kind} token id {a.special[kind]} in A, {b.special[kind]} in B")
    for side, x, y in (("A", a, b), ("B", b, a)):
        if x.kind == "hf" or x.kind == y.kind:  # a GGUF marks more tokens special than HF adds (its byte tokens' kin)
            ordinary = sorted(i for i in x.added - y.added if i in y.tokens)
            if ordinary:
                other = "B" if side == "A" else "A"
                warnings.append(
                    f"tokenizer: {len(ordinary)} added token{'s' if len(ordinary) > 1 else ''} of {side} ordinary in {other} (the first {ordinary[0]}: {escape(repr(x.tokens[ordinary[0]]))})"
                )
    if (a.template is None) != (b.template is None):
        warnings.append(
            f"chat template: in {'A' if a.template is not None else 'B'}, not in {'B' if a.template is not None else 'A'}"
        )
    elif a.template is not None and b.template is not None and a.template != b.template:
        lines_a, lines_b = a.template.splitlines(), b.template.splitlines()
        line = next((i for i, (x, y) in enumerate(zip(lines_a, lines_b)) if x != y), min(len(lines_a), len(lines_b)))
        warnings.append(
            f"chat template: differs from line {line + 1} ({len(a.template)} characters in A, {len(b.template)} in B)"
        )
    return warnings


def compare_tokenizers(catalog_a: Any, catalog_b: Any) -> TokenizerComparison:
    read: list[Tokenizer | None] = []
    for side, catalog in (("A", catalog_a), ("B", catalog_b)):
        try:
            read.append(read_tokenizer(catalog))
        except AnatomyError as exc:
            return TokenizerComparison(
                False, (), (f"tokenizer of {side} unreadable: {exc.line()}",), "tokenizers: not compared"
            )
    a, b = read
    if a is None or b is None:
        missing = " and ".join(side for side, t in (("A", a), ("B", b)) if t is None)
        return TokenizerComparison(
            False,
            (),
            (),
            f"tokenizers: not compared ({missing} {'has' if len(missing) == 1 else 'have'} none read here)",
        )
    failures, warnings = _mapping(a, b), _prompting(a, b)
    how = (
        "merges"
        if a.merges is not None and b.merges is not None
        else "scores"
        if a.scores is not None and b.scores is not None
        else "merges against scores"
        if (a.merges or b.merges)
        else "no merges or scores"
    )
    parts = [
        f"{len(a.tokens)} tokens",
        how,
        "special token ids",
        "chat template" if a.template is not None or b.template is not None else "no chat template",
    ]
    verdict = (
        "the same"
        if not failures and not warnings
        else f"{len(failures) + len(warnings)} difference{'s' if len(failures) + len(warnings) > 1 else ''} (above)"
    )
    return TokenizerComparison(
        True, tuple(failures), tuple(warnings), f"tokenizers and chat templates: {verdict}; compared {', '.join(parts)}"
    )
