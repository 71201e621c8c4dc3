"""S3 for the tests and the bench: moto's own server (ThreadedMotoServer) on 127.0.0.1 at a
free port, in this process, stopped on exit. What moto does not do is added around its WSGI
app, never in place of it: `requests` lists what it was asked, by method and path, so a test
counts a command's requests; `latency` seconds are slept before each answer (the bench's
round trip). Objects are put through moto's backend (the 5,000-key listing costs no 5,000
requests), or through boto3 where a test changes one between two reads."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.s3.models import s3_backends


class MotoS3:
    def __init__(self, latency: float = 0.0) -> None:
        self.server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
        self.latency = latency
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        host, port = self.server.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def backend(self):
        return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def bucket(self, name: str) -> None:
        if name not in self.backend.buckets:
            self.backend.create_bucket(name, "us-east-1")

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.bucket(bucket)
        self.backend.put_object(bucket, key, data)

    def get(self, bucket: str, key: str) -> bytes:
        return self.backend.get_object(bucket, key).value

    def client(self, service: str = "s3", key: tuple[str, str] = ("AKIAEXAMPLE", "x")):
        """A boto3 client of this server (a write between a listing and a read, as a user's upload)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
        )

    def reader(self, denied: tuple[str, ...] = ()) -> tuple[str, str]:
        """(key id, secret) of an IAM user moto holds to its policy: every bucket but `denied`.
        moto checks signatures and policies only once the caller sets
        moto.settings.INITIAL_NO_AUTH_ACTION_COUNT to 0 (a test's monkeypatch)."""
        iam = self.client("iam")
        iam.create_user(UserName="reader")
        refused = [arn for name in denied for arn in (f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*")]
        statements = [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
        statements += [{"Effect": "Deny", "Action": "s3:*", "Resource": refused}] if refused else []
        iam.put_user_policy(
            UserName="reader",
            PolicyName="read",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _counted(self, app):
        def counting(environ, start_response):
            with self._lock:
                self.requests.append((environ["REQUEST_METHOD"], environ.get("RAW_URI") or environ["PATH_INFO"]))
            if self.latency:
                time.sleep(self.latency)
            return app(environ, start_response)

        return counting

    def __enter__(self) -> "MotoS3":
        self.server.start()
        wsgi = self.server._server  # werkzeug's server: it calls .app for each request
        wsgi.app = self._counted(wsgi.app)
        return self

    def __exit__(self, *exc: object) -> None:
        # moto's backends live as long as the process: emptied through its own reset
        urllib.request.urlopen(
            urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST"), timeout=30
        ).close()
        self.server.stop()
        self.server._server.server_close()


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def point_clients_at(server: MotoS3, monkeypatch) -> MotoS3:
    """The environment an S3 client reads, aimed at the server with its reader's keys; moto
    then checks signatures and policies (it skips them by default)."""
    import moto.settings

    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.key[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.key[1])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return server
