"""Which commit of a repository on the Hub a command reads: the Hub's answer to the request
HfApi().model_info sends (commit sha and file list), remembered per branch or tag under the
header cache (refs/REVISION), and for the CLI the early check (speculation.py): the Hub asked
on a thread while the command goes ahead from the commit last seen.

Apart from hub.py so that the early check, sent before the command's modules are imported,
imports only what sending takes."""

from __future__ import annotations

import os
import re
import threading

from . import hub_env, remote, speculation
from .byte_io import read_capped
from .errors import AnatomyError
from .safe_text import escape

SMALL_FILE_BYTES = 20 * 1024 * 1024  # config, params.json, a shard index, the model info (larger: refused)
SHA = re.compile(r"^[0-9a-f]{40}$")
LISTING = ".listing.json"  # in a commit's folder: its headers are cached whole (hub.py)


def repo_cache(repo: str) -> str:
    from .cache_folder import cache_dir

    return os.path.join(cache_dir(), "hub", "models--" + repo.replace("/", "--"))


class Hub:
    """How to reach one revision of a repository: URLs and request headers as
    huggingface_hub builds them (hub_env), built when the first request is sent. check:
    the Check a guessed commit waits on; remote.py confirms it before sending a request."""

    def __init__(self, repo: str, revision: str, check: Check | None = None) -> None:
        self.repo, self.revision, self.check = repo, revision, check
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = hub_env.headers()
        return self._headers

    def url(self, filename: str) -> str:
        return hub_env.resolve_url(self.repo, self.revision, filename)


def _info_request(repo: str, revision: str | None) -> remote.Request:
    return remote.Request(Hub(repo, revision or "main"), url=hub_env.model_info_url(repo, revision))


def model_info(repo: str, revision: str | None, request: remote.Request | None = None) -> tuple[str, list[str]]:
    """(commit sha, file names) of a revision: the one request HfApi().model_info sends,
    with its refusals as one line each and a retry with backoff on 429 and 5xx."""
    raw = (request or _info_request(repo, revision)).get_whole(repo, SMALL_FILE_BYTES)
    from .bounded_json import loads

    info = loads(raw, repo, "the model's description from the Hub (JSON)", "check HF_ENDPOINT")
    try:
        sha, siblings = info["sha"], info.get("siblings") or []
        files = [s["rfilename"] for s in siblings]
    except (TypeError, KeyError, AttributeError):
        raise AnatomyError(repo, "the model's description from the Hub (its sha and siblings)", escape(repr(raw[:60])), "check HF_ENDPOINT") from None
    if not isinstance(sha, str) or not SHA.match(sha):
        raise AnatomyError(repo, "a commit sha from the Hub", escape(repr(sha))[:60], "check HF_ENDPOINT")
    if not all(isinstance(f, str) for f in files):
        raise AnatomyError(repo, "file names from the Hub", "something else", "check HF_ENDPOINT")
    return sha, sorted(files)


def _ref_path(base: str, revision: str) -> str:
    return os.path.join(base, "refs", revision.replace("/", "%2F"))


def write_atomic(path: str, data: bytes) -> None:
    """Keep a file of the header cache: the commit's folder is where a model on the Hub is
    read from, so a cache that cannot be written is one line, not a traceback."""
    from .cache_folder import write_file

    try:
        write_file(path, data)
    except OSError as exc:
        raise AnatomyError(path, "a file llm-anatomy can write in its cache of models on the Hub", exc.strerror or type(exc).__name__, "set LLM_ANATOMY_CACHE to a writable folder") from None


def _last_commit(base: str, wanted: str) -> str | None:
    """The commit `wanted` had when the Hub was last asked, if its headers are cached."""
    try:
        sha = read_capped(_ref_path(base, wanted), 100, "a commit sha", "").strip().decode("ascii", "replace")
    except AnatomyError:
        return None
    return sha if SHA.match(sha) and os.path.isfile(os.path.join(base, sha, LISTING)) else None


class Check:
    """The Hub asked on a thread which commit a revision has now (model_info), while the
    command goes on from `guess`, the commit it had when last asked (see speculation.py)."""

    def __init__(self, repo: str, revision: str | None, guess: str) -> None:
        self.repo, self.revision, self.guess = repo, revision, guess
        self.confirmed = False  # the answer is in and was checked against the guess
        self._answer: tuple[str, list[str]] | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        # The request is made ready here: on the thread, each file read (the token, the
        # modules imported) would wait for the GIL the command holds, up to 5 ms a time.
        self._request = _info_request(repo, revision)
        self._request.hub.headers
        remote.import_sender()
        self._thread = threading.Thread(target=self._ask, daemon=True)  # a command that fails first need not wait
        self._thread.start()

    def _ask(self) -> None:
        try:
            self._answer = model_info(self.repo, self.revision, self._request)
        except BaseException as exc:  # raised where the answer is awaited, as it would have been
            self._error = exc

    def confirm(self) -> None:
        """Wait for the answer: the Hub's refusal raised, Stale if the revision moved."""
        with self._lock:
            self._thread.join()
            if not self.confirmed:
                self.confirmed = True
                if self._answer is not None:
                    speculation.answers[(self.repo, self.revision)] = self._answer
                    if self._answer[0] != self.guess:
                        write_atomic(_ref_path(repo_cache(self.repo), self.revision or "main"), self._answer[0].encode())
        if self._error is not None:
            raise self._error
        if self._answer is not None and self._answer[0] != self.guess:
            raise speculation.Stale(self.repo)


def ask_early(model: str, revision: str | None) -> None:
    """Start the check of MODEL before the command line is parsed (the CLI sees the model
    id first): only for an id read from the Hub before, on a revision that is no commit,
    online, and not held by the local Hugging Face cache (that one stays offline)."""
    repo, _, _ = model.partition(":")
    key = (repo, revision)
    if not speculation.enabled or key in speculation.started or hub_env.offline() or SHA.match(revision or ""):
        return
    guess = _last_commit(repo_cache(repo), revision or "main")
    if guess is None:
        return
    if os.path.isdir(os.path.join(hub_env.hub_cache(), "models--" + repo.replace("/", "--"))):
        from .source import cached_copy

        try:
            cached_copy(model, revision)
            return
        except AnatomyError:
            pass
    try:
        speculation.started[key] = Check(repo, revision, guess)
    except AnatomyError:
        pass  # an unreadable token, say: said in its place, when the command asks the Hub itself


def commit(repo: str, revision: str | None, cache_error: AnatomyError) -> tuple[str, list[str] | None, Check | None]:
    """The commit to read, the file list when the Hub was asked for it, and the Check the
    commit is a guess of (the CLI goes ahead from the commit last seen: speculation.py)."""
    base, wanted = repo_cache(repo), revision or "main"
    if SHA.match(wanted) and os.path.isfile(os.path.join(base, wanted, LISTING)):
        return wanted, None, None
    if hub_env.offline():
        sha = _last_commit(base, wanted)
        if sha is None:
            raise cache_error
        return sha, None, None
    key = (repo, revision)
    answer = speculation.answers.get(key)
    if answer is None and speculation.enabled:
        check = speculation.started.get(key)
        guess = None if check is not None else _last_commit(base, wanted)
        if guess is not None:
            check = speculation.started[key] = Check(repo, revision, guess)
        if check is not None:
            if check not in speculation.used:
                speculation.used.append(check)
            return check.guess, None, check
    if answer is None:
        answer = model_info(repo, revision)
        write_atomic(_ref_path(base, wanted), answer[0].encode())
    return answer[0], answer[1], None
