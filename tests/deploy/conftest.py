"""The Compose stack of docker-compose.yml, built and started for real (`make test-deploy`).

Podman or Docker; base images and backing services from locally made stand-ins
(tests/deploy/prepare.sh) set through the same IMGFLOW_*_IMAGE variables a user behind a
registry mirror would set. Everything published on 127.0.0.1 on free ports, under a
project name of its own, removed at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.deploy.engine import (
    ROOT,
    Engine,
    HealthProbe,
    PodmanSocket,
    docker_daemon_answers,
    run,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"
API_KEY = "imgf_deploy-test-key-not-for-production"
FLOWER_PASSWORD = "deploy-test"
# Tuned for the test: a task held by a SIGKILLed worker comes back in about a minute
# instead of an hour (the visibility timeout must still exceed the hard time limit).
TEST_SETTINGS = {
    "TASK_SOFT_TIME_LIMIT_S": "20",
    "TASK_TIME_LIMIT_S": "30",
    "BROKER_VISIBILITY_TIMEOUT_S": "40",
    "SWEEPER_RUNNING_AFTER_S": "45",
    "SWEEPER_PENDING_AFTER_S": "60",
    # Two cores: fewer prefork children than production's defaults.
    "THUMBNAILER_CONCURRENCY": "2",
    "HASHER_CONCURRENCY": "1",
    "DEDUPER_CONCURRENCY": "1",
}
PUBLISHED = {  # variable -> name of the port in Deployment.ports
    "IMGFLOW_API_PUBLISH": "api",
    "IMGFLOW_FLOWER_PUBLISH": "flower",
    "IMGFLOW_PROMETHEUS_PUBLISH": "prometheus",
    "IMGFLOW_MINIO_CONSOLE_PUBLISH": "minio-console",
    "IMGFLOW_GRAFANA_PUBLISH": "grafana",
}


def compose_file() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Deployment:
    engine: Engine
    compose_cli: list[str]
    project: str
    env: dict[str, str]
    ports: dict[str, int]
    probe: HealthProbe | None
    timings: dict[str, float] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run([*self.compose_cli, "-p", self.project, *args], env=self.env, timeout=timeout)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url("api"), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    def flower(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url("flower"), auth=("imgflow", FLOWER_PASSWORD), timeout=30
        )


def _stand_ins(tmp: Path) -> dict[str, str]:
    env_file = tmp / "standins.env"
    run([str(ROOT / "tests/deploy/prepare.sh"), str(env_file)], timeout=1200)
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return dict(pairs)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("deploy")
    timings: dict[str, float] = {}
    started = time.monotonic()
    use_docker = docker_daemon_answers()
    if not use_docker and not (shutil.which("podman") and shutil.which("docker-compose")):
        pytest.fail(
            "no container engine: a Docker daemon, or Podman with docker-compose and "
            "debootstrap (.ci/run installs them; docs/deploying/containers.md)"
        )
    if not use_docker:
        run([str(ROOT / "tests/deploy/host-setup.sh")])
    cli = "docker" if use_docker else "podman"
    env = {**os.environ, "CONTAINER_ENGINE": cli}
    if not use_docker:
        env |= _stand_ins(tmp)
    timings["stand-ins"] = time.monotonic() - started

    mark = time.monotonic()
    run(["make", "--no-print-directory", "images"], env=env, timeout=1800)
    timings["images"] = time.monotonic() - mark

    ports = {name: _free_port() for name in PUBLISHED.values()}
    project = f"imgflow-deploytest-{os.getpid()}"
    env |= (
        TEST_SETTINGS
        | {var: f"127.0.0.1:{ports[name]}" for var, name in PUBLISHED.items()}
        | {
            "COMPOSE_HTTP_TIMEOUT": "600",
            "BOOTSTRAP_API_KEY": API_KEY,
            "FLOWER_PASSWORD": FLOWER_PASSWORD,
        }
    )
    engine = Engine(cli)
    if use_docker:
        deployment = Deployment(engine, ["docker", "compose"], project, env, ports, None, timings)
        try:
            yield deployment
        finally:
            deployment.compose("--profile", "observability", "down", "-v", "--remove-orphans")
        return
    with PodmanSocket(tmp / "podman.sock") as docker_host, HealthProbe(project) as probe:
        env["DOCKER_HOST"] = docker_host
        deployment = Deployment(engine, ["docker-compose"], project, env, ports, probe, timings)
        try:
            yield deployment
        finally:
            if engine.leftovers(project)["containers"]:
                print(deployment.compose("logs", "--no-color", "--tail=40", timeout=120).stdout)
            deployment.compose("--profile", "observability", "down", "-v", "--remove-orphans")
            print(f"\ndeployment test timings (s): {timings}")
