"""An S3 stand-in on 127.0.0.1 for the tests and the bench: the part of the S3 REST API a
reader uses (ListObjectsV2 with prefix, start-after and continuation tokens; GetObject and
HeadObject with one Range and If-Match), path-style, answering as S3 does (206 with
Content-Range, 412 PreconditionFailed, NoSuchBucket / NoSuchKey / AccessDenied XML).
moto's server would be the usual choice: it needs botocore, which requires
python-dateutil<3, and the test environment is locked to python-dateutil 4. Signatures are
not checked; `denied` buckets answer 403 to everything. `latency` seconds are slept before
each answer (the bench's round trip); `requests` counts what was asked, by method and path."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

PAGE = 1000  # keys per listing page, as S3
MODIFIED = "2026-12-07T00:00:00.000Z"


class S3StandIn:
    def __init__(self, latency: float = 0.0) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.denied: set[str] = set()
        self.latency = latency
        self.requests: list[tuple[str, str]] = []
        self.generated: dict[str, object] = {}  # bucket -> callable(start_after) yielding (key, size) for huge listings
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.buckets.setdefault(bucket, {})[key] = data

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> "S3StandIn":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def _error(code: str, status: int) -> tuple[int, dict, bytes]:
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message></Error>'.encode()
    return status, {"Content-Type": "application/xml"}, body


def _listing(store: S3StandIn, bucket: str, query: dict[str, list[str]]) -> tuple[int, dict, bytes]:
    prefix = query.get("prefix", [""])[0]
    after = query.get("continuation-token", query.get("start-after", [""]))[0]
    limit = min(PAGE, int(query.get("max-keys", [str(PAGE)])[0]))
    generator = store.generated.get(bucket)
    if generator is not None:
        items = generator(prefix, after, limit + 1)
    else:
        keys = sorted(k for k in store.buckets[bucket] if k.startswith(prefix) and k > after)[: limit + 1]
        items = [(k, store.buckets[bucket][k]) for k in keys]
    truncated = len(items) > limit
    items = items[:limit]
    parts = [f"<Contents><Key>{escape(key)}</Key><LastModified>{MODIFIED}</LastModified><ETag>{escape(etag(data))}</ETag><Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass></Contents>" for key, data in items]
    token = f"<NextContinuationToken>{escape(items[-1][0])}</NextContinuationToken>" if truncated else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(items)}</KeyCount><MaxKeys>{limit}</MaxKeys>"
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{''.join(parts)}</ListBucketResult>"
    )
    return 200, {"Content-Type": "application/xml"}, body.encode()


def _answer(store: S3StandIn, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    split = urlsplit(path)
    bucket, _, key = unquote(split.path).lstrip("/").partition("/")
    if bucket in store.denied:
        return _error("AccessDenied", 403)
    if bucket not in store.buckets and bucket not in store.generated:
        return _error("NoSuchBucket", 404)
    if not key:
        return _listing(store, bucket, parse_qs(split.query))
    data = store.buckets.get(bucket, {}).get(key)
    if data is None:
        return _error("NoSuchKey", 404)
    wanted = headers.get("if-match")
    if wanted and wanted != etag(data):
        return _error("PreconditionFailed", 412)
    common = {"ETag": etag(data), "Last-Modified": formatdate(0, usegmt=True), "Accept-Ranges": "bytes"}
    found = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range", ""))
    if found is None:
        return 200, common, data
    start = int(found[1])
    end = min(len(data) - 1, int(found[2]) if found[2] else len(data) - 1)
    if start >= len(data):
        return _error("InvalidRange", 416)
    return 206, {**common, "Content-Range": f"bytes {start}-{end}/{len(data)}"}, data[start : end + 1]


def _handler(store: S3StandIn) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _serve(self, method: str) -> None:
            with store._lock:
                store.requests.append((method, self.path))
            if store.latency:
                time.sleep(store.latency)
            status, headers, body = _answer(store, method, self.path, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

    return Handler

