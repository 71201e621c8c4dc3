"""Which commit of a repository on the Hub a command reads: the Hub's answer to the request
HfApi().model_info sends (commit sha and file list), remembered per branch or tag under the
header cache (refs/REVISION), and for the CLI the request sent early (Early): the Hub asked
on a thread while the command's modules are imported, its answer awaited before the commit
is used.

Apart from hub.py so that the early request, sent before the command's modules are
imported, imports only what sending takes."""

from __future__ import annotations

import os
import threading
from contextvars import ContextVar

from . import settings, http
from ..io.sources import read_capped
from ..core.errors import AnatomyError, HubError
from ..core.text import escape

SMALL_FILE_BYTES = 20 * 1024 * 1024  # config, params.json, a shard index, the model info (larger: refused)
LISTING = ".listing.json"  # in a commit's folder: its headers are cached whole (hub.py)


def repo_cache(repo: str) -> str:
    from ..io.cache_dir import cache_dir, repo_folder

    return os.path.join(cache_dir(), "hub", repo_folder(repo))


class Hub:
    """How to reach one revision of a repository: URLs and request headers as
    huggingface_hub builds them (hub_env), built when the first request is sent."""

    def __init__(self, repo: str, revision: str) -> None:
        self.repo, self.revision = repo, revision
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = settings.headers()
        return self._headers

    def url(self, filename: str) -> str:
        return settings.resolve_url(self.repo, self.revision, filename)


def _info_request(repo: str, revision: str | None) -> http.Request:
    return http.Request(Hub(repo, revision or "main"), url=settings.model_info_url(repo, revision))


def model_info(repo: str, revision: str | None, request: http.Request | None = None) -> tuple[str, list[str]]:
    """(commit sha, file names) of a revision: the one request HfApi().model_info sends,
    with its refusals as one line each and a retry with backoff on 429 and 5xx."""
    raw = (request or _info_request(repo, revision)).get_whole(repo, SMALL_FILE_BYTES)
    from ..io.bounded_json import loads

    info = loads(raw, repo, "the model's description from the Hub (JSON)", "check HF_ENDPOINT")
    try:
        sha, siblings = info["sha"], info.get("siblings") or []
        files = [s["rfilename"] for s in siblings]
    except (TypeError, KeyError, AttributeError):
        raise HubError(
            repo,
            "the model's description from the Hub (its sha and siblings)",
            escape(repr(raw[:60])),
            "check HF_ENDPOINT",
        ) from None
    if not isinstance(sha, str) or not settings.is_commit(sha):
        raise HubError(repo, "a commit sha from the Hub", escape(repr(sha))[:60], "check HF_ENDPOINT")
    if not all(isinstance(f, str) for f in files):
        raise HubError(repo, "file names from the Hub", "something else", "check HF_ENDPOINT")
    return sha, sorted(files)


def _ref_path(base: str, revision: str) -> str:
    return os.path.join(base, "refs", revision.replace("/", "%2F"))


def write_atomic(path: str, data: bytes) -> None:
    """Keep a file of the header cache: the commit's folder is where a model on the Hub is
    read from, so a cache that cannot be written is one line, not a traceback."""
    from ..io.cache_dir import LinkInCache, write_file

    try:
        write_file(path, data)
    except LinkInCache as exc:
        raise AnatomyError(
            exc.link,
            "a folder of llm-anatomy's cache of models on the Hub",
            "a symbolic link",
            "remove the link (llm-anatomy never writes through one in its cache)",
        ) from None
    except OSError as exc:
        raise AnatomyError(
            path,
            "a file llm-anatomy can write in its cache of models on the Hub",
            exc.strerror or type(exc).__name__,
            "set LLM_ANATOMY_CACHE to a writable folder",
        ) from None


def _last_commit(base: str, wanted: str) -> str | None:
    """The commit `wanted` had when the Hub was last asked, if its headers are cached."""
    try:
        sha = read_capped(_ref_path(base, wanted), 100, "a commit sha", "").strip().decode("ascii", "replace")
    except AnatomyError:
        return None
    return sha if settings.is_commit(sha) and os.path.isfile(os.path.join(base, sha, LISTING)) else None


def cached_listing(folder: str) -> list[str] | None:
    """The file list of the commit whose headers folder caches; None when absent or in any
    doubt (too large, nested too deep, not a list of names, not a regular file): a miss."""
    from ..io.bounded_json import read

    try:
        listing = read(os.path.join(folder, LISTING), "a file list", SMALL_FILE_BYTES, "")
    except AnatomyError:
        return None
    return listing if isinstance(listing, list) and all(isinstance(name, str) for name in listing) else None


class Early:
    """The Hub asked on a thread which commit a revision has now (model_info), sent by the CLI
    before it imports the command's modules; commit() joins the thread and uses the answer."""

    def __init__(self, repo: str, revision: str | None, last: str) -> None:
        self.last = last  # the commit the revision had when last asked: its ref is rewritten only if it moved
        self._for: tuple[str, str | None] | None = (repo, revision)  # None once commit() has taken it
        self._answer: tuple[str, list[str]] | None = None
        self._error: BaseException | None = None
        # The request is made ready here: on the thread, each file read (the token, the
        # modules imported) would wait for the GIL the command holds, up to 5 ms a time.
        request = _info_request(repo, revision)
        _ = request.hub.headers
        http.import_sender()
        self._thread = threading.Thread(
            target=self._ask, args=(repo, revision, request), daemon=True
        )  # a command that fails first need not wait
        self._thread.start()

    def _ask(self, repo: str, revision: str | None, request: http.Request) -> None:
        try:
            self._answer = model_info(repo, revision, request)
        except BaseException as exc:  # raised where the answer is awaited, as the request would have raised it
            self._error = exc

    def take(self, repo: str, revision: str | None) -> bool:
        """True the first time the command asks for this repo and revision: the answer is for it."""
        if self._for != (repo, revision):
            return False
        self._for = None
        return True

    def answer(self) -> tuple[str, list[str]]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer


# The request the CLI sent early, for the length of the command it runs (the CLI sets it
# around the command: a context variable, so no other command or library call sees it);
# commit() takes it for the repo and revision it was sent for.
EARLY: ContextVar[Early | None] = ContextVar("llm_anatomy_early_commit", default=None)


def ask_early(model: str, revision: str | None) -> Early | None:
    """Send MODEL's model_info request before the command line is parsed (the CLI sees the
    model id first): only for an id read from the Hub before, on a revision that is a name
    and no commit, online (locate.ask_early has found it is not held by the local Hugging
    Face cache, which stays offline). The request sent, or None."""
    repo, _, _ = model.partition(":")
    if settings.offline() or settings.is_commit(revision or "") or not settings.valid_revision(revision or "main"):
        return None  # a revision that is no name is refused before any request, where the command resolves it
    last = _last_commit(repo_cache(repo), revision or "main")
    if last is None:
        return None
    try:
        return Early(repo, revision, last)
    except AnatomyError:
        return None  # an unreadable token, say: said in its place, when the command asks the Hub itself


def commit(repo: str, revision: str | None, cache_error: AnatomyError) -> tuple[str, list[str], bool]:
    """(the commit to read, its file list, whether the header cache lacks that list): from
    the header cache for a commit it holds or offline, else from the Hub (the answer to the
    request the CLI sent early, if it sent one). Offline, a miss raises cache_error."""
    base, wanted = repo_cache(repo), revision or "main"
    if settings.is_commit(wanted):
        listing = cached_listing(os.path.join(base, wanted))
        if listing is not None:
            return wanted, listing, False
    if settings.offline():
        sha = _last_commit(base, wanted)
        listing = None if sha is None else cached_listing(os.path.join(base, sha))
        if sha is None or listing is None:
            raise cache_error
        return sha, listing, False
    early = EARLY.get()
    if early is not None and not early.take(repo, revision):
        early = None
    sha, files = early.answer() if early is not None else model_info(repo, revision)
    if early is None or sha != early.last:
        write_atomic(_ref_path(base, wanted), sha.encode())
    return sha, files, cached_listing(os.path.join(base, sha)) != files
