"""A whole imgflow system (the API and the three workers) on one of the storage
contract's S3 servers (tests/s3_targets.py), for tests that prove an API flow on each.

On ``seaweedfs`` it is the session's system itself. On another server it borrows the
session's PostgreSQL and Valkey, with a database and a broker database of its own (so
neither system sees the other's rows or jobs), and its processes use that server's S3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from imgflow_contracts.schema.migrate import run_migrations
from imgflow_contracts.settings import ENV_PREFIX, CommonSettings
from imgflow_localstack.ports import HOST, free_port
from imgflow_localstack.processes import ServiceGroup
from imgflow_localstack.services import service_specs
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.s3_targets import S3Target
from tests.support import query

# Broker databases of the session's Valkey that nothing else uses (the hasher start-up
# test takes 15).
_BROKER_DB = {"moto": 11, "moto-tls": 12, "own": 13, "container": 14}


@dataclass(frozen=True)
class TargetSystem:
    target: S3Target
    api_url: str
    env: Mapping[str, str]  # the IMGFLOW_* variables its processes were given
    auth_headers: Mapping[str, str]
    logs_dir: Path

    @property
    def settings(self) -> CommonSettings:
        values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in self.env.items()}
        return CommonSettings.model_validate(values)

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def store(self) -> ObjectStore:
        return self.target.store

    @property
    def s3_url(self) -> str:
        """Where presigned URLs point when no public endpoint is set."""
        s3 = self.target.settings
        return f"{'https' if s3.s3_secure else 'http'}://{s3.s3_endpoint}"

    @property
    def public_s3_url(self) -> str:
        """The same server by another name (`localhost` for a local one), for
        IMGFLOW_S3_PUBLIC_ENDPOINT."""
        host, port = self.target.settings.s3_endpoint.rsplit(":", 1)
        scheme = self.s3_url.split(":", 1)[0]
        return f"{scheme}://{'localhost' if host == HOST else host}:{port}"


def s3_env(settings: CommonSettings) -> dict[str, str]:
    """The IMGFLOW_S3_* variables that point a process at the server of ``settings``."""
    values = {
        "S3_ENDPOINT": settings.s3_endpoint,
        "S3_BUCKET": settings.s3_bucket,
        "S3_SECURE": str(settings.s3_secure).lower(),
        "S3_ACCESS_KEY": settings.s3_access_key,
        "S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "S3_REGION": settings.s3_region,
        "S3_CA_BUNDLE": settings.s3_ca_bundle or "",
    }
    return {f"{ENV_PREFIX}{k}": v for k, v in values.items() if v}


def _own_database(session_url: str, name: str) -> str:
    """A fresh database beside the session's, migrated; its URL."""
    query(session_url, f"DROP DATABASE IF EXISTS {name}")
    query(session_url, f"CREATE DATABASE {name}")
    url = f"{session_url.rsplit('/', 1)[0]}/{name}"
    run_migrations(url)
    return url


@contextlib.contextmanager
def system_on(target: S3Target, session: LocalSystem) -> Iterator[TargetSystem]:
    if target.name == "seaweedfs":
        yield TargetSystem(
            target, session.api_url, session.env, session.auth_headers, session.logs_dir
        )
        return
    base = session.settings()
    name = target.name.replace("-", "_")
    env = {
        **session.env,
        f"{ENV_PREFIX}DATABASE_URL": _own_database(base.database_url, f"imgflow_{name}"),
        f"{ENV_PREFIX}BROKER_URL": f"{base.broker_url.rsplit('/', 1)[0]}/{_BROKER_DB[target.name]}",
        **s3_env(target.settings),
    }
    if not target.checks_checksums:
        # What the hasher's start-up refusal asks for on such a server (shown in
        # test_stored_checksums.py): hash every original rather than trust S3's checksum.
        env[f"{ENV_PREFIX}HASHER_TRUST_STORED_CHECKSUM"] = "false"
    port = free_port()
    specs = []
    for spec in service_specs(port):
        argv = list(spec.argv)
        if "-n" in argv:  # worker node names of their own beside the session's
            argv[argv.index("-n") + 1] = f"{spec.name}-{target.name}@%h"
        specs.append(replace(spec, name=f"{spec.name}-{target.name}", argv=argv))
    logs_dir = session.logs_dir / f"system-{target.name}"
    logs_dir.mkdir(parents=True, exist_ok=True)
    group = ServiceGroup(specs, env, logs_dir)
    group.start_all()
    try:
        yield TargetSystem(target, f"http://{HOST}:{port}", env, session.auth_headers, logs_dir)
    finally:
        group.stop_all()
