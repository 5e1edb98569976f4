"""Helpers for the fault tests: freeze a server, kill a worker, read stage states."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil

from imgflow_localstack.server import Server
from imgflow_localstack.system import LocalSystem
from tests.support import encode, photo_like, wait_for

STAGES = ("thumbnails", "hashing", "dedupe")


@contextmanager
def frozen(server: Server) -> Iterator[None]:
    """SIGSTOP a server: its port still accepts connections, but nothing answers."""
    assert server.child is not None and server.child.pid is not None
    pid = server.child.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def worker_pids(system: LocalSystem, name: str) -> tuple[int, list[int]]:
    """The worker's main process and its prefork pool children."""
    pid = system.service(name).child.pid
    assert pid is not None
    return pid, [c.pid for c in psutil.Process(pid).children()]


def kill_worker(system: LocalSystem, name: str) -> None:
    """SIGKILL a whole worker, pool included, as if its host had died."""
    pid, _ = worker_pids(system, name)
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not system.service(name).is_running(), timeout_s=10, what=f"{name} to die")


def upload(api: httpx.Client, seed: int, size: tuple[int, int] = (320, 240)) -> str:
    response = api.post("/v1/images", content=encode(photo_like(*size, seed=seed), "JPEG"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def image(api: httpx.Client, image_id: str) -> dict[str, Any]:
    return api.get(f"/v1/images/{image_id}").json()


def stage_status(api: httpx.Client, image_id: str, stage: str) -> str:
    return image(api, image_id)["stages"][stage]["status"]


def wait_ready(api: httpx.Client, image_id: str, timeout_s: float = 90) -> tuple[dict, float]:
    """Wait for every stage done; returns the image and how long that took.

    Fails at once, with the stages' errors, if the image settles as failed instead.
    """
    started = time.monotonic()
    body = wait_for(
        lambda: (b := image(api, image_id))["status"] != "processing" and b,
        timeout_s=timeout_s,
        what=f"{image_id} to settle",
    )
    assert body["status"] == "ready", {
        k: (v["status"], v["error"]) for k, v in body["stages"].items()
    }
    return body, time.monotonic() - started
