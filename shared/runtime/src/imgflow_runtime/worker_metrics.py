"""Prometheus metrics of a Celery worker, summed over its prefork child processes.

Children record into prometheus_client's multiprocess files; the parent serves the sum
on ``IMGFLOW_METRICS_PORT``. The directory must be known before any metric is created,
so ``prepare_multiprocess_dir`` runs when the worker module is imported, before forking.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from typing import Any

from celery import signals

log = logging.getLogger(__name__)

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir() -> None:
    """Use the configured directory, or a temporary one that this process removes at exit."""
    if os.environ.get(_ENV):
        return
    path = tempfile.mkdtemp(prefix="imgflow-metrics-")
    os.environ[_ENV] = path
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # forked pool children inherit atexit hooks
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)


prepare_multiprocess_dir()

# Imported after the directory is set: prometheus_client picks its storage at import.
from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Histogram,
    multiprocess,
    start_http_server,
)

TASKS = Counter(
    "imgflow_tasks",
    "Stage tasks by outcome: done, failed, retried, skipped.",
    ["stage", "outcome"],
)
TASK_DURATION = Histogram(
    "imgflow_task_duration_seconds",
    "Run time of a stage task.",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 240),
)
QUEUE_WAIT = Histogram(
    "imgflow_task_queue_wait_seconds",
    "From upload accepted to the stage starting.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800),
)


def serve_metrics(port: int) -> None:
    """Serve the children's summed metrics from the worker's main process."""
    if port <= 0:
        return

    def start(**_: Any) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, registry=registry)
        log.info("worker metrics on :%d/metrics", port)

    def forget_child(pid: int | None = None, **_: Any) -> None:
        multiprocess.mark_process_dead(pid or os.getpid())

    signals.worker_ready.connect(start, weak=False)
    signals.worker_process_shutdown.connect(forget_child, weak=False)
