"""A system of its own for fault tests, with short limits so recovery fits in a test.

Separate from the session system: these tests kill workers and stop servers, and the
short time limits, retry delays and sweeper deadlines below would not suit the others.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.stack import api_client, running_system

ADMIN_TOKEN = "fault-tests-admin-token"
BREAKING_DEPTH = 150

FAULT_SETTINGS = {
    # Time limits: soft 10 s, hard 15 s; the broker redelivers unacked jobs after 20 s.
    # (Tighter limits turn the first slow requests to a just-restarted S3 into failures
    # on a loaded machine.)
    "TASK_SOFT_TIME_LIMIT_S": "10",
    "TASK_TIME_LIMIT_S": "15",
    "BROKER_VISIBILITY_TIMEOUT_S": "20",
    # Retries: 8 of them, 0.25 s doubling to a 4 s cap: they outlast ~10 s of outage.
    "TASK_MAX_RETRIES": "8",
    "RETRY_BASE_S": "0.25",
    "RETRY_CAP_S": "4",
    # Sweeper: a stage running for 20 s (past the hard limit) is re-enqueued.
    "SWEEPER_INTERVAL_S": "0.5",
    "SWEEPER_RUNNING_AFTER_S": "20",
    "SWEEPER_PENDING_AFTER_S": "60",
    "SWEEPER_MAX_SWEEPS": "5",
    "QUEUE_BREAKING_DEPTH": str(BREAKING_DEPTH),
    "QUEUE_DEPTH_REFRESH_S": "0.2",
    "OUTBOX_RELAY_INTERVAL_S": "0.2",
    "ADMIN_TOKEN": ADMIN_TOKEN,
    # A delete cut short is finished by the sweeper once marked this long.
    "IMAGE_DELETE_FINISH_AFTER_S": "1",
}


@pytest.fixture(scope="package")
def fault_system() -> Iterator[LocalSystem]:
    with running_system("imgflow-faults-", FAULT_SETTINGS) as running:
        yield running


@pytest.fixture(scope="package")
def fault_settings(fault_system: LocalSystem) -> CommonSettings:
    return fault_system.settings()


@pytest.fixture(scope="package")
def fault_store(fault_settings: CommonSettings) -> ObjectStore:
    return ObjectStore.from_settings(fault_settings)


@pytest.fixture(scope="package")
def fault_db(fault_settings: CommonSettings) -> str:
    return fault_settings.database_url


@pytest.fixture(scope="package")
def fault_api(fault_system: LocalSystem) -> Iterator[httpx.Client]:
    with api_client(fault_system) as client:
        yield client


@pytest.fixture
def healthy(fault_system: LocalSystem) -> Iterator[LocalSystem]:
    """Every test starts and ends with every server and process running."""
    yield fault_system
    for server in fault_system.stack.servers:
        if server.child is not None and server.child.pid is not None:
            os.kill(server.child.pid, signal.SIGCONT)  # in case a test froze it
        if not server.is_running():
            server.start()
    for name in ("api", "thumbnailer", "hasher", "deduper"):
        if not fault_system.service(name).is_running():
            fault_system.start_service(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On a failure, attach the tail of every process's log to the report."""
    report = yield
    system = item.funcargs.get("healthy") or item.funcargs.get("fault_system")
    if report.failed and isinstance(system, LocalSystem):
        for log in sorted(system.logs_dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"log {log.name}", "\n".join(tail)))
    return report
