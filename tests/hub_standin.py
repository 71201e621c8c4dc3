"""A stand-in for the Hugging Face Hub on 127.0.0.1, serving folders as model repositories
the way the Hub does (huggingface_hub's file_download.py and utils/_http.py read these
answers): two servers, the Hub and a CDN.

Hub:  GET /api/models/REPO[/revision/REV]   model info: id, sha, siblings, gated
      GET /api/models?author=NAME[&cursor=N] an author's models, page_size a page, the next
                                            page's URL in a Link: <...>; rel="next" header
      HEAD|GET /REPO/resolve/REV/FILE       small files answered here (ETag, X-Repo-Commit);
                                            weight files 302-redirected to the CDN, with
                                            X-Linked-Size and X-Linked-Etag as the Hub sends
CDN:  HEAD|GET /REPO/SHA/FILE?sig=...      one Range honoured (206 + Content-Range); a
                                            multi-range request gets the whole file (200),
                                            as S3-backed CDNs answer
Refusals carry X-Error-Code as the Hub's do: 401 RepoNotFound for unknown repos (and
private ones), 401/403 GatedRepo for gated repos without an allowed token, 404
RevisionNotFound / EntryNotFound; a token it does not know is a 401 with the Hub's
X-Error-Message "Invalid credentials in Authorization header" and no code. Faults for
tests: 429 once, a delay per request, a slow answer, a lying Content-Range, a short body,
JSON nested 100,000 deep. Every request is logged (host, method, path, Range, status, body
bytes, whether it carried Authorization)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pth", ".pt")
IDLE_SECONDS = 1800  # the servers stop by themselves after this long without a request, whatever the tests do


class Repo:
    """A folder's files, and files generated as they are read: {name: (size, content)}, where
    content(first, last) gives bytes first..last (a file too large to exist, say)."""

    def __init__(self, folder, sha, gated=False, revisions=None, generated=None):
        self.folder, self.sha, self.gated = str(folder), sha, gated
        self.revisions = {"main": sha, sha: sha, **(revisions or {})}
        self.generated = generated or {}

    def files(self):
        names = list(self.generated)
        for root, _, files in os.walk(self.folder):
            for name in files:
                names.append(os.path.relpath(os.path.join(root, name), self.folder).replace(os.sep, "/"))
        return sorted(names)

    def size(self, filename):
        if filename in self.generated:
            return self.generated[filename][0]
        return os.path.getsize(os.path.join(self.folder, filename))

    def read(self, filename, first, last):
        if filename in self.generated:
            return self.generated[filename][1](first, last)
        with open(os.path.join(self.folder, filename), "rb") as handle:
            handle.seek(first)
            return handle.read(last - first + 1)


class LogEntry:
    def __init__(self, host, method, path, range_header, status, nbytes, authorized, arrived):
        self.host, self.method, self.path, self.range = host, method, path, range_header
        self.arrived = arrived  # time.monotonic() when the request came in, before the delay
        self.status, self.nbytes, self.authorized = status, nbytes, authorized

    def __repr__(self):
        return f"{self.host} {self.method} {self.path} {self.range} -> {self.status} ({self.nbytes} B)"


class HubStandIn:
    """hub.add(repo_id, folder); hub.url is the HF_ENDPOINT; hub.log the requests."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.log: list[LogEntry] = []
        self.tokens = {"hf_allowed"}  # tokens with access to gated repos
        self.valid_tokens = {"hf_allowed", "hf_other"}  # any other token is refused outright
        self.delay = 0.0  # seconds added to every request (the bench's network)
        self.page_size = 1000  # models per page of a listing, as the Hub's
        self.faults: dict[
            str, str
        ] = {}  # path prefix -> "429-once" | "slow" | "lie-range" | "short-body" | "nested-json"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_request = time.monotonic()
        self.hub = self._server("hub")
        self.cdn = self._server("cdn")
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self.cdn.server_address[1]}"
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in (self.hub, self.cdn)]
        for thread in self._threads:
            thread.start()

    def add(self, repo_id, folder, gated=False, revisions=None, sha=None, generated=None):
        sha = sha or hashlib.sha1(f"{repo_id}@{folder}".encode()).hexdigest()
        self.repos[repo_id] = Repo(folder, sha, gated, revisions, generated)
        return sha

    def clear_log(self):
        with self._lock:
            self.log.clear()

    def moved(self):
        """(requests, body bytes) logged so far."""
        with self._lock:
            return len(self.log), sum(e.nbytes for e in self.log)

    def close(self):
        self._stop.set()
        for server in (self.hub, self.cdn):
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _serve(self, server):
        # Idle time, not age: a session-wide stand-in lives as long as a slow suite needs it.
        while not self._stop.is_set() and time.monotonic() - self._last_request < IDLE_SECONDS:
            server.handle_request()  # returns after server.timeout without a request

    def _server(self, host):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm the body waits for
            # the client's delayed ACK of the headers, 40 ms per keep-alive request on Linux.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                standin._handle(self, host, head=True)

            def do_GET(self):
                standin._handle(self, host, head=False)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, address: None  # a client hanging up mid-answer is no news
        server.timeout = 0.2
        return server

    # ---------------------------------------------------------------- answers

    def _fault(self, path):
        for prefix, fault in list(self.faults.items()):
            if path.startswith(prefix):
                if fault == "429-once":
                    del self.faults[prefix]
                return fault
        return None

    def _handle(self, handler, host, head):
        self._last_request = handler.arrived = time.monotonic()
        if self.delay:
            time.sleep(self.delay)
        path = urlsplit(handler.path).path
        fault = self._fault(f"{host}:{path}")
        if fault == "slow":
            time.sleep(30)
        if fault == "429-once":
            return self._send(handler, host, 429, {}, b"", head)
        if fault == "nested-json":  # JSON that json.loads cannot parse: it recurses once per level
            return self._send(
                handler, host, 200, {"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000, head
            )
        try:
            parts = [unquote(part) for part in path.strip("/").split("/")]  # a revision's / is %2F
            if host == "hub":
                self._hub(handler, parts, head, fault)
            else:
                self._cdn(handler, parts, head, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, handler, host, status, headers, body, head, fault=None):
        sent = body[: len(body) // 2] if not head and fault == "short-body" else body
        with self._lock:  # logged before the client sees a byte (end_headers sends), so a test reads a complete log
            authorized = "authorization" in {k.lower() for k in handler.headers}
            self.log.append(
                LogEntry(
                    host,
                    handler.command,
                    handler.path,
                    handler.headers.get("Range"),
                    status,
                    0 if head else len(sent),
                    authorized,
                    handler.arrived,
                )
            )
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        if sent is not body:
            handler.close_connection = True
        handler.end_headers()
        if not head:
            handler.wfile.write(sent)

    def _error(self, handler, status, code, message, head):
        self._send(
            handler,
            "hub",
            status,
            {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"},
            json.dumps({"error": message}).encode(),
            head,
        )

    def _repo_and_rest(self, parts):
        for n in (2, 1):
            repo_id = "/".join(parts[:n])
            if repo_id in self.repos:
                return repo_id, self.repos[repo_id], parts[n:]
        return None, None, parts

    def _authorized(self, handler, repo):
        auth = handler.headers.get("Authorization", "")
        return not repo.gated or auth.startswith("Bearer ") and auth[len("Bearer ") :] in self.tokens

    def _hub(self, handler, parts, head, fault):
        if parts == ["api", "agent-harnesses"]:  # huggingface_hub's user agent asks for it, at most once a day
            registry = {"standardEnvVars": [], "harnesses": {}}
            return self._send(
                handler, "hub", 200, {"Content-Type": "application/json"}, json.dumps(registry).encode(), head
            )
        auth = handler.headers.get("Authorization")
        if (
            auth is not None and auth.removeprefix("Bearer ") not in self.valid_tokens
        ):  # as the Hub answers a bad token, whatever the repo
            return self._send(
                handler,
                "hub",
                401,
                {"X-Error-Message": "Invalid credentials in Authorization header", "Content-Type": "application/json"},
                b'{"error":"Invalid credentials in Authorization header"}',
                head,
            )
        if parts == ["api", "models"]:
            return self._listing(handler, head)
        if parts[:2] == ["api", "models"]:
            repo_id, repo, rest = self._repo_and_rest(parts[2:])
            if repo is None:
                return self._error(handler, 401, "RepoNotFound", "Repository not found", head)
            revision = rest[1] if rest[:1] == ["revision"] and len(rest) == 2 else "main"
            if revision not in repo.revisions:
                return self._error(handler, 404, "RevisionNotFound", "Invalid rev id", head)
            info = {
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.revisions[revision],
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "siblings": [{"rfilename": name} for name in repo.files()],
            }
            return self._send(
                handler, "hub", 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), head
            )
        repo_id, repo, rest = self._repo_and_rest(parts)
        if repo is None or rest[:1] != ["resolve"] or len(rest) < 3:
            return self._error(handler, 401, "RepoNotFound", "Repository not found", head)
        revision, filename = rest[1], "/".join(rest[2:])
        if revision not in repo.revisions:
            return self._error(handler, 404, "RevisionNotFound", "Invalid rev id", head)
        if not self._authorized(handler, repo):
            status = 403 if handler.headers.get("Authorization") else 401
            return self._error(handler, status, "GatedRepo", f"Access to model {repo_id} is restricted.", head)
        if filename not in repo.files():
            return self._error(handler, 404, "EntryNotFound", "Entry not found", head)
        sha = repo.revisions[revision]
        etag = hashlib.sha256(f"{os.path.join(repo.folder, filename)}{repo.size(filename)}".encode()).hexdigest()
        common = {"X-Repo-Commit": sha, "ETag": f'"{etag}"'}
        if filename.endswith(LFS_SUFFIXES):
            location = f"{self.cdn_url}/{quote(repo_id)}/{sha}/{quote(filename)}?sig=standin"
            headers = {
                **common,
                "Location": location,
                "X-Linked-Size": str(repo.size(filename)),
                "X-Linked-Etag": f'"{etag}"',
            }
            return self._send(handler, "hub", 302, headers, b"", head)
        return self._file(handler, "hub", repo, filename, head, common, fault)

    def _listing(self, handler, head):
        """An author's models sorted by id, a page from ?cursor= (an offset here; the Hub's is
        opaque), with the next page's URL in the Link header while there is one."""
        from urllib.parse import parse_qs, urlencode

        query = parse_qs(urlsplit(handler.path).query)
        author = query.get("author", [""])[0]
        start = int(query.get("cursor", ["0"])[0])
        ids = sorted(r for r in self.repos if r.startswith(author + "/"))
        page = [
            {
                "id": r,
                "modelId": r,
                "sha": self.repos[r].sha,
                "private": False,
                "gated": "manual" if self.repos[r].gated else False,
            }
            for r in ids[start : start + self.page_size]
        ]
        headers = {"Content-Type": "application/json"}
        if start + self.page_size < len(ids):
            following = urlencode({**{k: v[0] for k, v in query.items()}, "cursor": start + self.page_size})
            headers["Link"] = f'<{self.url}/api/models?{following}>; rel="next"'
        return self._send(handler, "hub", 200, headers, json.dumps(page).encode(), head)

    def _cdn(self, handler, parts, head, fault):
        repo_id, repo, rest = self._repo_and_rest(parts)
        if repo is None or len(rest) < 2:
            return self._send(handler, "cdn", 403, {}, b"AccessDenied", head)
        return self._file(handler, "cdn", repo, "/".join(rest[1:]), head, {"Accept-Ranges": "bytes"}, fault)

    def _file(self, handler, host, repo, filename, head, headers, fault):
        size = repo.size(filename)
        wanted = handler.headers.get("Range")
        if wanted is None or "," in wanted:  # no range, or several: the whole file
            return self._send(handler, host, 200, headers, repo.read(filename, 0, size - 1), head, fault=fault)
        try:
            unit, _, span = wanted.partition("=")
            first_text, _, last_text = span.partition("-")
            first, last = int(first_text), min(int(last_text) if last_text else size - 1, size - 1)
            assert unit == "bytes" and first <= last
        except (ValueError, AssertionError):
            return self._send(handler, host, 416, {"Content-Range": f"bytes */{size}"}, b"", head)
        body = repo.read(filename, first, last)
        shown_first = first + 1 if fault == "lie-range" else first
        return self._send(
            handler,
            host,
            206,
            {**headers, "Content-Range": f"bytes {shown_first}-{last}/{size}"},
            body,
            head,
            fault=fault,
        )
