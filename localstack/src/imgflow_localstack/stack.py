"""The three servers together: PostgreSQL, Valkey and SeaweedFS S3 on one data folder."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from types import TracebackType

from imgflow_contracts.settings import ENV_PREFIX, CommonSettings
from imgflow_localstack.child import Child
from imgflow_localstack.data_dir import DataDirLock, DataLayout
from imgflow_localstack.ports import StackPorts, ensure_ports_free
from imgflow_localstack.postgres import PostgresServer
from imgflow_localstack.seaweedfs import S3_REGION, SeaweedS3Server
from imgflow_localstack.server import Server
from imgflow_localstack.valkey import ValkeyServer
from imgflow_localstack.waiting import run_side_by_side

log = logging.getLogger(__name__)

_DEFAULTS = CommonSettings.model_fields
DEFAULT_S3_ACCESS_KEY: str = _DEFAULTS["s3_access_key"].default
DEFAULT_S3_SECRET_KEY: str = _DEFAULTS["s3_secret_key"].default.get_secret_value()
DEFAULT_BUCKET: str = _DEFAULTS["s3_bucket"].default


class LocalStack:
    """Start and stop the servers imgflow needs; ``env()`` points imgflow processes at them.

    Use as a context manager, from a long-lived thread (see child.py). Restarting on the
    same ``data_dir`` keeps the data: PostgreSQL rows, S3 objects, Valkey's queue.
    """

    def __init__(
        self,
        data_dir: Path,
        ports: StackPorts,
        s3_access_key: str = DEFAULT_S3_ACCESS_KEY,
        s3_secret_key: str = DEFAULT_S3_SECRET_KEY,
        bucket: str = DEFAULT_BUCKET,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.ports = ports
        self.s3_access_key = s3_access_key
        self.s3_secret_key = s3_secret_key
        self.bucket = bucket
        layout = DataLayout(self.data_dir)
        self.layout = layout
        self.postgres = PostgresServer(layout.postgres, layout.log("postgres"), ports.postgres)
        self.valkey = ValkeyServer(layout.valkey, layout.log("valkey"), ports.valkey)
        self.s3 = SeaweedS3Server(
            layout.s3,
            layout.log("seaweedfs"),
            ports,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            bucket=bucket,
        )
        self._lock = DataDirLock(self.data_dir)

    @property
    def servers(self) -> list[Server]:
        """In start order; stopped in reverse."""
        return [self.postgres, self.valkey, self.s3]

    @property
    def database_url(self) -> str:
        return self.postgres.database_url

    @property
    def broker_url(self) -> str:
        return self.valkey.url

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint

    @property
    def logs_dir(self) -> Path:
        return self.layout.logs

    def env(self) -> dict[str, str]:
        """IMGFLOW_* variables that make every imgflow process use this stack."""
        values = {
            "database_url": self.database_url,
            "broker_url": self.broker_url,
            "s3_endpoint": self.s3_endpoint,
            "s3_access_key": self.s3_access_key,
            "s3_secret_key": self.s3_secret_key,
            "s3_secure": "false",
            "s3_region": S3_REGION,
            "s3_bucket": self.bucket,
        }
        unknown = values.keys() - CommonSettings.model_fields.keys()
        assert not unknown, f"not settings of imgflow_contracts: {unknown}"
        return {f"{ENV_PREFIX}{name.upper()}": value for name, value in values.items()}

    def start(self) -> None:
        """Start all three and wait until each answers; on failure, stop what started."""
        began = time.monotonic()
        log.info("starting PostgreSQL, Valkey and SeaweedFS S3 in %s", self.data_dir)
        self._lock.acquire()
        try:
            # All ports first, so a taken one fails fast and before anything is spawned.
            for server in self.servers:
                ensure_ports_free(server.listeners(), server.display_name)
            # Spawn on this thread (their parent-death signal is tied to it); PostgreSQL's
            # initdb runs here too, while Valkey and SeaweedFS already boot.
            for server in (self.valkey, self.s3, self.postgres):
                server.launch()
            run_side_by_side([server.wait_ready for server in self.servers], "ready")
        except BaseException:
            self.stop()
            raise
        log.info("servers up in %.1f s", time.monotonic() - began)

    def stop(self) -> None:
        """Stop all three (side by side: they don't depend on each other), then unlock."""
        servers = list(reversed(self.servers))
        for server in servers:
            server.request_stop()
        errors: list[BaseException] = []
        for server in servers:
            try:
                server.stop()
            except Exception as exc:
                errors.append(exc)
        self._lock.release()
        if errors:
            raise errors[0]

    def is_running(self) -> bool:
        return all(server.is_running() for server in self.servers)

    def exited(self) -> list[Child]:
        """Server processes that exited without being asked to stop."""
        children = [server.child for server in self.servers if server.child is not None]
        return [child for child in children if child.exited_unexpectedly()]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception) if exc is not None else contextlib.nullcontext():
            self.stop()
