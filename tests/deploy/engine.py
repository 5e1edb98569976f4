"""The container engine and the Compose CLI the deployment test drives.

Docker (with `docker compose`) is used when its daemon answers. Otherwise Podman, with
Debian's docker-compose 1.29 talking to Podman's Docker API on a private socket: Podman
4.3's own podman-compose ignores `depends_on: condition: service_healthy`. Podman without
systemd never runs healthchecks by itself, so `HealthProbe` runs them, and records when
each container first passed (the dependency-order check reads it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(argv),
        env=dict(env) if env else None,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {done.returncode}\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def docker_daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return run(["docker", "info"], check=False, timeout=30).returncode == 0


@dataclass
class Engine:
    """`podman` or `docker`, and the container facts the test asks about."""

    cli: str

    def ids(self, project: str, service: str | None = None, *, every: bool = False) -> list[str]:
        argv = [
            self.cli,
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.compose.project={project}",
        ]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        if every:
            argv.append("-a")
        return run(argv).stdout.split()

    def inspect(self, ident: str) -> dict:
        return json.loads(run([self.cli, "inspect", ident]).stdout)[0]

    def started_at(self, ident: str) -> datetime:
        return timestamp(self.inspect(ident)["State"]["StartedAt"])

    def finished_at(self, ident: str) -> datetime:
        return timestamp(self.inspect(ident)["State"]["FinishedAt"])

    def health(self, ident: str) -> str:
        state = self.inspect(ident)["State"]
        return (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "none")

    def kill(self, ident: str) -> None:
        run([self.cli, "kill", "--signal", "KILL", ident])

    def logs(self, ident: str) -> str:
        done = run([self.cli, "logs", ident])
        return done.stdout + done.stderr

    def leftovers(self, project: str) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={project}"
        return {
            "containers": run([self.cli, "ps", "-aq", "--filter", label]).stdout.split(),
            "networks": run([self.cli, "network", "ls", "-q", "--filter", label]).stdout.split(),
            "volumes": run([self.cli, "volume", "ls", "-q", "--filter", label]).stdout.split(),
        }


def timestamp(text: str) -> datetime:
    """Podman's `2026-12-05 18:40:01.123456789 +0000 UTC` or RFC 3339 with nanoseconds."""
    match = re.match(
        r"(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?", text
    )
    assert match, text
    day, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{day}T{clock}.{(fraction or '0')[:6]:0<6}{zone}")


@dataclass
class PodmanSocket:
    """`podman system service` on a private socket: the Docker API for docker-compose."""

    path: Path
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        self.path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.path}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("podman system service did not open its socket")
            time.sleep(0.1)
        return f"unix://{self.path}"

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.path.unlink(missing_ok=True)


@dataclass
class HealthProbe:
    """Run a project's healthchecks as Docker's daemon would, and note first passes.

    Containers not yet healthy are probed every `fast_s`, healthy ones every `slow_s`.
    """

    project: str
    fast_s: float = 2.0
    slow_s: float = 20.0
    first_healthy: dict[str, datetime] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _last: dict[str, float] = field(default_factory=dict)

    def __enter__(self) -> HealthProbe:
        self._thread = threading.Thread(target=self._loop, name="health-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.fast_s):
            listed = run(
                [
                    "podman",
                    "ps",
                    "-q",
                    "--no-trunc",
                    "--filter",
                    f"label=com.docker.compose.project={self.project}",
                ],
                check=False,
                timeout=60,
            ).stdout.split()
            for ident in listed:
                due = self.slow_s if ident in self.first_healthy else self.fast_s
                if time.monotonic() - self._last.get(ident, 0.0) < due:
                    continue
                self._last[ident] = time.monotonic()
                probe = run(["podman", "healthcheck", "run", ident], check=False, timeout=60)
                # "no healthcheck defined" also exits non-zero: those containers are skipped
                # by the tests, which ask only about services with a healthcheck.
                if probe.returncode == 0 and ident not in self.first_healthy:
                    self.first_healthy[ident] = datetime.now().astimezone()
