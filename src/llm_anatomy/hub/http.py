"""What the project asks of the Hub over HTTP and what it accepts (the transport is
http_transport.py, on the standard library's http.client): GET requests for one file of a
repository, each with one Range header (S3-backed CDNs answer a multi-range request with the
whole object), kept across the Hub's redirect to the CDN; the answer checked (a 200 for a
ranged request is the whole file: refused unread; Content-Range and the body's length held
to the request); retries with backoff on 429, 5xx and dropped connections, honouring
Retry-After; at most MAX_REDIRECTS redirects, to http(s) only, and the token (Authorization)
sent only where the first address's origin stays (httpx's rule); the Hub's refusals as one
line each."""

from __future__ import annotations

import re
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

from ..core.errors import AnatomyError, GatedRepo, HubError, RepoNotFound, RevisionNotFound
from ..core.text import escape

HEAD_BYTES = 100_000  # the first range of each weight file: most safetensors headers fit
RETRY_DELAYS = (0.5, 1.0, 2.0)  # backoff on 429, 5xx and dropped connections
MAX_RETRY_AFTER_SECONDS = 30.0  # a Retry-After longer than this is waited this long
MAX_REDIRECTS = 5
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
DRAIN_BYTES = 64 * 1024  # an error's or redirect's body up to this is read to keep the connection
_CONTENT_RANGE = "bytes {}-{}/{}"
# A number in a header: ASCII digits only (int() also takes signs, "_" and other scripts'
# digits), at most 19 of them (int() refuses 4,300 and more; sizes fit in 63 bits).
_NUMBER = re.compile(r"[0-9]{1,19}")
sleep = time.sleep  # the tests count the waits instead of sleeping through them


class Stats:
    """Requests sent and body bytes received in this process (the bench and tests read them)."""

    requests = 0
    bytes = 0
    _lock = threading.Lock()

    @classmethod
    def add(cls, requests: int = 0, nbytes: int = 0) -> None:
        with cls._lock:
            cls.requests += requests
            cls.bytes += nbytes


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and _NUMBER.fullmatch(text) else None


def _shown(text: str | None, limit: int = 40) -> str:
    """A header's value for a message: escaped, and cut if long."""
    text = str(text)
    return escape(text[:limit]) + ("..." if len(text) > limit else "")


def import_sender() -> None:
    """Import what sending a request takes."""
    from . import transport as http_transport  # noqa: F401
    import urllib.parse  # noqa: F401


INVALID_TOKEN = "Invalid credentials in Authorization header"  # the Hub's X-Error-Message for a bad token


def status_error(hub: Any, name: str, status: int, error_code: str | None, error_message: str | None) -> AnatomyError:
    """A refusal as one line, told apart by the X-Error-Code and X-Error-Message headers as
    huggingface_hub's hf_raise_for_status tells them apart."""
    if error_code == "GatedRepo":
        return gated(hub.repo)
    if error_code == "RevisionNotFound":
        return not_found(hub.repo, hub.revision)
    if status == 401 and error_message == INVALID_TOKEN:
        return HubError(
            hub.repo,
            "a token the Hub accepts",
            "invalid credentials (HTTP 401)",
            "`hf auth login` again, or fix HF_TOKEN",
        )
    if status == 401 or error_code == "RepoNotFound":
        return not_found(hub.repo)
    if status == 404:
        return HubError(
            name, "a file the repository lists", "HTTP 404 (no such file)", "the repository changed; try again"
        )
    if status == 403:
        return HubError(
            hub.repo, "read access", "HTTP 403 (forbidden)", "check your token's permissions (`hf auth whoami`)"
        )
    return HubError(name, "a successful HTTP answer", f"HTTP {status}", "try again later")


def _unsatisfiable_size(content_range: str | None) -> int | None:
    """N of a 416 answer's 'bytes */N': the file is shorter than the range asked."""
    unit, _, span = (content_range or "").partition(" ")
    return _number(span.removeprefix("*/")) if unit == "bytes" and span.startswith("*/") else None


def gated(repo: str) -> AnatomyError:
    return GatedRepo(
        repo,
        "a model you may read",
        "a gated model",
        "accept its license on the model page, then `hf auth login` or set HF_TOKEN",
    )


def not_found(repo: str, revision: str | None = None) -> AnatomyError:
    what = f"revision {revision!r} of a model on the Hub" if revision else "a model on the Hub"
    return (RevisionNotFound if revision else RepoNotFound)(
        repo,
        what,
        "not found, or private/gated and you are not logged in",
        "check the name, or `hf auth login` / set HF_TOKEN",
    )


class _Address:
    """A URL split as a request needs it: scheme (http or https), host, port, and the target
    (path and query); anything else is one line, never urllib's ValueError."""

    def __init__(self, url: str, name: str, what: str) -> None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            self.scheme, self.host, port = parts.scheme.lower(), parts.hostname or "", parts.port
        except ValueError:
            raise AnatomyError(name, what, _shown(repr(url), 80), "check HF_ENDPOINT") from None
        if self.scheme not in ("http", "https") or not self.host:
            raise AnatomyError(name, what, _shown(repr(url), 80), "check HF_ENDPOINT")
        self.port = port if port is not None else 443 if self.scheme == "https" else 80
        self.url = url
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def keeps_authorization(self, to: _Address) -> bool:
        """Whether a redirect from here to `to` may carry the token: to the same origin
        (scheme, host, port), or from http to https on the same host (httpx's rule, for
        ports 80 to 443, and the same port kept); never https to http, another host or port."""
        if self.host != to.host:
            return False
        if self.scheme == to.scheme:
            return self.port == to.port
        return (
            self.scheme == "http"
            and to.scheme == "https"
            and (self.port == to.port or (self.port, to.port) == (80, 443))
        )


def _check_headers(name: str, target: str, headers: dict[str, str]) -> None:
    """A request's head, refused if a line break or NUL would split it (from HF_TOKEN, say),
    or if it does not fit in Latin-1 (as http.client encodes headers)."""
    if " " in target:
        raise AnatomyError(
            name, "a request without spaces in its address", _shown(repr(target), 60), "check HF_ENDPOINT"
        )
    texts = [target, *headers, *headers.values()]
    if any(bad in text for text in texts for bad in "\r\n\0"):
        raise AnatomyError(
            name,
            "a request without line breaks in its address or headers",
            "one",
            "check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN",
        )
    try:
        for text in texts:
            text.encode("latin-1")
    except UnicodeEncodeError:
        raise AnatomyError(
            name,
            "a request in Latin-1 characters",
            "other characters",
            "check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN",
        ) from None


class Request:
    """Requests for one file of a repository (hub.url(filename)), or for url; hub.headers
    and the URL are built when the first request is sent (the header cache needs neither).
    The address the Hub redirected to (the CDN's) is remembered and asked directly next
    time, with the token only if every redirect on the way kept it."""

    def __init__(self, hub: Any, filename: str | None = None, url: str | None = None) -> None:
        self.hub, self.filename, self.url = hub, filename, url
        self.final: tuple[str, bool] | None = None  # (the URL redirected to, whether it gets the token)
        self.answer_headers: dict[str, str] = {}  # the last answer's, names in lower case

    def get(self, name: str, start: int, end: int) -> tuple[bytes, int]:
        """Bytes start..end (inclusive) and the file's size, with retries."""
        return self._retrying(name, start, end, 0)

    def get_whole(self, name: str, limit: int) -> bytes:
        """A small file (config, index) whole, refused if larger than limit."""
        return self._retrying(name, 0, None, limit)[0]

    def _retrying(self, name: str, start: int, end: int | None, limit: int) -> tuple[bytes, int]:
        for delay in (*RETRY_DELAYS, None):
            try:
                return self._get_once(name, start, end, limit)
            except _Retry as retry:
                if delay is None:
                    raise AnatomyError(
                        name,
                        "an answer from the Hub",
                        retry.found,
                        "check the network or HF_ENDPOINT, and try again later",
                    ) from None
                sleep(delay if retry.after is None else retry.after)
        raise AssertionError("unreachable")

    def _get_once(self, name: str, start: int, end: int | None, limit: int) -> tuple[bytes, int]:
        import http.client
        from urllib.parse import urljoin

        from . import transport

        if self.url is None:
            self.url = self.hub.url(self.filename)
        url, authorized = self.final or (self.url, True)
        address = _Address(url, name, "an http:// or https:// address")
        clock = transport.Clock(
            transport.DEADLINE_SECONDS + (0 if end is None else transport.body_seconds(end - start + 1))
        )
        for _ in range(MAX_REDIRECTS + 1):
            headers = {k: v for k, v in self.hub.headers.items() if authorized or k.lower() != "authorization"}
            if end is not None:
                headers["Range"] = f"bytes={start}-{end}"
            headers["Accept-Encoding"] = "identity"
            _check_headers(name, address.target, headers)
            Stats.add(requests=1)
            where = (address.scheme, address.host, address.port)
            connection = transport.connection(*where)
            try:
                response = connection.get(address.target, headers, clock)
                status = response.status
                if status in REDIRECT_STATUS:
                    location = response.getheader("Location") or ""
                    _discard(response, where)
                    try:
                        joined = urljoin(address.url, location)
                    except ValueError:
                        joined = location
                    to = _Address(joined, name, "a redirect to an http:// or https:// address")
                    authorized = authorized and address.keeps_authorization(to)
                    address = to
                    continue
                if status in RETRY_STATUS:
                    after = _retry_after(response.getheader("Retry-After"))
                    _discard(response, where)
                    raise _Retry(f"HTTP {status}", after)
                if status == 416 and end is not None:
                    _discard(response, where)
                    size = _unsatisfiable_size(response.getheader("Content-Range"))
                    if size is None or start < size:
                        raise AnatomyError(
                            name,
                            f"bytes {start}-{end}",
                            f"HTTP 416 ({_shown(repr(response.getheader('Content-Range')))})",
                            "the server's answer does not match the request; try again",
                        )
                    return b"", size  # the file ends before start (it is empty): the reader says what it expected there
                if status not in (200, 206):
                    _discard(response, where)
                    raise status_error(
                        self.hub,
                        name,
                        status,
                        response.getheader("X-Error-Code"),
                        response.getheader("X-Error-Message"),
                    )
                body, size = _body(name, response, start, end, limit, clock)
                self.answer_headers = {k.lower(): v for k, v in response.getheaders()}  # a listing's Link
                if not response.isclosed():
                    transport.drop_connection(*where)  # a body left unread
            except transport.DeadlineExceeded:
                transport.drop_connection(*where)
                raise AnatomyError(
                    name,
                    "an answer from the Hub",
                    f"none complete within {clock.seconds:.3g} s (a request's deadline)",
                    "check the network or HF_ENDPOINT, and try again later",
                ) from None
            except (
                OSError,
                http.client.HTTPException,
                ValueError,
            ) as exc:  # http.client takes a chunk size of -5, then its read refuses it: ValueError
                transport.drop_connection(*where)
                raise _Retry(f"no answer ({type(exc).__name__}: {_shown(str(exc).strip(), 120)})") from None
            except AnatomyError:
                transport.drop_connection(*where)
                raise
            if address.url != self.url:
                self.final = (address.url, authorized)
            return body, size
        raise AnatomyError(name, f"at most {MAX_REDIRECTS} redirects", "more", "check HF_ENDPOINT")

    def fetcher(self, name: str, size: int) -> Callable[[int, int], bytes]:
        """fetch(start, end): bytes start..end-1 of a file of `size` bytes (remote_file's source)."""

        def fetch(start: int, end: int) -> bytes:
            data, found = self.get(name, start, end - 1)
            if found != size:
                raise AnatomyError(
                    name, f"a file of {size} bytes", f"{found} bytes", "the file changed on the Hub; try again"
                )
            return data

        return fetch


def _discard(response: Any, where: tuple[str, str, int]) -> None:
    """Read a small body (a redirect's, an error's) so the connection serves the next
    request; otherwise close it."""
    from . import transport

    if response.chunked or response.length is not None and response.length <= DRAIN_BYTES:
        response.read(DRAIN_BYTES)
    if not response.isclosed():
        transport.drop_connection(*where)


def _retry_after(value: str | None) -> float | None:
    """Seconds a 429 or 503 asks to wait (Retry-After: seconds, or an HTTP date), at most
    MAX_RETRY_AFTER_SECONDS; None without a readable one (the backoff applies)."""
    if value is None:
        return None
    number = _number(value.strip())
    if number is not None:
        seconds = float(number)
    else:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


def _body(name: str, response: Any, start: int, end: int | None, limit: int, clock: Any) -> tuple[bytes, int]:
    from . import transport

    length_text = response.getheader("Content-Length")
    length = _number(length_text)
    if end is None:  # a whole small file
        if response.status != 200 or length is None:  # chunked: not checked on arrival
            raise AnatomyError(
                name,
                "a whole file with its Content-Length",
                f"HTTP {response.status}, Content-Length {_shown(length_text)}",
                "check HF_ENDPOINT",
            )
        if length > limit:
            raise AnatomyError(
                name,
                f"a file of at most {limit} bytes",
                f"{length} bytes",
                "the repository's file is corrupt or hostile",
            )
        clock.extend(transport.body_seconds(length))
        size, first, last = length, 0, length - 1
    elif response.status == 200:  # the server ignored Range and is sending the whole file
        raise AnatomyError(
            name,
            f"a partial answer (206) for bytes {start}-{end}",
            "the whole file (200)",
            "the server ignores ranges; check HF_ENDPOINT",
        )
    else:
        if length_text is not None and length is None:
            raise AnatomyError(
                name,
                "a Content-Length of 1 to 19 digits 0-9",
                _shown(repr(length_text)),
                "the server's answer is malformed; check HF_ENDPOINT",
            )
        content_range = response.getheader("Content-Range") or ""
        unit, _, span = content_range.partition(" ")
        first_text, _, rest = span.partition("-")
        last_text, _, size_text = rest.partition("/")
        first, last, size = _number(first_text), _number(last_text), _number(size_text)
        if first is None or last is None or size is None:
            raise AnatomyError(
                name,
                "a Content-Range header",
                _shown(repr(content_range), 80),
                "the server's answer is malformed; check HF_ENDPOINT",
            )
        wanted_last = min(end, size - 1)
        if unit != "bytes" or first != start or last != wanted_last:
            asked = _CONTENT_RANGE.format(start, wanted_last, size)
            raise AnatomyError(
                name,
                f"Content-Range {asked}",
                _shown(repr(content_range), 80),
                "the server's answer does not match the request; try again",
            )
        if length is not None and length != last - first + 1:
            raise AnatomyError(
                name,
                f"a Content-Length of {last - first + 1} bytes (its Content-Range {_CONTENT_RANGE.format(first, last, size)})",
                f"Content-Length {length}",
                "the server's answer does not match the request; try again",
            )
    wanted = last - first + 1
    body = response.read(wanted) if wanted > 0 else b""
    Stats.add(nbytes=len(body))
    if len(body) != wanted:
        raise AnatomyError(name, f"{wanted} bytes", f"{len(body)} bytes", "the answer was cut short; try again")
    if not response.isclosed() and response.read(1):  # chunked, or up to the close: nothing more may follow
        raise AnatomyError(name, f"{wanted} bytes", "more", "the server's answer does not match the request; try again")
    return body, size


class _Retry(Exception):
    def __init__(self, found: str, after: float | None = None) -> None:
        self.found, self.after = found, after
