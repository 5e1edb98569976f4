"""A second, independent S3 server: moto's server mode (`moto_server`, from PyPI).

SeaweedFS is the stack's S3; the storage contract tests also run against this one, so
behaviour that only one implementation has is found (see docs/development/testing.md).
moto keeps objects in memory and, unlike SeaweedFS and MinIO, checks neither signatures
nor `x-amz-checksum-sha256`. It can serve HTTPS with a certificate given to it.
"""

from __future__ import annotations

import shutil
import signal
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import urllib3
from minio import Minio

from imgflow_localstack.child import Child
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.ports import HOST
from imgflow_localstack.seaweedfs import S3_REGION
from imgflow_localstack.server import Server
from imgflow_localstack.waiting import wait_until_ready


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate and key (PEM), and the CA that signed the certificate."""

    cert: Path
    key: Path
    ca: Path


def moto_binary() -> Path:
    beside_python = Path(sysconfig.get_path("scripts")) / "moto_server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("moto_server")
    if found is None:
        raise LocalStackError("`moto_server` not found: install moto (uv sync)")
    return Path(found)


class MotoS3Server(Server):
    display_name = "moto S3"

    def __init__(
        self,
        log_path: Path,
        port: int,
        bucket: str,
        tls: TlsFiles | None = None,
        start_timeout_s: float = 60,
    ) -> None:
        super().__init__(start_timeout_s)
        self.log_path = log_path
        self.port = port
        self.bucket = bucket
        self.tls = tls

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    def listeners(self) -> dict[str, int]:
        return {}  # a test's server on a free port: no IMGFLOW_LOCAL_PORT_* to name

    def _make_child(self) -> Child:
        argv: list[str | Path] = [moto_binary(), "-H", HOST, "-p", str(self.port)]
        if self.tls is not None:
            argv += ["-c", self.tls.cert, "-k", self.tls.key]
        return Child("moto-s3", argv, self.log_path, stop_signal=signal.SIGTERM)

    def client(self) -> Minio:
        """A minio client for this server (any key: moto checks none)."""
        options = {} if self.tls is None else {"ca_certs": str(self.tls.ca)}
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=1.0, read=10.0), retries=False, **options
        )
        return Minio(
            self.endpoint,
            access_key="moto",
            secret_key="moto-secret",
            secure=self.tls is not None,
            region=S3_REGION,
            http_client=http,
        )

    def wait_ready(self) -> None:
        assert self.child is not None, "launch() first"
        client = self.client()

        def bucket_ready() -> bool:
            if not client.bucket_exists(self.bucket):
                client.make_bucket(self.bucket)
            return True

        wait_until_ready(
            bucket_ready,
            what=f"moto S3 on port {self.port}",
            child=self.child,
            timeout_s=self.start_timeout_s,
        )
