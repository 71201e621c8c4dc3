"""One HTTP/1.1 GET on the standard library's http.client, with what it leaves out: a time
limit on the whole request (http.client's timeout is per socket read, so a server sending a
byte a second never times out), a cap on interim 1xx answers (it skips "100 Continue" in an
unbounded loop), the proxy huggingface_hub's client would use (CONNECT through an http://
proxy for https), and the certificates it would trust. Connections are kept alive, one per
address and thread. What to ask and what to accept (ranges, redirects, retries, the Hub's
refusals) is remote.py's policy; this module only moves bytes."""

from __future__ import annotations

import http.client
import io
import os
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ..core.errors import AnatomyError
from ..core.text import escape

TIMEOUT_SECONDS = 20.0  # connect, and each read: this long without a byte fails
# One request (connect, TLS, head and body, redirects included) ends within DEADLINE_SECONDS
# plus the time its body takes at MIN_BYTES_PER_SECOND: 60 s for a model's description, 62 s
# for a header's first 100 KB, 316 s for the largest range (16 MiB).
DEADLINE_SECONDS = 60.0
MIN_BYTES_PER_SECOND = 64 * 1024
MAX_INTERIM_ANSWERS = 10  # 1xx answers before the real one (a server sends one, if any)
BUFFER_BYTES = 64 * 1024


class DeadlineExceeded(Exception):
    """A request that did not end within its deadline (not an OSError: not retried)."""


class TooManyInterim(http.client.HTTPException):
    pass


class Clock:
    """The deadline of one request, as socket timeouts: each read may wait TIMEOUT_SECONDS,
    never past the deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def extend(self, seconds: float) -> None:
        """More time for a body whose size is known only from its answer's head."""
        self.seconds += seconds
        self.at += seconds

    def timeout(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.seconds)
        return min(TIMEOUT_SECONDS, left)

    def expired(self) -> bool:
        return time.monotonic() >= self.at


def body_seconds(nbytes: int) -> float:
    return nbytes / MIN_BYTES_PER_SECOND


class _TimedReader(io.RawIOBase):
    """The socket's bytes, each read waiting at most until the deadline."""

    def __init__(self, sock: Any, clock: Clock) -> None:
        self._sock, self._io, self._clock = sock, sock.makefile("rb", buffering=0), clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._clock.timeout())
        try:
            return self._io.readinto(buffer)
        except TimeoutError:
            if self._clock.expired():
                raise DeadlineExceeded(self._clock.seconds) from None
            raise

    def close(self) -> None:
        self._io.close()
        super().close()


class _Head(io.BufferedReader):
    """The answer's bytes for http.client, counting the status lines it reads: header lines
    cannot start with "HTTP/" (no "/" in a field name), so each is one more answer."""

    answers = 0

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        if line.startswith(b"HTTP/"):
            self.answers += 1
            if self.answers > MAX_INTERIM_ANSWERS + 1:  # the interim ones and the answer
                raise TooManyInterim(f"more than {MAX_INTERIM_ANSWERS} interim answers (HTTP 1xx)")
        return line


class _TimedSocket:
    """What http.client's response asks of a socket (makefile), on the request's clock."""

    def __init__(self, sock: Any, clock: Clock) -> None:
        self._sock, self._clock = sock, clock

    def makefile(self, mode: str) -> _Head:
        return _Head(_TimedReader(self._sock, self._clock), BUFFER_BYTES)


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(_TimedSocket(sock, clock), *args, **kwargs)


class Connection(http.client.HTTPConnection):
    """A keep-alive connection to one address, directly or through an http:// proxy
    (requests for http:// addresses sent to it whole; https tunnelled with CONNECT), TLS
    with the certificates tls_context() trusts; every socket read on self.clock."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.scheme, self.target_host, self.target_port = scheme, host, port
        self.clock: Clock | None = None  # each request's own, from get()
        proxy = proxy_for(scheme, host)
        self.proxy_headers: dict[str, str] = {}
        if proxy is None:
            super().__init__(host, port, timeout=TIMEOUT_SECONDS)
        else:
            proxy_host, proxy_port, self.proxy_headers = _proxy(proxy)
            super().__init__(proxy_host, proxy_port, timeout=TIMEOUT_SECONDS)
            if scheme == "https":
                self.set_tunnel(host, port, headers=self.proxy_headers)
        self.via_proxy = proxy is not None
        self.default_port = 443 if scheme == "https" else 80  # Host: name, without the scheme's own port
        self.response_class = self._response

    def _response(self, sock: Any, *args: Any, **kwargs: Any) -> _Response:
        assert self.clock is not None
        return _Response(sock, *args, clock=self.clock, **kwargs)

    def connect(self) -> None:
        assert self.clock is not None
        self.timeout = self.clock.timeout()
        super().connect()  # TCP, and the tunnel if any (its answer read on the clock)
        if self.scheme == "https":
            context: Any = tls_context()
            context.set_alpn_protocols(["http/1.1"])
            self.sock.settimeout(self.clock.timeout())  # the handshake, whole, within this
            self.sock = context.wrap_socket(self.sock, server_hostname=self.target_host)

    def target(self, path: str) -> str:
        """The request target: the path, or to a proxy for http, the whole URL."""
        if self.via_proxy and self.scheme == "http":
            return f"http://{_netloc(self.target_host, self.target_port, 80)}{path}"
        return path

    def get(self, path: str, headers: dict[str, str], clock: Clock) -> http.client.HTTPResponse:
        """Send GET path and read the answer's head, all on clock."""
        self.clock = clock
        if self.via_proxy and self.scheme == "http":
            headers = {**headers, **self.proxy_headers}
        if self.sock is not None:
            self.sock.settimeout(clock.timeout())  # the request's write: the last read left its own
        else:
            try:
                self.connect()
            except OSError as exc:
                # http.client's refused CONNECT: an OSError without errno ("Tunnel connection
                # failed: 407 ..."), where the socket's own errors carry one
                if (
                    self.via_proxy
                    and self.scheme == "https"
                    and exc.errno is None
                    and not isinstance(exc, TimeoutError)
                ):
                    self.close()
                    raise AnatomyError(
                        f"{self.target_host}:{self.target_port}",
                        "a tunnel through the proxy (HTTPS_PROXY)",
                        escape(str(exc)[:120]),
                        "check the proxy's address and credentials",
                    ) from None
                raise
        self.request("GET", self.target(path), headers=headers)
        return self.getresponse()


def _netloc(host: str, port: int, default: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


def _proxy(proxy: str) -> tuple[str, int, dict[str, str]]:
    """(host, port, headers) of an http:// proxy URL, its credentials as Basic."""
    from urllib.parse import unquote, urlsplit

    where = proxy.rpartition("@")[2] or proxy  # never the credentials
    try:
        parts = urlsplit(proxy)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise AnatomyError(
            where,
            "an http:// proxy address (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)",
            f"one urllib refuses ({exc})",
            "fix the proxy's address",
        ) from None
    if parts.scheme != "http" or not host:
        raise AnatomyError(
            where,
            "an http:// proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY)",
            f"{parts.scheme}://",
            "use an http:// proxy, or NO_PROXY for this host",
        )
    headers = {}
    if parts.username is not None:
        import base64

        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    return host, port or 80, headers


_local = threading.local()  # one keep-alive connection per address and thread


def forget_connections() -> None:
    """A forked worker (stats, diff) opens its own connections: a socket shared with the
    parent would interleave two conversations."""
    _local.__dict__.pop("connections", None)


os.register_at_fork(after_in_child=forget_connections)


def connection(scheme: str, host: str, port: int) -> Connection:
    connections = _local.__dict__.setdefault("connections", {})
    key = (scheme, host, port)
    if key not in connections:
        connections[key] = Connection(scheme, host, port)
    return connections[key]


def drop_connection(scheme: str, host: str, port: int) -> None:
    found = _local.__dict__.get("connections", {}).pop((scheme, host, port), None)
    if found is not None:
        found.close()


# ---------------------------------------------------------------- proxy and trust, as huggingface_hub's client


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy a request to scheme://host goes through, as huggingface_hub's HTTP client
    (httpx, trusting the environment) picks it: HTTPS_PROXY or HTTP_PROXY by the scheme,
    else ALL_PROXY, each lower case first as urllib's getproxies reads them (HTTP_PROXY not
    under CGI), none for a host NO_PROXY names ("*"; a name, and the names under it;
    ".name" or "*.name": those under it only). A proxy without a scheme is http://."""
    settings = {name: _proxy_variable(name) for name in ("http", "https", "all", "no")}
    if "REQUEST_METHOD" in os.environ:
        settings["http"] = None  # a CGI request's Proxy: header arrives as HTTP_PROXY
    proxy = settings[scheme] or settings["all"]
    host = host.lower().strip("[]")
    for entry in (settings["no"] or "").split(","):
        only, _, rest = entry.strip().lower().rpartition("://")
        if only and only not in (scheme, "all"):
            continue  # http://name: that scheme's requests only
        entry = rest.strip("[]")
        if entry == "*":
            return None
        if "/" in entry:  # a network (127.0.0.0/8, ::1/128): for an address in it
            if _in_network(host, entry.replace("]", "")):
                return None
        elif entry.startswith(("*.", ".")):
            if host.endswith(entry.lstrip("*")):
                return None
        elif entry and (host == entry or host.endswith("." + entry)):
            return None
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy or None


def _in_network(host: str, network: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False  # a name, or an entry that is no network: ignored, as httpx ignores it


def _proxy_variable(name: str) -> str | None:
    lower = os.environ.get(f"{name}_proxy")
    return (lower or None) if lower is not None else os.environ.get(f"{name.upper()}_PROXY") or None


# Where OpenSSL's compiled-in paths are missing: the bundles of the main Linux families, as
# huggingface_hub's HTTP client (httpcore) looks for them, after truststore.
CA_FILE_CANDIDATES = (
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/cert.pem",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/ca-bundle.pem",
)


def tls_context() -> object:
    """The certificates to trust, as huggingface_hub's HTTP client (httpcore's
    default_ssl_context) chooses them: SSL_CERT_FILE, else SSL_CERT_DIR, else the system's
    (truststore on macOS and Windows; on Linux OpenSSL's compiled-in paths, else the first
    of CA_FILE_CANDIDATES)."""
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    if sys.platform in ("darwin", "win32"):
        try:
            import truststore

            return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        except ImportError:
            return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if capath and not cafile and not any(len(f) > 9 and f[8] == "." and f[9:].isdigit() for f in os.listdir(capath)):
        capath = None  # a folder without OpenSSL's hashed names (XXXXXXXX.0) trusts nothing
    if not cafile and not capath:
        cafile = next(filter(os.path.isfile, CA_FILE_CANDIDATES), None)
    if cafile or capath:
        context.load_verify_locations(cafile, capath)
    return context
