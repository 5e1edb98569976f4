"""The client against the session's real system (root conftest.py), each test as a tenant
of its own, and the `imgflow` command run as a person runs it: a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from imgflow_localstack.system import LocalSystem
from tests.support import encode, new_tenant, photo_like


@dataclass(frozen=True)
class Tenant:
    url: str
    api_key: str

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )

    def image_count(self) -> int:
        count, cursor = 0, None
        with self.http() as http:
            while True:
                params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
                page = http.get("/v1/images", params=params).json()
                count += len(page["items"])
                cursor = page["next_cursor"]
                if cursor is None:
                    return count


@pytest.fixture
def tenant(system: LocalSystem) -> Tenant:
    return Tenant(system.api_url, new_tenant(system, "client")["api_key"])


@dataclass
class Cli:
    """Runs `imgflow` with a URL, a key, and config and state folders of its own."""

    env: dict[str, str]
    cwd: Path

    def run(
        self, *args: str, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imgflow_client.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "imgflow_client.cli", *args],
            env=self.env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def with_env(self, **changes: str | None) -> Cli:
        env = {**self.env, **{k: v for k, v in changes.items() if v is not None}}
        for key in [k for k, v in changes.items() if v is None]:
            env.pop(key, None)
        return Cli(env, self.cwd)


def summary_of(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The last line of standard output: the --json summary."""
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {done.stderr}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


@pytest.fixture
def cli(tenant: Tenant, tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IMGFLOW_") and not k.startswith("XDG_")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_STATE_HOME=str(home / ".local/state"),
        IMGFLOW_URL=tenant.url,
        IMGFLOW_API_KEY=tenant.api_key,
        COLUMNS="200",
    )
    return Cli(env, tmp_path)


def write_photos(
    folder: Path, count: int, *, seed: int = 0, size: tuple[int, int] = (160, 120)
) -> list[Path]:
    """``count`` distinct photo-like JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo-{seed + i:04d}.jpg"
        path.write_bytes(encode(photo_like(*size, seed=seed + i), "JPEG", quality=85))
        paths.append(path)
    return paths


def truncated_jpeg(seed: int = 999) -> bytes:
    whole = encode(photo_like(320, 240, seed=seed), "JPEG", quality=90)
    return whole[: len(whole) // 2]


def uploads_answered(url: str) -> dict[str, float]:
    """The API's own count of POST /v1/images answers, by status (from /metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "imgflow_http_requests_total"
                and labels.get("method") == "POST"
                and labels.get("route") == "/v1/images"
            ):
                counts[labels["status"]] = counts.get(labels["status"], 0) + sample.value
    return counts


def posts(url: str) -> float:
    """Uploads the API took in (2xx): a request refused with a 503 and retried stored
    nothing, and is not counted."""
    return sum(n for status, n in uploads_answered(url).items() if status.startswith("2"))


@pytest.fixture
def photos(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "photos"
    write_photos(folder, 4, seed=500)
    yield folder
