"""Session fixtures: one real local system (PostgreSQL, Valkey, SeaweedFS, API, workers).

It runs on free ports in a temporary folder, so `make test` works beside `make run`, and
the folder is removed at the end, so nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.s3_targets import S3_TARGETS, S3Target, moto_target, own_target
from tests.stack import api_client, running_system
from tests.storage_backend import s3_container


@pytest.fixture(scope="session")
def system() -> Iterator[LocalSystem]:
    with running_system("imgflow-test-") as running:
        yield running


@pytest.fixture(scope="session")
def trace_dir(system: LocalSystem) -> Path:
    return system.data_dir / "traces"


@pytest.fixture(scope="session")
def settings(system: LocalSystem) -> CommonSettings:
    return system.settings()


@pytest.fixture(scope="session")
def store(settings: CommonSettings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


@pytest.fixture(scope="session")
def database_url(settings: CommonSettings) -> str:
    return settings.database_url


@pytest.fixture(scope="session")
def api(system: LocalSystem) -> Iterator[httpx.Client]:
    with api_client(system) as client:
        yield client


@pytest.fixture(scope="session", params=S3_TARGETS)
def s3_target(request: pytest.FixtureRequest, settings: CommonSettings) -> Iterator[S3Target]:
    """Each S3 server the storage contract tests run against, in turn."""
    if request.param == "seaweedfs":
        yield S3Target("seaweedfs", settings, checks_checksums=True, checks_signatures=True)
    elif request.param == "own":
        yield own_target(settings)
    elif request.param == "container":
        with s3_container(settings) as configured:  # MinIO's image by default: it checks both
            yield S3Target("container", configured, checks_checksums=True, checks_signatures=True)
    else:
        with moto_target(settings, tls=request.param == "moto-tls") as target:
            yield target


# The webhook tests' fixtures (own_sender, account) live beside their receivers and senders.
pytest_plugins = ["tests.webhook_support"]
