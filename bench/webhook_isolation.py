"""One slow webhook receiver must not delay the others: the timing that
tests/test_webhook_isolation.py leaves out (it asserts the behaviour: no delivery waits
behind a hanging attempt).

One system, started as `make run` starts it (its webhook sender with default settings). A
tenant's healthy endpoint is sent a burst of deliveries per round, alternately (ABBA)
beside a hanging endpoint of the same tenant, which accepts every request and never
answers (each of its attempts holds a slot until IMGFLOW_WEBHOOK_TIMEOUT_S), with its own
burst queued just before, and without it. Reported: the healthy endpoint's delivery
latency (queued to received) p50 and p99 beside the hanging one as ratios to those
without (1.0 = no delay), and the attempt time limit: a delivery that had waited behind
a hanging attempt would have taken at least that long.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx

from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from bench.stats import percentile
from bench.webhooks import _new_tenant
from imgflow_localstack.system import LocalSystem
from imgflow_webhook_sender.settings import SenderSettings

BURST, QUICK_BURST = 200, 40
PAIRS, QUICK_PAIRS = 3, 1
ROUND_TIMEOUT_S = 300


class _Receiver:
    """Records when each delivery arrived; ``hang`` holds every request unanswered until
    the sender gives up on it or the receiver stops."""

    def __init__(self, hang: bool) -> None:
        self.received: dict[str, float] = {}  # delivery id -> wall-clock receipt
        self._stopped = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.received[body["id"]] = time.time()
                if hang:
                    while not receiver._stopped.wait(0.05) and not _closed(self.connection):
                        pass
                    return
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    @contextlib.contextmanager
    def running(self) -> Iterator[_Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stopped.set()
            self._server.shutdown()
            self._server.server_close()


def _closed(connection: socket.socket) -> bool:
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    options = options or BenchOptions()
    burst = QUICK_BURST if quick else BURST
    pairs = QUICK_PAIRS if quick else PAIRS
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-bench-webhook-isolation-"))
    rounds: list[tuple[bool, list[float]]] = []
    try:
        with LocalSystem.on_free_ports(data_dir, concurrency=options.concurrency) as system:
            key = _new_tenant(system, "webhook-isolation")
            _round(system, key, burst, False)  # warms the sender and the receiver path
            order = [(p % 2 == 1) ^ (i == 1) for p in range(pairs) for i in range(2)]
            for beside in order:
                rounds.append((beside, _round(system, key, burst, beside)))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return _suite(rounds, burst)


def _round(system: LocalSystem, key: str, burst: int, beside_hanging: bool) -> list[float]:
    """The healthy endpoint's delivery latencies (s) for one burst."""
    import asyncio

    with contextlib.ExitStack() as stack:
        fast = stack.enter_context(_Receiver(hang=False).running())
        hanging = stack.enter_context(_Receiver(hang=True).running()) if beside_hanging else None
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=system.api_url, headers=headers, timeout=30) as api:
            hooks = [_register(api, fast.url)]
            if hanging is not None:
                hooks.insert(0, _register(api, hanging.url))  # its burst is queued first
            queued = asyncio.run(_queue(system.stack.database_url, hooks, burst))
            deadline = time.monotonic() + ROUND_TIMEOUT_S
            while len(fast.received) < burst:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(fast.received)} of {burst} deliveries arrived")
                time.sleep(0.05)  # polling the receiver: nothing to await across threads
            for hook in hooks:
                api.delete(f"/v1/webhooks/{hook}").raise_for_status()
    return [at - queued[delivery] for delivery, at in fast.received.items()]


def _register(api: httpx.Client, url: str) -> str:
    created = api.post("/v1/webhooks", json={"url": url, "events": ["image.ready"]})
    created.raise_for_status()
    return str(created.json()["id"])


async def _queue(database_url: str, hooks: list[str], burst: int) -> dict[str, float]:
    """A burst of deliveries per webhook, in the order given, as the event triggers queue
    them; when each was queued (wall clock), by delivery id."""
    conn = await asyncpg.connect(database_url)
    try:
        queued: dict[str, float] = {}
        for hook in hooks:
            rows = await conn.fetch(
                """INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload,
                                                   created_at)
                   SELECT $1, g, 'image.ready',
                          jsonb_build_object('id', g, 'at', now()::text, 'status', 'ready',
                                             'image_id', gen_random_uuid()::text),
                          clock_timestamp()
                     FROM generate_series(1, $2) AS g
                RETURNING id, created_at""",
                uuid.UUID(hook),
                burst,
            )
            queued.update({str(r["id"]): _epoch(r["created_at"]) for r in rows})
        await conn.execute("SELECT pg_notify('webhook_deliveries', '')")
        return queued
    finally:
        await conn.close()


def _epoch(at: datetime) -> float:
    return at.timestamp()


def _suite(rounds: list[tuple[bool, list[float]]], burst: int) -> Suite:
    timeout_s = SenderSettings().webhook_timeout_s
    alone = [s * 1000 for beside, lat in rounds if not beside for s in lat]
    beside = [s * 1000 for b, lat in rounds if b for s in lat]
    label = "beside a hanging endpoint of the same tenant"
    measurements = [
        Measurement("delivery p50, alone", percentile(alone, 50), "ms"),
        Measurement(f"delivery p50 {label}", percentile(beside, 50), "ms",
                    baseline="delivery p50, alone"),
        Measurement("delivery p99, alone", percentile(alone, 99), "ms"),
        Measurement(f"delivery p99 {label}", percentile(beside, 99), "ms",
                    baseline="delivery p99, alone"),
        Measurement(f"delivery max {label}", max(beside), "ms",
                    extra={"attempt time limit ms": timeout_s * 1000}),
    ]  # fmt: skip
    table = Table(
        "rounds, in the order they ran",
        ["round", "hanging endpoint", "p50 ms", "p99 ms", "max ms"],
        [
            [i + 1, "yes" if b else "no", round(percentile(lat, 50) * 1000),
             round(percentile(lat, 99) * 1000), round(max(lat) * 1000)]
            for i, (b, lat) in enumerate(rounds)
        ],
    )  # fmt: skip
    notes = [
        f"{len(rounds)} rounds (ABBA) of {burst} deliveries to a healthy endpoint, from "
        "queued (the database's clock) to received (the receiver's; one machine); ratios: "
        "alone / beside (1.0 = the hanging endpoint delays nothing)",
        f"a delivery that waited behind a hanging attempt would take at least the attempt "
        f"time limit, {timeout_s:.0f} s (IMGFLOW_WEBHOOK_TIMEOUT_S)",
    ]
    return Suite("webhook_isolation", measurements, notes=notes, tables=[table])
