"""The imgflow processes themselves, described in one place: the API, three workers and
the webhook sender."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.ports import HOST, ProcessPorts
from imgflow_localstack.readiness import CELERY_READY, AllOf, HttpOk, Readiness

API = "api"
THUMBNAILER = "thumbnailer"
HASHER = "hasher"
DEDUPER = "deduper"
FLOWER = "flower"
WEBHOOK_SENDER = "webhook-sender"
FLOWER_USER = "imgflow"
TASK_EVENTS_VARIABLE = f"{ENV_PREFIX}WORKER_SEND_TASK_EVENTS"
ALLOW_PRIVATE_VARIABLE = f"{ENV_PREFIX}WEBHOOK_ALLOW_PRIVATE"
WORKER_NICE_VARIABLE = "IMGFLOW_LOCAL_WORKER_NICE"

# (Celery app module, queue) per worker.
_WORKERS: dict[str, tuple[str, str]] = {
    THUMBNAILER: ("imgflow_thumbnailer.worker", "thumbnails"),
    HASHER: ("imgflow_hasher.worker", "hashing"),
    DEDUPER: ("imgflow_deduper.worker", "dedupe"),
}

# The API drains requests in flight for up to 20 s on SIGTERM (upload-api main.py), then
# closes its pools: give it that and a margin before the SIGKILL.
API_STOP_TIMEOUT_S = 30.0

WORKERS = tuple(_WORKERS)
# Each worker's express worker: the stage's express queue only, idle until a tenant with
# little waiting has a job (fair scheduling's express lane, scheduling.md); one process per
# job the relay keeps in that queue.
EXPRESS_SUFFIX = "-express"
EXPRESS_WORKERS = tuple(f"{name}{EXPRESS_SUFFIX}" for name in WORKERS)

# What `make run` uses; tests default to 1 everywhere.
RUN_CONCURRENCY: Mapping[str, int] = {THUMBNAILER: 2, HASHER: 1, DEDUPER: 1}


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one imgflow process and how to know it is ready."""

    name: str
    argv: Sequence[str]
    ready: Readiness
    extra_env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 60.0
    # SIGTERM first, SIGKILL to the process group after this. Celery's warm shutdown lets
    # running tasks finish; a task still running then is killed, and its unacked job is
    # redelivered (acks_late) once the broker's visibility timeout passes.
    stop_timeout_s: float = 15.0
    # Lower CPU priority (nice value, for the process and its session: child.py says why).
    nice: int = 0


def worker_nice_from_env(default: int = 0) -> int:
    """IMGFLOW_LOCAL_WORKER_NICE, else ``default``."""
    value = os.environ.get(WORKER_NICE_VARIABLE)
    return int(value) if value is not None else default


def api_url(port: int) -> str:
    return f"http://{HOST}:{port}"


def service_specs(
    api_port: int,
    concurrency: Mapping[str, int] | None = None,
    ports: ProcessPorts | None = None,
    flower_password: str | None = None,
    express: bool = False,
    *,
    worker_nice: int | None = None,
    express_processes: int = 1,
) -> list[ServiceSpec]:
    """The API, the three workers (with ``express``, their express workers too), the
    webhook sender and Flower, in start order. ``concurrency`` is per worker name (an
    express worker, ``<worker>-express``, has ``express_processes`` unless it is named).
    Without ``ports`` the workers serve no metrics and there is no webhook sender; without
    a password there is no Flower."""
    concurrency = concurrency or {}
    specs = [
        ServiceSpec(
            name=API,
            argv=[sys.executable, "-m", "imgflow_upload_api"],
            ready=HttpOk(f"{api_url(api_port)}/healthz"),
            extra_env={
                f"{ENV_PREFIX}API_HOST": HOST,
                f"{ENV_PREFIX}API_PORT": str(api_port),
                # Local receivers live on localhost; production refuses private hosts.
                ALLOW_PRIVATE_VARIABLE: os.environ.get(ALLOW_PRIVATE_VARIABLE, "true"),
            },
            stop_timeout_s=API_STOP_TIMEOUT_S,
        )
    ]
    workers = [
        (name, app, queue, concurrency.get(name, 1)) for name, (app, queue) in _WORKERS.items()
    ]
    if express:
        workers += [
            (
                f"{name}{EXPRESS_SUFFIX}",
                app,
                Stage(queue).express_queue,
                concurrency.get(f"{name}{EXPRESS_SUFFIX}", express_processes),
            )
            for name, (app, queue) in _WORKERS.items()
        ]
    # The stages' own workers at a lower CPU priority than everything else (the express
    # workers, the API, the servers): `make run` asks for it (cli.RUN_WORKER_NICE), the
    # test and bench systems only through the variable. Measured in
    # docs/operating/scheduling.md.
    nice = worker_nice if worker_nice is not None else worker_nice_from_env()
    for name, app, queue, processes in workers:
        argv = [
            *(sys.executable, "-m", "celery", "-A", app, "worker"),
            *("-Q", queue, "-n", f"{name}@%h"),
            *("--concurrency", str(processes)),
            *("--loglevel", "INFO"),
        ]
        ready: Readiness = CELERY_READY
        extra_env = {}
        if ports is not None:
            port = ports.metrics(name)
            extra_env[f"{ENV_PREFIX}METRICS_PORT"] = str(port)
            ready = AllOf((CELERY_READY, HttpOk(metrics_url(port))))
        specs.append(
            ServiceSpec(
                name=name,
                argv=argv,
                ready=ready,
                extra_env=extra_env,
                nice=nice if name in _WORKERS else 0,
            )
        )
    if ports is not None:
        specs.append(webhook_sender_spec(ports.metrics(WEBHOOK_SENDER)))
    if ports is not None and flower_password is not None:
        specs.append(flower_spec(ports.flower, flower_password))
    return specs


def metrics_url(port: int) -> str:
    return f"http://{HOST}:{port}/metrics"


def webhook_sender_spec(port: int) -> ServiceSpec:
    """The webhook sender: its /healthz and /metrics on this machine only."""
    return ServiceSpec(
        name=WEBHOOK_SENDER,
        argv=[sys.executable, "-m", "imgflow_webhook_sender"],
        ready=HttpOk(f"http://{HOST}:{port}/healthz"),
        extra_env={
            f"{ENV_PREFIX}WEBHOOK_SENDER_HOST": HOST,
            f"{ENV_PREFIX}WEBHOOK_SENDER_PORT": str(port),
            ALLOW_PRIVATE_VARIABLE: os.environ.get(ALLOW_PRIVATE_VARIABLE, "true"),
        },
    )


def flower_spec(port: int, password: str) -> ServiceSpec:
    """Flower on this machine only, behind basic auth (its API can revoke and kill tasks)."""
    return ServiceSpec(
        name=FLOWER,
        argv=[
            *(sys.executable, "-m", "celery", "-A", "imgflow_runtime.monitor", "flower"),
            *(f"--address={HOST}", f"--port={port}"),
        ],
        # /healthcheck is the one page Flower serves without credentials.
        ready=HttpOk(f"http://{HOST}:{port}/healthcheck"),
        extra_env={
            # In the environment, not argv: other users of the machine can read argv.
            "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{password}",
            # Flower switches task events on in every worker every few seconds unless
            # told not to: follow the workers' own setting.
            "FLOWER_ENABLE_EVENTS": os.environ.get(TASK_EVENTS_VARIABLE, "true"),
        },
    )
