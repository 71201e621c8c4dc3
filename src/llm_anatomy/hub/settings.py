"""Where the Hub is and what to send it (endpoint, token, user agent), read from the
environment as huggingface_hub's constants module and get_token() read it (tests hold the
two equal), without importing huggingface_hub's HTTP stack.

Why not call huggingface_hub.utils.build_hf_headers: importing it costs about 0.4 s, and
even its constants module 10 ms (typing, pathlib), against the one request a cached call
on a branch sends. The rare cases are left to huggingface_hub itself, imported only then:
its staging mode, and the token sources that do more than read (CI's OIDC exchange, a
browser login's token that may need refreshing, Colab's secrets)."""

from __future__ import annotations

import os
import re
import sys

DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = ("1", "ON", "YES", "TRUE")
TOKEN_FILE_BYTES = 64 * 1024  # a token is ~40 characters; a browser login's a few hundred
STORED_TOKENS_BYTES = 1024 * 1024  # every token `hf auth login` stored, by name
RELOGIN = "`hf auth login` again, or set HF_TOKEN"


def _true(name: str) -> bool:
    return os.environ.get(name, "").upper() in TRUE


def _path(value: str) -> str:
    return os.path.expandvars(os.path.expanduser(value))


class _Settings:
    """The constants huggingface_hub derives from the environment at import."""

    def __init__(self) -> None:
        if _true("HUGGINGFACE_CO_STAGING"):  # huggingface_hub's own tests: its constants know where
            from huggingface_hub import constants

            self.endpoint, self.token_path = constants.ENDPOINT, constants.HF_TOKEN_PATH
        else:
            self.endpoint = os.getenv("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
            self.token_path = _path(os.getenv("HF_TOKEN_PATH", os.path.join(_hf_home(), "token")))
        self.stored_tokens_path = os.path.join(os.path.dirname(self.token_path), "stored_tokens")
        self.disable_implicit_token = _true("HF_HUB_DISABLE_IMPLICIT_TOKEN")
        self.user_agent_origin = os.environ.get("HF_HUB_USER_AGENT_ORIGIN")


def _hf_home() -> str:
    cache = os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return _path(os.getenv("HF_HOME", os.path.join(cache, "huggingface")))


def hub_cache() -> str:
    """The Hugging Face cache folder: HF_HUB_CACHE, the legacy HUGGINGFACE_HUB_CACHE, else
    HF_HOME/hub, with ~ and $VARS expanded (staging mode does not move it)."""
    return _path(os.getenv("HF_HUB_CACHE", os.getenv("HUGGINGFACE_HUB_CACHE", os.path.join(_hf_home(), "hub"))))


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), as huggingface_hub's constants read it."""
    return (os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or "").upper() in TRUE


# A commit as the Hub names it: 40 lower-case hex digits, and nothing after them (fullmatch:
# `$` would let a final newline through, into a cache folder's name and the URLs).
COMMIT = re.compile(r"[0-9a-f]{40}")
# What git check-ref-format refuses in a branch or tag name (the Hub's are git refs): control
# characters, space, ~ ^ : ? * [ \, "..", "@{", "//", a component that starts with "." or
# ends in ".lock", a leading or trailing "/", a trailing ".", and "@" alone.
BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|(\A|/)\.|\.lock(/|\Z)|\A/|/\Z|\.\Z|\A@\Z")


def is_commit(text: str) -> bool:
    return COMMIT.fullmatch(text) is not None


def valid_revision(text: str) -> bool:
    """Whether text can name a branch, tag or commit (refs/pr/1 included): checked before
    it reaches a URL or a file name under refs/, as the Hub itself refuses the others."""
    return bool(text) and BAD_REF.search(text) is None


def resolve_url(repo: str, revision: str, filename: str) -> str:
    """huggingface_hub's hf_hub_url(repo, filename, revision=revision) for a model repo."""
    from urllib.parse import quote

    return f"{_Settings().endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


def model_info_url(repo: str, revision: str | None) -> str:
    """The URL HfApi().model_info(repo, revision=revision) asks."""
    from urllib.parse import quote

    base = f"{_Settings().endpoint}/api/models/{repo}"
    return base if revision is None else f"{base}/revision/{quote(revision, safe='')}"


def _clean(token: str | None) -> str | None:
    return None if token is None else token.replace("\r", "").replace("\n", "").strip() or None


def _in_colab() -> bool:
    import builtins

    shell = getattr(builtins, "get_ipython", None)
    return (
        shell is not None and "google.colab" in str(shell()) and os.environ.get("VERTEX_PRODUCT") != "COLAB_ENTERPRISE"
    )


def _huggingface_hub_token() -> str | None:
    from huggingface_hub.utils import get_token

    return get_token()


def token() -> str | None:
    """huggingface_hub's get_token(): HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), then the token
    file `hf auth login` writes; huggingface_hub itself where it would do more than read."""
    settings = _Settings()
    if os.environ.get("HF_OIDC_RESOURCE"):
        return _huggingface_hub_token()
    found = _clean(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    if found is not None:
        return found
    from ..io.sources import read_capped
    from ..core.errors import AnatomyError

    # huggingface_hub reads the file whole, whatever it is (a fifo: it waits for a writer
    # forever): here a regular file of at most TOKEN_FILE_BYTES, else one line.
    if os.path.exists(settings.token_path):
        try:
            text = read_capped(settings.token_path, TOKEN_FILE_BYTES, "a token file", RELOGIN).decode("utf-8")
        except AnatomyError as exc:
            raise AnatomyError(settings.token_path, exc.expected, exc.found, RELOGIN) from None
        except UnicodeDecodeError:
            raise AnatomyError(
                settings.token_path, "a readable token file", "bytes that are not UTF-8", RELOGIN
            ) from None
        found = _clean(text)
    if found is not None:
        try:  # beside the token file, written by the same login: read as warily, any doubt is no refresh
            refreshable = b"refresh_token" in read_capped(settings.stored_tokens_path, STORED_TOKENS_BYTES, "", "")
        except AnatomyError:
            refreshable = False
        return _huggingface_hub_token() if refreshable else found  # a browser login's token may be due for refresh
    return _huggingface_hub_token() if _in_colab() else None


def user_agent() -> str:
    """Shaped as huggingface_hub's (library/version; python/version; origin/HF_HUB_USER_AGENT_ORIGIN),
    naming this library; not huggingface_hub, which sends none of these requests."""
    from .._version import __version__

    agent = f"llm-anatomy/{__version__}; python/{sys.version.split()[0]}"
    origin = _Settings().user_agent_origin
    return agent if origin is None else f"{agent}; origin/{origin}"


def headers() -> dict[str, str]:
    """build_hf_headers(): the user agent, and the token unless HF_HUB_DISABLE_IMPLICIT_TOKEN."""
    sent = {"user-agent": user_agent()}
    found = None if _Settings().disable_implicit_token else token()
    if found is not None:
        sent["authorization"] = f"Bearer {found}"
    return sent
