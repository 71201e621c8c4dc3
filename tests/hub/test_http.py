"""The HTTP client (http_transport.py on http.client, remote.py's policy) against answers the
stand-in Hub never sends (it always sends a Content-Length): chunked bodies, bodies up to the
close, 1xx answers, keep-alive, and garbled or oversized answers as one line; proxies and TLS."""

import socket
import threading

import pytest

from llm_anatomy.hub import transport, http
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.hub.commit import Hub


class Canned:
    """A server on 127.0.0.1 answering each request with the next (answer bytes, close the
    connection after it) of `answers`; it counts connections and keeps the requests."""

    def __init__(self, answers):
        self.answers, self.requests, self.connections = list(answers), [], 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            connection, _ = self.server.accept()
            self.connections += 1
            with connection:
                buffer = b""
                while self.answers:
                    while b"\r\n\r\n" not in buffer:
                        data = connection.recv(65536)
                        if not data:
                            break
                        buffer += data
                    if b"\r\n\r\n" not in buffer:
                        break
                    request, _, buffer = buffer.partition(b"\r\n\r\n")
                    self.requests.append(request.decode("latin-1"))
                    answer, close = self.answers.pop(0)
                    connection.sendall(answer)
                    if close:
                        break


def ranged(body, size=100, framing="length"):
    """A 206 for bytes 0..len(body)-1 of a file of size bytes, framed as asked."""
    head = f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-{len(body) - 1}/{size}\r\n"
    if framing == "length":
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body, False
    if framing == "chunked":
        chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (body[:4], body[4:]))
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\nX-Trailer: 1\r\n\r\n", False
    return (head + "Connection: close\r\n\r\n").encode() + body, True  # up to the close


@pytest.fixture(autouse=True)
def _retries_without_waiting(monkeypatch):
    """Retries happen at once: no test sleeps through the backoff (test_http_limits counts the waits)."""
    monkeypatch.setattr(http, "sleep", lambda seconds: None)


@pytest.fixture
def request_to(monkeypatch):
    monkeypatch.setattr(http, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent")
    transport.forget_connections()
    return lambda server: http.Request(Hub("org/x", "main"), url=server.url + "/file")


def test_bodies_by_length_chunks_or_close_and_connections_kept(request_to):
    body = b"0123456789"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    server = Canned(
        [
            ranged(body),
            ranged(body, framing="chunked"),
            (interim + ranged(body)[0], False),
            ranged(body, framing="close"),
            ranged(body),
        ]
    )
    request = request_to(server)
    for _ in range(5):
        assert request.get("file", 0, 9) == (body, 100)
    assert server.connections == 2  # one kept alive for four answers; a new one after the close
    assert server.requests[0].startswith("GET /file HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "\r\nRange: bytes=0-9\r\nAccept-Encoding: identity" in server.requests[0]


@pytest.mark.parametrize(
    "answer, found",
    [
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "HTTPException: got more than 100 headers"),
        (
            b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n",
            "LineTooLong: got more than 65536 bytes when reading header line",
        ),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "BadStatusLine: SSH-2.0-OpenSSH"),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "IncompleteRead: IncompleteRead(0 bytes read)",
        ),
        # what int() takes but HTTP does not: a negative chunk would read up to the close
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n0123456789",
            "ValueError: read length must be non-negative or -1",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
            "IncompleteRead: IncompleteRead(0 bytes read)",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n",
            "IncompleteRead: IncompleteRead(0 bytes read)",
        ),
        (b"HTTP/1.1 2\xb20 OK\r\n\r\n", "BadStatusLine: HTTP/1.1 2\u00b20 OK"),
    ],
)
def test_a_garbled_answer_is_retried_then_one_line(answer, found, request_to):
    server = Canned([(answer, True)] * 4)
    with pytest.raises(AnatomyError) as refused:
        request_to(server).get("file", 0, 9)
    assert (
        refused.value.line()
        == f"file: expected an answer from the Hub, found no answer ({found}); check the network or HF_ENDPOINT, and try again later"
    )
    assert len(server.requests) == 4


def test_numbers_outside_the_framing_are_ascii_digits_too(request_to):
    """'²' is a digit to str.isdigit() and not to int(): a 416's size and a whole file's
    Content-Length beside chunks are one line, not a traceback."""
    server = Canned(
        [
            (b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\xb2\r\nContent-Length: 0\r\n\r\n", False),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: \xb2\r\n\r\n0\r\n\r\n", False),
        ]
    )
    request = request_to(server)
    with pytest.raises(AnatomyError) as refused:
        request.get("file", 0, 9)
    assert (
        refused.value.line()
        == "file: expected bytes 0-9, found HTTP 416 ('bytes */\u00b2'); the server's answer does not match the request; try again"
    )
    with pytest.raises(AnatomyError) as refused:
        request.get_whole("file", 1000)
    assert (
        refused.value.line()
        == "file: expected a whole file with its Content-Length, found HTTP 200, Content-Length \u00b2; check HF_ENDPOINT"
    )


def test_a_body_cut_short_is_refused(request_to):
    head = b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\n\r\n"
    with pytest.raises(AnatomyError) as refused:
        request_to(Canned([(head + b"01234", True)])).get("file", 0, 9)
    assert refused.value.line() == "file: expected 10 bytes, found 5 bytes; the answer was cut short; try again"


def test_no_line_break_reaches_a_request(request_to, monkeypatch):
    monkeypatch.setenv("HF_HUB_USER_AGENT_ORIGIN", "x\r\nX-Injected: 1")
    server = Canned([ranged(b"0123456789")])
    with pytest.raises(AnatomyError) as refused:
        request_to(server).get("file", 0, 9)
    assert refused.value.line().endswith(
        ": expected a request without line breaks in its address or headers, found one; check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN"
    )
    assert server.requests == []


# ---------------------------------------------------------------- proxies and TLS, as huggingface_hub's client honours them


def pipe(a, b):
    """Copy bytes both ways between two sockets until either side closes."""

    def copy(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    threading.Thread(target=copy, args=(a, b), daemon=True).start()
    threading.Thread(target=copy, args=(b, a), daemon=True).start()


class Proxy:
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels, and requests for http:// URLs passed on
    to their host as they come; the first line of each connection and its Proxy-Authorization
    are kept."""

    def __init__(self):
        self.seen = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            client, _ = self.server.accept()
            head = b""
            while b"\r\n\r\n" not in head and (data := client.recv(65536)):
                head += data
            first, *lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            credentials = next(
                (line.split(": ", 1)[1] for line in lines if line.lower().startswith("proxy-authorization:")), None
            )
            self.seen.append((first, credentials))
            method, target, _ = first.split(" ")
            host, _, port = (target if method == "CONNECT" else target.split("/")[2]).rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(head)
            pipe(client, upstream)


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    """The stand-in Hub with a small repo; no proxy or certificate settings from outside."""
    from hub_standin import HubStandIn

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(http, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    hub = HubStandIn()
    hub.add("org/m", folder)
    for name, value in {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": tmp_path / "home",
        "HF_HUB_CACHE": tmp_path / "hf",
        "LLM_ANATOMY_CACHE": tmp_path / "cache",
    }.items():
        monkeypatch.setenv(name, str(value))
    transport.forget_connections()
    yield hub
    transport.forget_connections()
    hub.close()


def model_info():
    from llm_anatomy.hub import commit

    return commit.model_info("org/m", None)


def test_http_through_the_proxy_the_environment_names(hub_env, monkeypatch):
    proxy = Proxy()
    monkeypatch.setenv("http_proxy", proxy.url.replace("http://", "http://me:p%40ss@"))
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the lower case one wins, as urllib reads them
    assert model_info()[1] == ["config.json"]
    assert proxy.seen == [(f"GET {hub_env.url}/api/models/org/m HTTP/1.1", "Basic bWU6cEBzcw==")]  # me:p@ss
    assert [e.path for e in hub_env.log] == [
        f"{hub_env.url}/api/models/org/m"
    ]  # the whole URL: it came through the proxy
    transport.forget_connections()
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    hub_env.clear_log()
    assert model_info()[1] == ["config.json"]
    assert [e.path for e in hub_env.log] == ["/api/models/org/m"] and len(proxy.seen) == 1


def test_https_through_a_tunnel_with_the_certificates_ssl_cert_file_names(hub_env, monkeypatch, tmp_path):
    """An https:// endpoint (a TLS front for the stand-in) through the proxy's CONNECT; the
    certificate is trusted because SSL_CERT_FILE names it, and refused otherwise."""
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    front = socket.create_server(("127.0.0.1", 0))
    hub_port = int(hub_env.url.rpartition(":")[2])

    def serve():
        while True:
            client, _ = front.accept()
            try:
                secure = context.wrap_socket(client, server_side=True)
            except (OSError, ssl.SSLError):
                continue  # a client that does not trust us
            pipe(secure, socket.create_connection(("127.0.0.1", hub_port)))

    threading.Thread(target=serve, daemon=True).start()
    endpoint = f"https://127.0.0.1:{front.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    proxy = Proxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with pytest.raises(AnatomyError) as untrusted:
        model_info()
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.line()
    transport.forget_connections()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert model_info()[1] == ["config.json"]
    assert proxy.seen[-1] == (f"CONNECT 127.0.0.1:{front.getsockname()[1]} HTTP/1.0", None)
    assert [e.path for e in hub_env.log][-1] == "/api/models/org/m"


def test_a_proxy_that_is_not_http_is_one_line(hub_env, monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5://me:secret@127.0.0.1:1080")
    with pytest.raises(AnatomyError) as refused:
        model_info()
    assert (
        refused.value.line()
        == "127.0.0.1:1080: expected an http:// proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY), found socks5://; use an http:// proxy, or NO_PROXY for this host"
    )


PROXY_CASES = [
    ({"HTTPS_PROXY": "http://p:1"}, "https://huggingface.co/api/models/x"),
    ({"HTTP_PROXY": "http://p:1"}, "https://huggingface.co/x"),
    ({"HTTP_PROXY": "http://p:1"}, "http://mirror.example:8080/x"),
    ({"ALL_PROXY": "http://p:2"}, "https://huggingface.co/x"),
    ({"ALL_PROXY": "http://p:2", "HTTPS_PROXY": "http://p:1"}, "https://huggingface.co/x"),
    ({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:1"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "p:3128"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "huggingface.co"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "huggingface.co"}, "https://cdn-lfs.huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "huggingface.co"}, "https://nothuggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".huggingface.co"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".huggingface.co"}, "https://cas-bridge.huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*.huggingface.co"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://huggingface.co/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": " , example.com ,127.0.0.0/8"}, "https://127.0.0.1:8443/x"),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost"}, "http://localhost:8080/x"),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "::1"}, "http://[::1]:8080/x"),
    ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "http://huggingface.co"}, "https://huggingface.co/x"),
    ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "http://mirror.example"}, "http://mirror.example/x"),
]


@pytest.mark.parametrize("env, url", PROXY_CASES)
def test_the_proxy_is_the_one_huggingface_hubs_client_picks(env, url, monkeypatch):
    """http_transport.proxy_for against httpx2 (huggingface_hub's HTTP client) itself: its
    environment proxies and NO_PROXY patterns, most specific first, as its Client mounts them."""
    from urllib.parse import urlsplit

    from httpx2 import URL
    from httpx2._utils import URLPattern, get_environment_proxies

    from llm_anatomy.hub.transport import proxy_for

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mounts = sorted((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items())
    theirs = next((proxy for pattern, proxy in mounts if pattern.matches(URL(url))), None)
    parts = urlsplit(url)
    assert proxy_for(parts.scheme, parts.hostname) == theirs
