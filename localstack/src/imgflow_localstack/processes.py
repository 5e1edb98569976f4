"""imgflow's own processes (API, workers) as children: start, wait until ready, stop."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path

from imgflow_localstack.child import Child
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.services import ServiceSpec
from imgflow_localstack.waiting import run_side_by_side, wait_until_ready


class ServiceProcess:
    """One imgflow process, logging to ``<log_dir>/<name>.log``.

    Its own session and process group, so stopping it takes Celery's prefork children too:
    SIGTERM (Celery's warm shutdown), then SIGKILL to the group after ``stop_timeout_s``.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        env: Mapping[str, str],
        log_dir: Path,
        metrics_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        # prometheus_client's multiprocess files: one folder per process, emptied at each
        # start (stale files would add old counts); left unset, each process makes its own
        # folder in /tmp and never removes it.
        self.metrics_dir = metrics_dir / spec.name if metrics_dir else None
        metrics_env = {"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)} if metrics_dir else {}
        self.child = Child(
            spec.name,
            spec.argv,
            log_dir / f"{spec.name}.log",
            env={
                **env,
                **metrics_env,
                **spec.extra_env,
                # Logs land in the file as they happen, not when a buffer fills.
                "PYTHONUNBUFFERED": "1",
            },
            stop_signal=signal.SIGTERM,
            stop_timeout_s=spec.stop_timeout_s,
            nice=spec.nice,
        )

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    def launch(self) -> None:
        """Spawn only; call from a long-lived thread (see child.py)."""
        if self.metrics_dir is not None and not self.child.is_running():
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            self.metrics_dir.mkdir(parents=True)
        self.child.start()

    def wait_ready(self) -> None:
        wait_until_ready(
            lambda: self.spec.ready.is_ready(self.child),
            what=f"{self.name} ({self.spec.ready.describe()})",
            child=self.child,
            timeout_s=self.spec.start_timeout_s,
        )

    def start(self) -> None:
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM, wait up to ``grace_s`` (default: the spec's stop timeout), then SIGKILL."""
        self.child.stop(grace_s)

    def is_running(self) -> bool:
        return self.child.is_running()


class ServiceGroup:
    """Several service processes started side by side and stopped together."""

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        env: Mapping[str, str],
        log_dir: Path,
        metrics_dir: Path | None = None,
    ) -> None:
        base_env = {**os.environ, **env}
        self.processes = {
            spec.name: ServiceProcess(spec, base_env, log_dir, metrics_dir) for spec in specs
        }

    def __getitem__(self, name: str) -> ServiceProcess:
        try:
            return self.processes[name]
        except KeyError:
            known = ", ".join(self.processes)
            raise LocalStackError(f"no service named {name!r} (known: {known})") from None

    def start_all(self) -> None:
        """Spawn all (on this thread), then wait for all; on failure stop them all."""
        try:
            for process in self.processes.values():
                process.launch()
            run_side_by_side([p.wait_ready for p in self.processes.values()], "ready")
        except BaseException:
            self.stop_all()
            raise

    def stop_all(self) -> None:
        """SIGTERM to all at once (warm shutdowns overlap), then wait for each in turn."""
        for process in self.processes.values():
            process.child.request_stop()
        for process in reversed(self.processes.values()):
            process.stop()

    def exited(self) -> list[Child]:
        """Processes that exited without being asked to stop."""
        return [p.child for p in self.processes.values() if p.child.exited_unexpectedly()]
