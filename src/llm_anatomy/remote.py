"""HTTP range reads: a remote weight file as a byte source (see byte_io), fetched in
single-range GET requests and kept in memory as the chunks fetched so far.

Why not a library: each request must carry one Range header (S3-backed CDNs answer a
multi-range request with the whole object), keep it across the Hub's redirect to the CDN
host while dropping the Authorization header there, and have its answer checked
(a 200 for a ranged request is the whole file: refused unread). Why not even http.client:
importing it (email, and ssl even for http) costs ~20 ms, more than a cached call's own
work; a GET and its answer (RFC 9112: a status line, headers, a body framed by its length,
by chunks or by the close) take a hundred lines here, with http.client's caps."""

from __future__ import annotations

import bisect
import os
import re
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Iterable

from .byte_io import check_range
from .errors import AnatomyError, GatedRepo, HubError, RepoNotFound, RevisionNotFound

HEAD_BYTES = 100_000  # the first range of each weight file: most safetensors headers fit
MIN_FETCH_BYTES = 64 * 1024  # a header read past what is cached fetches at least this much...
MAX_FETCH_BYTES = 16 << 20  # ...doubling while reads run on sequentially (GGUF metadata), up to this
TAIL_BYTES = 256 * 1024  # a read near the end fetches this much before it (a zip's central directory)
PREFETCH_GAP_BYTES = 64 * 1024  # wanted ranges closer than this go in one request
WORKERS = 8  # parallel requests
TIMEOUT_SECONDS = 20.0  # connect, and each socket read
RETRY_DELAYS = (0.5, 1.0, 2.0)  # backoff on 429, 5xx and dropped connections
MAX_REDIRECTS = 5
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_CONTENT_RANGE = "bytes {}-{}/{}"

_local = threading.local()  # one keep-alive connection per host and thread


def _forget_connections() -> None:
    """A forked worker (stats, diff) opens its own connections: a socket shared with the
    parent would interleave two conversations."""
    _local.__dict__.pop("connections", None)


os.register_at_fork(after_in_child=_forget_connections)


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


class ProtocolError(Exception):
    """An answer that is not HTTP/1.1 as it should be (a dropped connection's kin: retried)."""


# What int() would also take but HTTP does not: signs, underscores, "0x", and the non-ASCII
# digits str.isdigit() accepts ("²"): a negative chunk size would read up to the close.
_DIGITS = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]{1,16}")
MAX_LINE = 65536  # a status, header or chunk-size line, as http.client caps them
MAX_HEADERS = 100
DRAIN_BYTES = 64 * 1024  # an error's or redirect's body up to this is read to keep the connection


class _Connection:
    """One keep-alive HTTP/1.1 connection on a standard library socket (why not http.client:
    see the module's docstring)."""

    def __init__(self, scheme: str, netloc: str) -> None:
        from urllib.parse import unquote, urlsplit

        from .hub_env import proxy_for

        self.scheme, self.netloc = scheme, netloc
        self.sock: Any = None
        self.stream: Any = None  # the socket's buffered reader, for the connection's lifetime
        target = urlsplit(f"//{netloc}")
        self.host, self.port = target.hostname or "", target.port or (443 if scheme == "https" else 80)
        self.proxy = proxy_for(scheme, self.host)
        self.proxy_headers: dict[str, str] = {}
        if self.proxy is not None:
            proxy = urlsplit(self.proxy)
            if proxy.scheme != "http" or not proxy.hostname:
                raise AnatomyError(self.proxy.partition("@")[2] or self.proxy, "an http:// proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)", f"{proxy.scheme}://", "use an http:// proxy, or NO_PROXY for this host")
            self.proxy_address = (proxy.hostname, proxy.port or 80)
            if proxy.username is not None:
                import base64

                credentials = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
                self.proxy_headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()

    def _open(self) -> None:
        import socket

        sock = socket.create_connection(self.proxy_address if self.proxy else (self.host, self.port), TIMEOUT_SECONDS)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client: a request is one write, sent at once
            if self.scheme == "https":
                if self.proxy:
                    self._tunnel(sock)
                from .hub_env import tls_context

                context: Any = tls_context()
                context.set_alpn_protocols(["http/1.1"])
                sock = context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock, self.stream = sock, sock.makefile("rb")

    def _tunnel(self, sock: Any) -> None:
        """CONNECT host:port through the proxy: its 200 (and headers) read, then TLS inside."""
        lines = [f"CONNECT {self.host}:{self.port} HTTP/1.1", f"Host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in self.proxy_headers.items())]
        sock.sendall(_encode(self.netloc, lines))
        self.sock, self.stream = sock, sock.makefile("rb")  # the proxy says nothing more before TLS starts
        try:
            answer = _Response(self)
        finally:
            if self.stream is not None:
                self.stream.close()  # the reader, not the socket
            self.sock = self.stream = None
        if answer.status != 200:
            raise AnatomyError(self.netloc, "a tunnel through the proxy (HTTPS_PROXY)", f"HTTP {answer.status}", "check the proxy's address and credentials")

    def request(self, target: str, headers: dict[str, str]) -> None:
        """Send GET target: the request line, Host, then headers, as http.client sends them
        (to an http:// address through a proxy: the whole URL, and the proxy's credentials)."""
        if " " in target:
            raise AnatomyError(self.netloc, "a request without spaces in its address", repr(target)[:60], "check HF_ENDPOINT")
        if self.proxy and self.scheme == "http":
            target, headers = f"http://{self.netloc}{target}", {**headers, **self.proxy_headers}
        message = _encode(self.netloc, [f"GET {target} HTTP/1.1", f"Host: {self.netloc}", *(f"{key}: {value}" for key, value in headers.items())])
        if self.sock is None:
            self._open()
        self.sock.sendall(message)

    def getresponse(self) -> _Response:
        return _Response(self)

    def close(self) -> None:
        if self.sock is not None:
            self.stream.close()
            self.sock.close()
            self.sock = self.stream = None


def _encode(netloc: str, lines: list[str]) -> bytes:
    """A request's head, refused if a line break or NUL would split it (from HF_TOKEN, say)."""
    if any(bad in line for line in lines for bad in "\r\n\0"):
        raise AnatomyError(netloc, "a request without line breaks in its address or headers", "one", "check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # as http.client encodes headers
    except UnicodeEncodeError:
        raise AnatomyError(netloc, "a request in Latin-1 characters", "other characters", "check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN") from None


class _Response:
    """One answer on a connection: status, headers, and a body framed by Content-Length,
    by chunks, or by the connection's close (RFC 9112 section 6); 1xx answers skipped."""

    def __init__(self, connection: _Connection) -> None:
        self._connection, self._stream = connection, connection.stream
        self.status = 100
        while 100 <= self.status < 200:
            version, _, rest = self._line().partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not _DIGITS.fullmatch(code):
                raise ProtocolError(f"status line {version[:20]!r}")
            self.status, self._version = int(code), version
            self._headers = self._read_headers()
        self._chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        length = self._headers.get("content-length", "")
        self._left: int | None = None  # body bytes still to come; None: chunked, or up to the close
        if self.status in (204, 304):
            self._left = 0
        elif not self._chunked and length:
            if not _DIGITS.fullmatch(length):
                raise ProtocolError(f"Content-Length {length[:20]!r}")
            self._left = int(length)
        self._chunk_left = 0  # chunked: bytes left in the current chunk
        self._done = self._left == 0
        options = self._headers.get("connection", "").lower()
        self._close = "close" in options or (version == "HTTP/1.0" and "keep-alive" not in options) or (self._left is None and not self._chunked)
        if self._done and self._close:
            connection.close()

    def _line(self) -> str:
        line = self._stream.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ProtocolError("a line longer than 64 KiB")
        if not line:
            raise ProtocolError("the connection closed without an answer")
        return line.decode("latin-1").rstrip("\r\n")

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if not line:
                return headers
            key, _, value = line.partition(":")
            key, value = key.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raise ProtocolError(f"more than {MAX_HEADERS} headers")

    def getheader(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def _next_chunk(self) -> None:
        size = self._line().partition(";")[0].strip()
        if not _HEX_DIGITS.fullmatch(size):
            raise ProtocolError(f"chunk size {size[:20]!r}")
        self._chunk_left = int(size, 16)
        if self._chunk_left == 0:
            self._read_headers()  # the trailers, up to the empty line
            self._done = True

    def read(self, n: int) -> bytes:
        """Up to n bytes of the body (fewer only where it ends or the connection drops)."""
        parts, wanted = [], n
        while wanted > 0 and not self._done:
            if self._chunked and self._chunk_left == 0:
                self._next_chunk()
                if self._done:
                    break
            budget = self._chunk_left if self._chunked else self._left
            data = self._stream.read(wanted if budget is None else min(wanted, budget))
            if not data:
                self._close, self._done = True, True  # cut short: the caller counts the bytes
                break
            parts.append(data)
            wanted -= len(data)
            if self._chunked:
                self._chunk_left -= len(data)
                if self._chunk_left == 0:
                    self._line()  # the CRLF after the chunk
            elif self._left is not None:
                self._left -= len(data)
                self._done = self._left == 0
        return b"".join(parts)

    def finish(self) -> None:
        """The body was read: the connection serves the next request if the answer ends here."""
        if self._chunked and not self._done and self._chunk_left == 0:
            self._next_chunk()  # the last chunk, of size 0
        if self._close or not self._done:
            self._connection.close()

    def discard(self) -> None:
        """Read the rest of a small body (a redirect's, an error's) so the connection serves
        the next request; otherwise close it."""
        if self._chunked or self._left is not None and self._left <= DRAIN_BYTES:
            self.read(DRAIN_BYTES)
        self.finish()


def import_sender() -> None:
    """Import what sending a request takes."""
    import socket  # noqa: F401
    import urllib.parse  # noqa: F401


def _connection(scheme: str, netloc: str) -> _Connection:
    connections = _local.__dict__.setdefault("connections", {})
    key = (scheme, netloc)
    if key not in connections:
        connections[key] = _Connection(scheme, netloc)
    return connections[key]


def _drop_connection(scheme: str, netloc: str) -> None:
    connection = _local.__dict__.get("connections", {}).pop((scheme, netloc), None)
    if connection is not None:
        connection.close()


INVALID_TOKEN = "Invalid credentials in Authorization header"  # the Hub's X-Error-Message for a bad token


def status_error(hub: Any, name: str, status: int, error_code: str | None, error_message: str | None) -> AnatomyError:
    """A refusal as one line, told apart by the X-Error-Code and X-Error-Message headers as
    huggingface_hub's hf_raise_for_status tells them apart."""
    if error_code == "GatedRepo":
        return gated(hub.repo)
    if error_code == "RevisionNotFound":
        return not_found(hub.repo, hub.revision)
    if status == 401 and error_message == INVALID_TOKEN:
        return HubError(hub.repo, "a token the Hub accepts", "invalid credentials (HTTP 401)", "`hf auth login` again, or fix HF_TOKEN")
    if status == 401 or error_code == "RepoNotFound":
        return not_found(hub.repo)
    if status == 404:
        return HubError(name, "a file the repository lists", "HTTP 404 (no such file)", "the repository changed; try again")
    if status == 403:
        return HubError(hub.repo, "read access", "HTTP 403 (forbidden)", "check your token's permissions (`hf auth whoami`)")
    return HubError(name, "a successful HTTP answer", f"HTTP {status}", "try again later")


def _unsatisfiable_size(content_range: str | None) -> int | None:
    """N of a 416 answer's 'bytes */N': the file is shorter than the range asked."""
    unit, _, span = (content_range or "").partition(" ")
    size = span.removeprefix("*/")
    return int(size) if unit == "bytes" and span.startswith("*/") and _DIGITS.fullmatch(size) else None


def gated(repo: str) -> AnatomyError:
    return GatedRepo(repo, "a model you may read", "a gated model", "accept its license on the model page, then `hf auth login` or set HF_TOKEN")


def not_found(repo: str, revision: str | None = None) -> AnatomyError:
    what = f"revision {revision!r} of a model on the Hub" if revision else "a model on the Hub"
    return (RevisionNotFound if revision else RepoNotFound)(repo, what, "not found, or private/gated and you are not logged in", "check the name, or `hf auth login` / set HF_TOKEN")


class Request:
    """Requests for one file of a repository (hub.url(filename)), or for url; hub.headers
    and the URL are built when the first request is sent (the header cache needs neither),
    Authorization is kept to the host of the first URL."""

    def __init__(self, hub: Any, filename: str | None = None, url: str | None = None) -> None:
        self.hub, self.filename, self.url = hub, filename, url
        self.final_url: str | None = None  # the CDN address the Hub redirected to, reused

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
                    raise AnatomyError(name, "an answer from the Hub", retry.found, "check the network or HF_ENDPOINT, and try again later") from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _get_once(self, name: str, start: int, end: int | None, limit: int) -> tuple[bytes, int]:
        from urllib.parse import urljoin, urlsplit

        if self.url is None:
            self.url = self.hub.url(self.filename)
        hub_url = self.url
        url = self.final_url or hub_url
        hub_host = urlsplit(hub_url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            headers = {k: v for k, v in self.hub.headers.items() if parts.netloc == hub_host or k.lower() != "authorization"}
            if end is not None:
                headers["Range"] = f"bytes={start}-{end}"
            headers["Accept-Encoding"] = "identity"
            Stats.add(requests=1)
            connection = _connection(parts.scheme, parts.netloc)
            try:
                connection.request(parts.path + (f"?{parts.query}" if parts.query else ""), headers)
                response = connection.getresponse()
                status = response.status
                if status in (301, 302, 303, 307, 308):
                    response.discard()
                    url = urljoin(url, response.getheader("Location") or "")
                    continue
                if status in RETRY_STATUS:
                    response.discard()
                    raise _Retry(f"HTTP {status}")
                if status == 416 and end is not None:
                    response.discard()
                    size = _unsatisfiable_size(response.getheader("Content-Range"))
                    if size is None or start < size:
                        raise AnatomyError(name, f"bytes {start}-{end}", f"HTTP 416 ({response.getheader('Content-Range')!r:.40})", "the server's answer does not match the request; try again")
                    return b"", size  # the file ends before start (it is empty): the reader says what it expected there
                if status not in (200, 206):
                    response.discard()
                    raise status_error(self.hub, name, status, response.getheader("X-Error-Code"), response.getheader("X-Error-Message"))
                body, size = self._body(name, response, start, end, limit)
            except (OSError, ProtocolError) as exc:
                _drop_connection(parts.scheme, parts.netloc)
                raise _Retry(f"no answer ({type(exc).__name__}: {exc})") from None
            except AnatomyError:
                _drop_connection(parts.scheme, parts.netloc)  # a body left unread
                raise
            if parts.netloc != hub_host:
                self.final_url = url
            return body, size
        raise AnatomyError(name, f"at most {MAX_REDIRECTS} redirects", "more", "check HF_ENDPOINT")

    @staticmethod
    def _body(name: str, response: _Response, start: int, end: int | None, limit: int) -> tuple[bytes, int]:
        length = response.getheader("Content-Length")
        if end is None:  # a whole small file
            if response.status != 200 or length is None or not _DIGITS.fullmatch(length):  # chunked: not checked on arrival
                raise AnatomyError(name, "a whole file with its Content-Length", f"HTTP {response.status}, Content-Length {length}", "check HF_ENDPOINT")
            if int(length) > limit:
                raise AnatomyError(name, f"a file of at most {limit} bytes", f"{length} bytes", "the repository's file is corrupt or hostile")
            size, first, last = int(length), 0, int(length) - 1
        elif response.status == 200:  # the server ignored Range and is sending the whole file
            raise AnatomyError(name, f"a partial answer (206) for bytes {start}-{end}", "the whole file (200)", "the server ignores ranges; check HF_ENDPOINT")
        else:
            content_range = response.getheader("Content-Range") or ""
            try:
                unit, _, span = content_range.partition(" ")
                first_text, _, rest = span.partition("-")
                last_text, _, size_text = rest.partition("/")
                first, last, size = int(first_text), int(last_text), int(size_text)
            except ValueError:
                raise AnatomyError(name, "a Content-Range header", repr(content_range)[:80], "the server's answer is malformed; check HF_ENDPOINT") from None
            wanted_last = min(end, size - 1)
            if unit != "bytes" or first != start or last != wanted_last:
                asked = _CONTENT_RANGE.format(start, wanted_last, size)
                raise AnatomyError(name, f"Content-Range {asked}", repr(content_range)[:80], "the server's answer does not match the request; try again")
        body = response.read(last - first + 1)
        response.finish()
        Stats.add(nbytes=len(body))
        if len(body) != last - first + 1 or (length is not None and int(length) != len(body)):
            raise AnatomyError(name, f"{last - first + 1} bytes", f"{len(body)} bytes", "the answer was cut short; try again")
        return body, size


class _Retry(Exception):
    def __init__(self, found: str) -> None:
        self.found = found


def parallel(jobs: Iterable, function) -> list:
    """function(job) for each job, at most WORKERS at a time, in order; the first error raised."""
    jobs = list(jobs)
    if len(jobs) <= 1:
        return [function(job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(WORKERS, len(jobs))) as pool:
        return list(pool.map(function, jobs))


class RemoteFile:
    """A weight file on the Hub as a byte source: the chunks fetched so far (or loaded from
    the header cache), and more fetched on demand; request None means offline."""

    def __init__(self, name: str, size: int, request: Request | None, chunks: Iterable[tuple[int, bytes]] = ()) -> None:
        self.name, self.size, self.request = name, size, request
        self._starts: list[int] = []
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._next_fetch = (-1, MIN_FETCH_BYTES)  # (where a sequential read would continue, its fetch size)
        self._kept: set[int] | None = None  # after keep(): the header's chunks; the rest a prefetch drops
        self._before_data: Callable[[], None] | None = None
        for start, data in chunks:
            self._add(start, data)

    def check_before_data(self, check: Callable[[], None]) -> None:
        """Run check() before the next read: what a format's reader leaves unverified while
        only headers are read, once it is done (torch_zip's local headers)."""
        self._before_data = check

    def settle(self) -> None:
        """Run now what waits for the first read (before forking: each worker would run it)."""
        self._data_read()

    def _data_read(self) -> None:
        if self._before_data is not None:
            check, self._before_data = self._before_data, None
            check()

    def __enter__(self) -> "RemoteFile":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def close(self) -> None:
        pass  # the chunks are the header cache until the command ends

    def chunks(self) -> list[tuple[int, bytes]]:
        return list(zip(self._starts, self._chunks))

    def keep(self) -> None:
        """What is fetched so far is the header, kept; tensor bytes fetched later are let go
        at the next prefetch, so memory stays bounded however many tensors are read."""
        self._kept = set(self._starts)

    def _release(self) -> None:
        if self._kept is not None:
            with self._lock:
                kept = [(start, data) for start, data in zip(self._starts, self._chunks) if start in self._kept]
                self._starts, self._chunks = [s for s, _ in kept], [d for _, d in kept]

    def _add(self, start: int, data: bytes) -> None:
        with self._lock:
            index = bisect.bisect_left(self._starts, start)
            self._starts.insert(index, start)
            self._chunks.insert(index, data)

    def _cached(self, offset: int, length: int) -> bytes | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        while index >= 0:  # an earlier, longer chunk may cover it too
            start, data = self._starts[index], self._chunks[index]
            if start + len(data) >= offset + length:
                return data[offset - start : offset - start + length]
            if index == 0 or offset - self._starts[index - 1] > MAX_FETCH_BYTES:
                break
            index -= 1
        return None

    def _get(self, start: int, length: int) -> bytes:
        if self.request is None:
            raise AnatomyError(self.name, f"bytes {start}..{start + length} in the header cache", "they were never fetched", "run without HF_HUB_OFFLINE=1 to read them from the Hub")
        data, size = self.request.get(self.name, start, start + length - 1)
        if size != self.size:
            raise AnatomyError(self.name, f"a file of {self.size} bytes", f"{size} bytes", "the file changed on the Hub; try again")
        return data

    def _fetch(self, start: int, length: int) -> None:
        self._add(start, self._get(start, length))

    def stream(self, offset: int, length: int, what: str) -> bytes:
        """Bytes read once (stats, diff): fetched and handed over, never kept."""
        self._data_read()
        check_range(self.name, offset, length, self.size, what)
        cached = self._cached(offset, length)
        return cached if cached is not None else self._get(offset, length)

    def _cached_head(self, offset: int) -> bytes:
        """The cached bytes from offset on, up to the end of the chunk holding offset."""
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0 and self._starts[index] + len(self._chunks[index]) > offset:
            return self._chunks[index][offset - self._starts[index] :]
        return b""

    def read(self, offset: int, length: int, what: str) -> bytes:
        self._data_read()
        check_range(self.name, offset, length, self.size, what)
        data = self._cached(offset, length)
        if data is None:
            head = self._cached_head(offset)[:length]  # fetch only what lies past it
            rest, length_left = offset + len(head), length - len(head)
            continue_at, fetch = self._next_fetch
            fetch = min(MAX_FETCH_BYTES, 2 * fetch) if rest == continue_at else MIN_FETCH_BYTES
            fetch = max(length_left, fetch)
            start = rest
            if start + fetch > self.size:  # near the end: fetch backwards (zip directories end files)
                start = max(rest if head else 0, self.size - max(fetch, TAIL_BYTES))
                fetch = self.size - start
            self._fetch(start, fetch)
            self._next_fetch = (start + fetch, fetch)
            tail = self._cached(rest, length_left)
            assert tail is not None
            data = head + tail
        return data

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch these (offset, length) ranges in parallel requests, nearby ones together,
        in place of the tensor bytes fetched before (see keep())."""
        self._data_read()
        self._release()
        merged: list[list[int]] = []
        for offset, length in sorted(ranges):
            if self._cached(offset, length) is not None or length <= 0:
                continue
            end = min(self.size, offset + length)
            if merged and offset - merged[-1][1] <= PREFETCH_GAP_BYTES and end - merged[-1][0] <= MAX_FETCH_BYTES:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([offset, end])
        parallel(merged, lambda span: self._fetch(span[0], span[1] - span[0]))

    def fileobj(self) -> BinaryIO:
        return _FileView(self)


class _FileView:
    """A seekable read-only file object over a byte source, for zipfile."""

    def __init__(self, source: RemoteFile) -> None:
        self.source, self.pos = source, 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = max(0, offset + (0, self.pos, self.source.size)[whence])
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.source.size - self.pos if n is None or n < 0 else min(n, max(0, self.source.size - self.pos))
        data = self.source.read(self.pos, n, "zip data")
        self.pos += n
        return data

    def close(self) -> None:
        pass
