"""The whole of imgflow on one machine: the stack, the migrations, the API and the workers."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from imgflow_contracts.settings import ENV_PREFIX, CommonSettings
from imgflow_localstack.child import Child
from imgflow_localstack.errors import LocalStackError, PortInUseError
from imgflow_localstack.ports import (
    HOST,
    ProcessPorts,
    StackPorts,
    ensure_ports_free,
    free_port,
    port_is_free,
)
from imgflow_localstack.processes import ServiceGroup, ServiceProcess
from imgflow_localstack.services import (
    API,
    EXPRESS_WORKERS,
    FLOWER,
    WEBHOOK_SENDER,
    WORKERS,
    ServiceSpec,
    api_url,
    metrics_url,
    service_specs,
)
from imgflow_localstack.stack import DEFAULT_S3_ACCESS_KEY, DEFAULT_S3_SECRET_KEY, LocalStack

log = logging.getLogger(__name__)

BOOTSTRAP_KEY_VARIABLE = "IMGFLOW_BOOTSTRAP_API_KEY"
BOOTSTRAP_KEY_FILE = "bootstrap-api-key"
FLOWER_PASSWORD_VARIABLE = "IMGFLOW_FLOWER_PASSWORD"
FLOWER_PASSWORD_FILE = "flower-password"


def _kept_secret(data_dir: Path, variable: str, file_name: str, prefix: str = "") -> str:
    """$variable, else one generated once per data folder and kept there (mode 0600),
    so it survives restarts of `make run`."""
    if value := os.environ.get(variable):
        return value
    path = data_dir / file_name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def bootstrap_api_key(data_dir: Path) -> str:
    """The development tenant's API key: $IMGFLOW_BOOTSTRAP_API_KEY, else kept per folder."""
    return _kept_secret(data_dir, BOOTSTRAP_KEY_VARIABLE, BOOTSTRAP_KEY_FILE, prefix="imgf_")


def flower_password(data_dir: Path) -> str:
    """Flower's password (user `imgflow`): $IMGFLOW_FLOWER_PASSWORD, else kept per folder."""
    return _kept_secret(data_dir, FLOWER_PASSWORD_VARIABLE, FLOWER_PASSWORD_FILE)


def _settings(overrides: Mapping[str, str]) -> CommonSettings:
    """This environment's settings with ``overrides`` (IMGFLOW_* variables) on top."""
    return CommonSettings(**{k.removeprefix(ENV_PREFIX).lower(): v for k, v in overrides.items()})


def express_queues_on(overrides: Mapping[str, str] | None = None) -> bool:
    """Whether this environment's settings send jobs to express queues (fair scheduling,
    its express lane on, express queues kept): then the express workers must run."""
    settings = _settings(overrides or {})
    return (
        settings.outbox_scheduling == "fair"
        and settings.outbox_express_max_waiting > 0
        and settings.outbox_express_queue_depth > 0
    )


def express_slots(overrides: Mapping[str, str] | None = None) -> int:
    """Processes per express worker: one per job the relay keeps in its express queue
    (IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH), so none waits there behind another."""
    return max(1, _settings(overrides or {}).outbox_express_queue_depth)


class LocalSystem:
    """LocalStack + migrations + imgflow processes, as a context manager.

    ``specs`` replaces the real services (the tests of this package use stand-ins).
    Start and stop it from a long-lived thread (see child.py).
    """

    def __init__(
        self,
        data_dir: Path,
        ports: StackPorts,
        api_port: int,
        *,
        concurrency: Mapping[str, int] | None = None,
        process_ports: ProcessPorts | None = None,
        s3_access_key: str = DEFAULT_S3_ACCESS_KEY,
        s3_secret_key: str = DEFAULT_S3_SECRET_KEY,
        specs: Sequence[ServiceSpec] | None = None,
        migrate: bool = True,
        express: bool | None = None,
        worker_nice: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.stack = LocalStack(
            data_dir, ports, s3_access_key=s3_access_key, s3_secret_key=s3_secret_key
        )
        self.api_port = api_port
        self.api_key = bootstrap_api_key(data_dir)
        self.flower_password = flower_password(data_dir)
        self.process_ports = process_ports or ProcessPorts.free()
        self.migrate = migrate
        # IMGFLOW_* settings given to every process on top of the environment's.
        self.extra_env = dict(extra_env or {})
        if express is None:
            express = express_queues_on(self.extra_env)
        self.specs = (
            list(specs)
            if specs is not None
            else service_specs(
                api_port,
                concurrency,
                self.process_ports,
                self.flower_password,
                express,
                worker_nice=worker_nice,
                express_processes=express_slots(self.extra_env),
            )
        )
        self.services: ServiceGroup | None = None

    @classmethod
    def on_free_ports(cls, data_dir: Path, **kwargs) -> LocalSystem:
        """A system on ports free right now: what a test session wants."""
        return cls(data_dir, StackPorts.free(), free_port(), **kwargs)

    def runs(self, name: str) -> bool:
        """Whether this system has a process of that name (express workers are optional)."""
        return any(spec.name == name for spec in self.specs)

    @property
    def data_dir(self) -> Path:
        return self.stack.data_dir

    @property
    def logs_dir(self) -> Path:
        return self.stack.logs_dir

    @property
    def api_url(self) -> str:
        return api_url(self.api_port)

    @property
    def flower_url(self) -> str:
        return f"http://{HOST}:{self.process_ports.flower}"

    def metrics_urls(self) -> dict[str, str]:
        """Every process's Prometheus endpoint, by service name."""
        urls = {API: f"{self.api_url}/metrics"}
        workers = [*WORKERS, *(w for w in EXPRESS_WORKERS if self.runs(w))]
        urls.update({w: metrics_url(self.process_ports.metrics(w)) for w in workers})
        if any(spec.name == WEBHOOK_SENDER for spec in self.specs):
            urls[WEBHOOK_SENDER] = metrics_url(self.process_ports.metrics(WEBHOOK_SENDER))
        return urls

    def settings(self) -> CommonSettings:
        """The settings every imgflow process of this system reads from its environment."""
        values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in self.env.items()}
        return CommonSettings.model_validate(values)

    @property
    def auth_headers(self) -> dict[str, str]:
        """What a client of the API sends to act as the development tenant."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def env(self) -> dict[str, str]:
        """The IMGFLOW_* variables of the stack, the extra settings and the development
        key (what every imgflow process is given)."""
        return {**self.stack.env(), **self.extra_env, BOOTSTRAP_KEY_VARIABLE: self.api_key}

    def start(self) -> None:
        began = time.monotonic()
        if not port_is_free(self.api_port):
            raise PortInUseError(self.api_port, "the upload API", "choose another --api-port")
        if any(
            spec.name in (FLOWER, WEBHOOK_SENDER, *WORKERS, *EXPRESS_WORKERS) for spec in self.specs
        ):
            ensure_ports_free(self.process_ports.listeners(), "imgflow's processes")
        self.stack.start()
        try:
            if self.migrate:
                self._run_migrations()
            log.info("starting %s", ", ".join(spec.name for spec in self.specs))
            self.services = ServiceGroup(
                self.specs, self.env, self.logs_dir, metrics_dir=self.data_dir / "metrics"
            )
            self.services.start_all()
        except BaseException:
            self.stop()
            raise
        log.info("local system up in %.1f s", time.monotonic() - began)

    def _run_migrations(self) -> None:
        # Imported late: the migrations belong to imgflow_contracts, not to the stack.
        from imgflow_contracts.schema.migrate import run_migrations

        # On a thread of its own: run_migrations uses asyncio.run, which fails on a thread
        # whose event loop is already running (as in an async test session).
        with ThreadPoolExecutor(1, "migrate") as pool:
            try:
                applied = pool.submit(run_migrations, self.stack.database_url).result()
            except Exception as exc:
                raise LocalStackError(f"database migrations failed: {exc}") from exc
        log.info("migrations applied: %s", ", ".join(applied) or "none (up to date)")

    def stop(self) -> None:
        """Processes first (they drain into the servers), then the servers."""
        try:
            if self.services is not None:
                self.services.stop_all()
        finally:
            self.stack.stop()

    def service(self, name: str) -> ServiceProcess:
        if self.services is None:
            raise LocalStackError("the system is not started")
        return self.services[name]

    def stop_service(self, name: str) -> None:
        """Stop one process (e.g. a worker, to see jobs wait in the queue)."""
        self.service(name).stop()

    def start_service(self, name: str) -> None:
        """Start one process again and wait until it is ready."""
        self.service(name).start()

    def exited(self) -> list[Child]:
        """Servers and processes that exited on their own (`make run` then stops)."""
        services = self.services.exited() if self.services is not None else []
        return [*self.stack.exited(), *services]

    def __enter__(self) -> LocalSystem:
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
