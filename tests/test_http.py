"""remote.py's HTTP/1.1 reader against answers the stand-in Hub never sends (it always sends
a Content-Length): chunked bodies, bodies up to the close, 1xx answers, keep-alive, and
garbled or oversized answers as one line."""

import socket
import threading

import pytest

from llm_anatomy import remote
from llm_anatomy.errors import AnatomyError
from llm_anatomy.hub_commit import Hub


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


@pytest.fixture
def request_to(monkeypatch):
    monkeypatch.setattr(remote, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent")
    remote._forget_connections()
    return lambda server: remote.Request(Hub("org/x", "main"), url=server.url + "/file")


def test_bodies_by_length_chunks_or_close_and_connections_kept(request_to):
    body = b"0123456789"
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    server = Canned([ranged(body), ranged(body, framing="chunked"), (interim + ranged(body)[0], False), ranged(body, framing="close"), ranged(body)])
    request = request_to(server)
    for _ in range(5):
        assert request.get("file", 0, 9) == (body, 100)
    assert server.connections == 2  # one kept alive for four answers; a new one after the close
    assert server.requests[0].startswith("GET /file HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "\r\nRange: bytes=0-9\r\nAccept-Encoding: identity" in server.requests[0]


@pytest.mark.parametrize(
    "answer, found",
    [
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", "ProtocolError: more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70_000 + b"\r\n\r\n", "ProtocolError: a line longer than 64 KiB"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "ProtocolError: status line 'SSH-2.0-OpenSSH'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "ProtocolError: chunk size 'zz'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Length: -5\r\n\r\n", "ProtocolError: Content-Length '-5'"),
        # what int() takes but HTTP does not: a negative chunk would read up to the close
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n0123456789", "ProtocolError: chunk size '-5'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n", "ProtocolError: chunk size '0x5'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", "ProtocolError: chunk size '1_0'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Length: \xb2\r\n\r\n", "ProtocolError: Content-Length '\u00b2'"),
        (b"HTTP/1.1 2\xb20 OK\r\n\r\n", "ProtocolError: status line 'HTTP/1.1'"),
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: 1\r\n" * 101 + b"\r\n", "ProtocolError: more than 100 headers"),
    ],
)
def test_a_garbled_answer_is_retried_then_one_line(answer, found, request_to):
    server = Canned([(answer, True)] * 4)
    with pytest.raises(AnatomyError) as refused:
        request_to(server).get("file", 0, 9)
    assert refused.value.line() == f"file: expected an answer from the Hub, found no answer ({found}); check the network or HF_ENDPOINT, and try again later"
    assert len(server.requests) == 4


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
    assert refused.value.line().endswith(": expected a request without line breaks in its address or headers, found one; check HF_ENDPOINT, HF_TOKEN and HF_HUB_USER_AGENT_ORIGIN")
    assert server.requests == []
