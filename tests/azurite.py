"""Azure Blob Storage for the tests: Azurite, Microsoft's emulator (a Node.js program from
the npm registry; .ci/run installs it into .ci/azurite), on 127.0.0.1 at a free port, in
memory, stopped by the test. Its well-known development account signs the requests; a
container is made with one request signed here (obstore makes no containers), blobs are put
through obstore's AzureStore."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import os
import re
import shutil
import subprocess
import time
import urllib.request

# Azurite's development account (its documentation's, the same on every machine)
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_SECONDS = 60  # Node.js and Azurite start in ~5 s on this machine's 2 shared cores
LISTENING = re.compile(rb"listens on http://127\.0\.0\.1:(\d+)")
INSTALLED = os.path.join(os.path.dirname(__file__), "..", ".ci", "azurite", "node_modules", ".bin", "azurite-blob")


def program() -> str | None:
    """azurite-blob: AZURITE_BLOB, else .ci/run's install, else on PATH; None if nowhere."""
    for candidate in (os.environ.get("AZURITE_BLOB"), INSTALLED, shutil.which("azurite-blob")):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


class Azurite:
    def __init__(self, path: str) -> None:
        self.path = path
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.endpoint};"

    def __enter__(self) -> "Azurite":
        self.process = subprocess.Popen(
            [
                self.path,
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_SECONDS
        output = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break  # exited
            output += line
            found = LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                return self
        self.__exit__()
        raise RuntimeError(f"Azurite did not start: {output[-500:]!r}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()  # type: ignore[union-attr]

    def container(self, name: str) -> None:
        """Create a container: one PUT signed with the account's key (Shared Key)."""
        date = email.utils.formatdate(usegmt=True)
        version = "2021-08-06"
        # verb, then eleven standard headers left empty, then the x-ms- headers and the resource
        signed = f"PUT\n{chr(10) * 11}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
        signature = base64.b64encode(hmac.new(base64.b64decode(KEY), signed.encode(), hashlib.sha256).digest())
        request = urllib.request.Request(
            f"{self.endpoint}/{name}?restype=container",
            method="PUT",
            headers={
                "x-ms-date": date,
                "x-ms-version": version,
                "Authorization": f"SharedKey {ACCOUNT}:{signature.decode()}",
                "Content-Length": "0",
            },
        )
        urllib.request.urlopen(request, timeout=30).close()

    def put(self, container: str, key: str, data: bytes) -> None:
        import obstore
        from obstore.store import AzureStore

        store = AzureStore(
            container,
            config={"account_name": ACCOUNT, "account_key": KEY, "endpoint": self.endpoint},
            client_options={"allow_http": True},
        )
        obstore.put(store, key, data)


def point_clients_at(server: Azurite, monkeypatch) -> Azurite:
    """The environment an Azure client reads, aimed at the emulator by its connection string
    (what Azurite and the Azure tools print), no account variables to win over it."""
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
    return server
