"""The model repositories of a Hub user or organisation, as HfApi().list_models(author=NAME,
full=True) lists them: `GET /api/models?author=NAME&full=true`, then each next page at the
URL of the answer's `Link: <...>; rel="next"` header (huggingface_hub's utils/_pagination.py
follows the same header), streamed a page at a time. The token goes with each page, so a
next page is followed only on the endpoint's own scheme, host and port."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterator

from ..core.errors import AnatomyError, UsageError
from ..core.text import escape

MAX_PAGES = 10_000  # the Hub's pages hold 1,000 models: ten million, past any author
PAGE_BYTES = 64 * 1024 * 1024  # a page of 1,000 full entries (siblings listed) is a few MB
# A user or organisation name as the Hub allows them; anything else is refused before a request.
AUTHOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
# <URL>; rel="next" among the Link header's comma-separated links (RFC 8288, as requests parses it)
NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?')


def check_author(author: str) -> None:
    if not AUTHOR.fullmatch(author) or ".." in author:
        raise UsageError(
            escape(author),
            "a Hub user or organisation name",
            "another string",
            "pass --author NAME, e.g. --author Qwen",
        )


def next_page(link: str | None) -> str | None:
    found = NEXT.search(link or "")
    return found[1] if found else None


def _same_origin(url: str, endpoint: str) -> bool:
    from urllib.parse import urlsplit

    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def models_of(author: str) -> Iterator[tuple[str, str]]:
    """(repo id, commit sha or "") of each model of author, a page at a time."""
    from urllib.parse import quote

    from ..io.bounded_json import loads
    from . import http, settings
    from .commit import Hub

    check_author(author)
    endpoint = settings.model_info_url("x", None).rpartition("/api/models/")[0]
    url: str | None = f"{endpoint}/api/models?author={quote(author, safe='')}&full=true"
    where = f"hf author {author}"
    for _ in range(MAX_PAGES):
        if url is None:
            return
        if not _same_origin(url, endpoint):
            raise AnatomyError(where, "a next page on the Hub's own address", escape(url)[:120], "check HF_ENDPOINT")
        request = http.Request(Hub(author, "main"), url=url)
        page = loads(
            request.get_whole(where, PAGE_BYTES), where, "a page of the Hub's model list (JSON)", "check HF_ENDPOINT"
        )
        if not isinstance(page, list):
            raise AnatomyError(where, "a list of models from the Hub", type(page).__name__, "check HF_ENDPOINT")
        for entry in page:
            repo = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(repo, str):
                raise AnatomyError(where, "a model id in each entry of the list", "none", "check HF_ENDPOINT")
            sha = entry.get("sha")
            yield repo, sha if isinstance(sha, str) and settings.is_commit(sha) else ""
        url = next_page(request.answer_headers.get("link"))
    raise AnatomyError(where, f"at most {MAX_PAGES} pages of models", "more", "list fewer models")
