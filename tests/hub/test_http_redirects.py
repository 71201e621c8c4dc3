"""Where the token goes on a redirect: an origin on 127.0.0.1 that speaks TLS (a self-signed
certificate, trusted through SSL_CERT_FILE) and plain HTTP on the same port, redirecting the
first request to each kind of address, and logging whether each request carried the
Authorization header. The token stays only on the same origin (scheme, host, port), or from
http to https on the same host: never over plain HTTP after TLS, nor to another host or port."""

import socket
import ssl
import subprocess
import threading

import pytest

from llm_anatomy.hub import transport, http
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.hub.commit import Hub

TOKEN = "hf_SECRETtoken0123456789"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost (openssl's command line)."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
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
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    return key, cert


class Origin:
    """A server on 127.0.0.1 answering TLS or plain HTTP on one port (by the first byte: a
    TLS handshake starts with 0x16). GET /start redirects to self.location; GET /file is
    bytes 0-9 of a 100-byte file. Each request is logged as (tls, port, path, Authorization)."""

    def __init__(self, key, cert, log):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.log, self.location = log, None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self._stop = True
        self.server.close()

    def _serve(self):
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(client,), daemon=True).start()

    def _answer(self, client):
        client.settimeout(5)
        try:
            tls = client.recv(1, socket.MSG_PEEK) == b"\x16"
            if tls:
                client = self.context.wrap_socket(client, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536 and (data := client.recv(65536)):
                head += data
            first, *lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            path = first.split(" ")[1]
            authorization = next(
                (line.split(": ", 1)[1] for line in lines if line.lower().startswith("authorization:")), None
            )
            self.log.append((tls, self.port, path, authorization))
            if path == "/start":
                client.sendall(
                    f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
                )
            else:
                client.sendall(
                    b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789"
                )
        except (OSError, ssl.SSLError, IndexError):
            pass
        finally:
            client.close()


@pytest.fixture
def origins(certificate, monkeypatch):
    """Two origins (another port for the port change), the token set, no proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1]))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(http, "RETRY_DELAYS", ())
    transport.forget_connections()
    log = []
    pair = Origin(*certificate, log), Origin(*certificate, log)
    yield pair
    transport.forget_connections()
    for origin in pair:
        origin.close()


# (first address's scheme, Location the first request is redirected to; {P} this origin's
# port, {Q} the other origin's), whether the token reached /file
REDIRECTS = {
    "same origin": ("https", "https://127.0.0.1:{P}/file", True),
    "a path on the same origin": ("https", "/file", True),
    "https to http, same host and port": ("https", "http://127.0.0.1:{P}/file", False),
    "http to https, same host and port": ("http", "https://127.0.0.1:{P}/file", True),
    "another host (the same address)": ("https", "https://localhost:{P}/file", False),
    "another port": ("https", "https://127.0.0.1:{Q}/file", False),
    "userinfo that names the origin before another host": ("https", "https://127.0.0.1:{P}@localhost:{P}/file", False),
    "userinfo on the same origin": ("https", "https://user:pw@127.0.0.1:{P}/file", True),
    "scheme-relative, another host": ("https", "//localhost:{P}/file", False),
    "scheme-relative, same origin": ("https", "//127.0.0.1:{P}/file", True),
    "upper-case scheme and host": ("https", "HTTPS://LOCALHOST:{P}/file", False),
}


@pytest.mark.parametrize("kind", list(REDIRECTS))
def test_the_token_follows_a_redirect_only_within_its_origin(kind, origins):
    scheme, location, kept = REDIRECTS[kind]
    first, other = origins
    first.location = location.format(P=first.port, Q=other.port)
    request = http.Request(Hub("org/x", "main"), url=f"{scheme}://127.0.0.1:{first.port}/start")
    assert request.get("file", 0, 9) == (b"0123456789", 100)
    assert request.get("file", 0, 9) == (b"0123456789", 100)  # the address redirected to, asked directly
    start, *files = first.log  # one log for both origins
    assert start == (scheme == "https", first.port, "/start", f"Bearer {TOKEN}")
    assert len(files) == 2
    assert all(
        (path, authorization) == ("/file", f"Bearer {TOKEN}" if kept else None) for _, _, path, authorization in files
    ), files


def test_once_dropped_the_token_stays_dropped(origins):
    """https -> http (dropped) -> back to the https origin: not sent again, as httpx does."""
    first, _ = origins
    plain = f"http://127.0.0.1:{first.port}/start"
    first.location = plain
    request = http.Request(Hub("org/x", "main"), url=f"https://127.0.0.1:{first.port}/start")
    with pytest.raises(AnatomyError) as looped:
        request.get("file", 0, 9)
    assert looped.value.line() == "file: expected at most 5 redirects, found more; check HF_ENDPOINT"
    assert [(tls, authorization) for tls, _, _, authorization in first.log] == [(True, f"Bearer {TOKEN}")] + [
        (False, None)
    ] * 5


def test_same_origin_rule():
    """The rule itself, for what loopback servers cannot show: the default ports."""

    def keeps(a, b):
        return http._Address(a, "f", "x").keeps_authorization(http._Address(b, "f", "x"))

    assert keeps("http://hub.example/a", "https://hub.example/b")  # 80 -> 443: httpx's upgrade
    assert keeps("http://hub.example:80/a", "https://hub.example:443/b")
    assert keeps("https://hub.example/a", "https://hub.example:443/b")
    assert not keeps("https://hub.example/a", "http://hub.example/b")
    assert not keeps("https://hub.example/a", "http://hub.example:443/b")
    assert not keeps("http://hub.example:8080/a", "https://hub.example/b")
    assert not keeps("https://hub.example/a", "https://cdn.hub.example/b")
    assert not keeps("https://hub.example/a", "https://hub.example.evil/b")


@pytest.mark.parametrize(
    "location, found",
    [
        ("file:///etc/passwd", "'file:///etc/passwd'"),
        ("ftp://127.0.0.1:21/x", "'ftp://127.0.0.1:21/x'"),
        ("http://127.0.0.1:99999/x", "'http://127.0.0.1:99999/x'"),
        ("http://[::1/x", "'http://[::1/x'"),
        ("http:///x", "'http:///x'"),
        ("javascript:alert(1)", "'javascript:alert(1)'"),
    ],
)
def test_a_redirect_to_no_http_address_is_one_line(location, found, origins):
    first, _ = origins
    first.location = location
    with pytest.raises(AnatomyError) as refused:
        http.Request(Hub("org/x", "main"), url=f"https://127.0.0.1:{first.port}/start").get("file", 0, 9)
    assert (
        refused.value.line()
        == f"file: expected a redirect to an http:// or https:// address, found {found}; check HF_ENDPOINT"
    )
    assert len(first.log) == 1  # nothing fetched there
