"""Bounds on what a server or proxy can make a request cost: a deadline for the whole request
(a byte a second never ends it otherwise), a cap on interim 1xx answers, Retry-After waited
but capped, numbers in headers that int() would choke on, and a 206 that carries more than
it says. The deadlines are made short here (the constants patched), so nothing sleeps long."""

import socket
import threading
import time

import pytest

from test_http import Canned
from llm_anatomy.hub import transport, http
from llm_anatomy.core.errors import AnatomyError
from llm_anatomy.hub.commit import Hub

GIVE_UP = "check the network or HF_ENDPOINT, and try again later"


class Scripted:
    """A server on 127.0.0.1 that reads each connection's request head, keeps it, and runs
    script(connection) to answer; at most `connections` connections, then it stops."""

    def __init__(self, script, connections=8):
        self.script, self.requests = script, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, args=(connections,), daemon=True).start()

    def _serve(self, connections):
        for _ in range(connections):
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection):
        with connection:
            connection.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536 and (data := connection.recv(65536)):
                    head += data
                self.requests.append(head.decode("latin-1").split("\r\n")[0])
                self.script(connection)
            except OSError:
                pass  # the client gave up: what the tests want

    def close(self):
        self.server.close()


def drip(connection, data, seconds=0.02):
    """data a byte at a time (at most 10 s of it): a slow-loris server, scaled down."""
    for byte in data[:500]:
        connection.sendall(bytes([byte]))
        time.sleep(seconds)


def endless_continue(connection):
    for _ in range(100_000):
        connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


RANGE_HEAD = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-999/1000\r\nContent-Length: 1000\r\n\r\n"
SCRIPTS = {
    "status line": lambda c: drip(c, b"HTTP/1.1 206 Partial Content, said very slowly" * 20),
    "headers": lambda c: (c.sendall(b"HTTP/1.1 206 Partial Content\r\n"), drip(c, b"X-Slow: " + b"a" * 1000)),
    "body": lambda c: (c.sendall(RANGE_HEAD), drip(c, b"b" * 1000)),
    "100 Continue, slowly": lambda c: drip(c, b"HTTP/1.1 100 Continue\r\n\r\n" * 40),
}


@pytest.fixture
def short_limits(monkeypatch, tmp_path):
    """Deadline 0.3 s, 0.2 s per read; backoff waits counted, not slept; no proxy, no token."""
    monkeypatch.setattr(transport, "DEADLINE_SECONDS", 0.3)
    monkeypatch.setattr(transport, "TIMEOUT_SECONDS", 0.2)
    waits = []
    monkeypatch.setattr(http, "sleep", waits.append)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    transport.forget_connections()
    yield waits
    transport.forget_connections()


def ranged_request(url):
    return http.Request(Hub("org/x", "main"), url=url + "/file")


@pytest.mark.parametrize("where", list(SCRIPTS))
def test_a_slow_server_meets_the_deadline_of_the_request(where, short_limits):
    """Every read gets a byte in time, so only the deadline ends it: one line, no retry."""
    server = Scripted(SCRIPTS[where])
    with pytest.raises(AnatomyError) as late:
        ranged_request(server.url).get("file", 0, 999)
    seconds = 0.3 + 1000 / transport.MIN_BYTES_PER_SECOND
    assert (
        late.value.line()
        == f"file: expected an answer from the Hub, found none complete within {seconds:.3g} s (a request's deadline); {GIVE_UP}"
    )
    assert len(server.requests) == 1 and short_limits == []
    server.close()


def test_endless_interim_answers_are_capped(short_limits):
    server = Scripted(endless_continue)
    with pytest.raises(AnatomyError) as refused:
        ranged_request(server.url).get("file", 0, 9)
    assert (
        refused.value.line()
        == f"file: expected an answer from the Hub, found no answer (TooManyInterim: more than 10 interim answers (HTTP 1xx)); {GIVE_UP}"
    )
    assert len(server.requests) == 4  # retried as a garbled answer is
    server.close()


def test_a_few_interim_answers_are_skipped(short_limits):
    interim = b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n" * 10
    server = Canned(
        [
            (
                interim
                + b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\n\r\n0123456789",
                False,
            )
        ]
    )
    assert ranged_request(server.url).get("file", 0, 9) == (b"0123456789", 100)


@pytest.mark.parametrize("command", [("params",), ("values",)])
@pytest.mark.parametrize("where", ["headers", "100 Continue, slowly", "endless 100 Continue"])
def test_the_cli_says_one_line_and_exits_1(where, command, short_limits, cli, monkeypatch, tmp_path):
    """The model's description from such a server: one line, exit 1, nothing else."""
    server = Scripted(endless_continue if where == "endless 100 Continue" else SCRIPTS[where])
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = cli(command[0], "org/x")
    found = (
        "no answer (TooManyInterim: more than 10 interim answers (HTTP 1xx))"
        if where == "endless 100 Continue"
        else "none complete within 0.3 s (a request's deadline)"
    )
    assert (result.code, result.out, result.err) == (
        1,
        "",
        f"llm-anatomy: org/x: expected an answer from the Hub, found {found}; {GIVE_UP}\n",
    )
    server.close()


def test_a_proxy_that_never_opens_the_tunnel(short_limits, monkeypatch):
    """CONNECT answered with 100 Continue (forever), or 200 and then headers dripping."""
    proxy = Scripted(endless_continue)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with pytest.raises(AnatomyError) as refused:
        ranged_request("https://127.0.0.1:9").get("file", 0, 9)
    assert (
        refused.value.line()
        == "127.0.0.1:9: expected a tunnel through the proxy (HTTPS_PROXY), found Tunnel connection failed: 100 Continue; check the proxy's address and credentials"
    )
    proxy = Scripted(
        lambda c: (c.sendall(b"HTTP/1.1 200 Connection established\r\n"), drip(c, b"X-Slow: " + b"a" * 1000))
    )
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    transport.forget_connections()
    with pytest.raises(AnatomyError) as late:
        ranged_request("https://127.0.0.1:9").get("file", 0, 9)
    assert (
        late.value.line()
        == f"file: expected an answer from the Hub, found none complete within 0.3 s (a request's deadline); {GIVE_UP}"
    )
    assert proxy.requests == ["CONNECT 127.0.0.1:9 HTTP/1.0"]


def test_retry_after_is_waited_but_capped(short_limits, monkeypatch):
    monkeypatch.setattr(http, "RETRY_DELAYS", (0.5, 1.0, 2.0))
    answers = [
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 429 Slow down\r\nRetry-After: 99999\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", False),  # no Retry-After: the backoff
        (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\n\r\n0123456789", False),
    ]
    assert ranged_request(Canned(answers).url).get("file", 0, 9) == (b"0123456789", 100)
    assert short_limits == [7.0, 30.0, 2.0]
    assert http._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date gone by
    assert http._retry_after("soon") is None
    assert http._retry_after("9" * 5000) is None


@pytest.mark.parametrize(
    "answer, line",
    [
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: "
            + b"9" * 5000
            + b"\r\n\r\n0123456789",
            "file: expected a Content-Length of 1 to 19 digits 0-9, found '"
            + "9" * 39
            + "...; the server's answer is malformed; check HF_ENDPOINT",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: -5\r\n\r\n",
            "file: expected a Content-Length of 1 to 19 digits 0-9, found '-5'; the server's answer is malformed; check HF_ENDPOINT",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: \xb2\r\n\r\n",
            "file: expected a Content-Length of 1 to 19 digits 0-9, found '\u00b2'; the server's answer is malformed; check HF_ENDPOINT",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 15\r\n\r\n0123456789ABCDE",
            "file: expected a Content-Length of 10 bytes (its Content-Range bytes 0-9/100), found Content-Length 15; the server's answer does not match the request; try again",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n0123456789ABCDE\r\n0\r\n\r\n",
            "file: expected 10 bytes, found more; the server's answer does not match the request; try again",
        ),
        (
            b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-"
            + b"9" * 5000
            + b"/100\r\nContent-Length: 10\r\n\r\n0123456789",
            "file: expected a Content-Range header, found 'bytes 0-"
            + "9" * 71
            + "...; the server's answer is malformed; check HF_ENDPOINT",
        ),
    ],
)
def test_a_range_answer_that_says_other_numbers_is_one_line(answer, line, short_limits):
    with pytest.raises(AnatomyError) as refused:
        ranged_request(Canned([(answer, True)]).url).get("file", 0, 9)
    assert refused.value.line() == line


def test_a_model_description_with_a_5000_digit_length(short_limits):
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n{}"
    with pytest.raises(AnatomyError) as refused:
        ranged_request(Canned([(answer, True)]).url).get_whole("org/x", 1000)
    assert (
        refused.value.line()
        == "org/x: expected a whole file with its Content-Length, found HTTP 200, Content-Length "
        + "9" * 40
        + "...; check HF_ENDPOINT"
    )


@pytest.mark.parametrize(
    "proxy, where, found",
    [
        ("http://127.0.0.1:99999", "http://127.0.0.1:99999", "Port out of range 0-65535"),
        ("http://me:secret@[::1", "[::1", "Invalid IPv6 URL"),
    ],
)
def test_a_malformed_proxy_address_is_one_line(proxy, where, found, short_limits, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    with pytest.raises(AnatomyError) as refused:
        ranged_request("https://127.0.0.1:9").get("file", 0, 9)
    assert (
        refused.value.line()
        == f"{where}: expected an http:// proxy address (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY), found one urllib refuses ({found}); fix the proxy's address"
    )


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999", "http://[::1", "ftp://127.0.0.1"])
def test_a_malformed_endpoint_is_one_line(endpoint, short_limits):
    with pytest.raises(AnatomyError) as refused:
        ranged_request(endpoint).get("file", 0, 9)
    assert (
        refused.value.line()
        == f"file: expected an http:// or https:// address, found '{endpoint}/file'; check HF_ENDPOINT"
    )


def test_a_whole_file_for_a_range_is_refused_unread(short_limits):
    """The head says 10 GB are coming: refused on the head, the connection dropped unread."""
    server = Canned(
        [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + b"x" * 100, True),
            (b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 0-9/100\r\nContent-Length: 10\r\n\r\n0123456789", False),
        ]
    )
    request = ranged_request(server.url)
    with pytest.raises(AnatomyError) as refused:
        request.get("file", 0, 9)
    assert (
        refused.value.line()
        == "file: expected a partial answer (206) for bytes 0-9, found the whole file (200); the server ignores ranges; check HF_ENDPOINT"
    )
    assert request.get("file", 0, 9) == (b"0123456789", 100)
    assert server.connections == 2 and server.answers == []
