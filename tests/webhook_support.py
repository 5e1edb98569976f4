"""Real receivers on loopback, in-process and separate webhook senders, and the fixtures
of tests/test_webhook_* (a pytest plugin: the root conftest.py names it).

The session's own sender (a process of the local system) is stopped while these tests
run (a module marked ``pytest.mark.usefixtures("own_sender")``), so each test drives a
sender with the settings it needs (a short probe interval, a disable bound of a second)
against the session's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from imgflow_localstack.ports import free_port
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.pool import create_pool
from imgflow_webhook_sender.metrics import SenderMetrics
from imgflow_webhook_sender.sender import Sender
from imgflow_webhook_sender.settings import SenderSettings
from tests.support import bearer, new_tenant, query

SENDER = "webhook-sender"

# (status, headers) for a request body; None holds the request until the test ends or
# the sender gives up on it.
Answer = Callable[[dict[str, Any]], "tuple[int, dict[str, str]] | None"]


def ok(_: dict[str, Any]) -> tuple[int, dict[str, str]]:
    return 204, {}


def status(code: int, **headers: str) -> Answer:
    return lambda _: (code, {k.replace("_", "-"): v for k, v in headers.items()})


def hang(_: dict[str, Any]) -> None:
    return None


@dataclass
class Arrival:
    at: float
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """A real HTTP(S) server that answers each POST as ``answer`` says and records it."""

    answer: Answer = ok
    tls: ssl.SSLContext | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    # requests held unanswered: now, at most at once, and those that have ended
    open: int = 0
    most_open: int = 0
    ended: int = 0
    open_by_path: Counter[str] = field(default_factory=Counter)
    url: str = ""

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.arrivals.append(Arrival(time.time(), body, headers))
                    answer = receiver.answer(body)
                    if answer is None:
                        receiver.open += 1
                        receiver.open_by_path[self.path] += 1
                        receiver.most_open = max(receiver.most_open, receiver.open)
                if answer is None:
                    while not receiver._release.wait(0.05) and not _closed(self.connection):
                        pass
                    with receiver._lock:
                        receiver.open -= 1
                        receiver.open_by_path[self.path] -= 1
                        receiver.ended += 1
                    return
                code, extra = answer
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}/hook"

    def on(self, host: str, path: str) -> str:
        """This receiver's URL under another name of loopback, at another path."""
        return self.url.replace("127.0.0.1", host).replace("/hook", path)

    def types(self) -> list[str]:
        return [a.body["type"] for a in self.arrivals]

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()


def _closed(connection: socket.socket) -> bool:
    """The peer closed: readable, yet nothing to read."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class SenderThread:
    """A webhook sender in this process, on a thread of its own, until ``stop``."""

    def __init__(self, database_url: str, **settings: Any) -> None:
        defaults = {
            "webhook_allow_private": True,
            "webhook_dispatch_interval_s": 0.05,
            "webhook_retry_base_s": 0.05,
            "webhook_retry_cap_s": 0.2,
            "webhook_gauge_refresh_s": 0.1,
        }
        self.settings = SenderSettings(database_url=database_url, **{**defaults, **settings})
        self.metrics = SenderMetrics()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sender: Sender | None = None
        self.failure: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:
            self.failure = exc
            self._ready.set()

    async def _main(self) -> None:
        pool = await create_pool(self.settings.database_url, max_size=4)
        self._stopping = asyncio.Event()
        self.sender = Sender(pool, self.settings, self.metrics)
        self._ready.set()
        try:
            await self.sender.run(self._stopping)
        finally:
            await pool.close()

    def __enter__(self) -> SenderThread:
        self._thread.start()
        self._ready.wait(30)
        if self.failure is not None:
            raise self.failure
        return self

    def __exit__(self, *_: object) -> None:
        def stop() -> None:
            assert self._stopping is not None and self.sender is not None
            self._stopping.set()
            self.sender.wake()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(30)


class SenderProcess:
    """A webhook sender as deployed: a process of its own (``python -m
    imgflow_webhook_sender``) with the system's environment and these settings, its
    /metrics on a free port; ``kill`` ends it as a crash would (SIGKILL)."""

    def __init__(self, system: LocalSystem, log: Path, **settings: Any) -> None:
        self.port = free_port()
        values = {
            "webhook_allow_private": True,
            "webhook_dispatch_interval_s": 0.05,
            "webhook_gauge_refresh_s": 0.05,
            "webhook_sender_host": "127.0.0.1",
            "webhook_sender_port": self.port,
            **settings,
        }
        self.env = {
            **os.environ,
            **system.env,
            **{f"IMGFLOW_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
               for k, v in values.items()},
        }  # fmt: skip
        self.log = log
        self.child: subprocess.Popen[bytes] | None = None

    def metric(self, name: str) -> float | None:
        """A sample of its /metrics (``name`` with its labels), None until it serves."""
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def __enter__(self) -> SenderProcess:
        with self.log.open("ab") as log:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "imgflow_webhook_sender"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        assert self.child is not None
        self.child.kill()
        self.child.wait(30)

    def __exit__(self, *_: object) -> None:
        assert self.child is not None
        if self.child.poll() is None:
            self.child.terminate()
            self.child.wait(30)


@contextlib.contextmanager
def session_sender_stopped(system: LocalSystem) -> Iterator[None]:
    """The local system's sender is stopped, and started again afterwards."""
    system.stop_service(SENDER)
    try:
        yield
    finally:
        system.start_service(SENDER)


@pytest.fixture(scope="module")
def own_sender(system: LocalSystem) -> Iterator[None]:
    """The module's tests drive their own senders: the session's is stopped meanwhile."""
    with session_sender_stopped(system):
        yield


@pytest.fixture
def account(system: LocalSystem) -> Iterator[Tenant]:
    """A fresh tenant of the session's system, with its API client and CLI."""
    with tenant(system) as made:
        yield made


@dataclass
class Tenant:
    api: httpx.Client
    api_key: str
    home: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``imgflow ARGS`` as this tenant, with a home of its own."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGFLOW_", "XDG_"))}
        env.update(
            HOME=str(self.home),
            IMGFLOW_URL=str(self.api.base_url).rstrip("/"),
            IMGFLOW_API_KEY=self.api_key,
            COLUMNS="250",
        )
        return subprocess.run(
            [sys.executable, "-m", "imgflow_client.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def register(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        created = self.api.post("/v1/webhooks", json={"url": url, "events": events or ["*"]})
        assert created.status_code == 201, created.text
        return created.json()  # type: ignore[no-any-return]

    def webhook(self, webhook_id: str) -> dict[str, Any]:
        for hook in self.api.get("/v1/webhooks").json()["items"]:
            if hook["id"] == webhook_id:
                return hook  # type: ignore[no-any-return]
        raise AssertionError(f"no webhook {webhook_id}")

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        got = self.api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 500})
        return got.json()["items"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def tenant(system: LocalSystem) -> Iterator[Tenant]:
    made = new_tenant(system, "webhooks")
    with (
        httpx.Client(base_url=system.api_url, headers=bearer(made["api_key"]), timeout=30) as api,
        tempfile.TemporaryDirectory(prefix="imgflow-cli-") as home,
    ):
        yield Tenant(api, made["api_key"], Path(home))


def queue_deliveries(database_url: str, webhook_id: str, count: int) -> None:
    """``count`` pending deliveries for a webhook, queued in order (what the event triggers
    would have written for as many events), without making the events."""
    query(
        database_url,
        """INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload, created_at)
           SELECT $1, g, 'image.ready',
                  jsonb_build_object('id', g, 'at', now()::text, 'status', 'ready',
                                     'image_id', gen_random_uuid()::text),
                  now() + g * interval '1 microsecond'
             FROM generate_series(1, $2) AS g""",
        UUID(webhook_id),
        count,
    )
