"""Issue 29: dead webhooks must not slow anyone's uploads.

Rounds of the upload suite (a fresh tenant uploads the same 12 MP JPEGs from several
clients), alternately beside 50 dead webhook endpoints of two other tenants with 10,000
pending deliveries, and without them, in one run of one system (started as `make run`
starts it, the webhook sender included). Rounds go in ABBA order so a drift in the
machine's speed (other work on it) falls on both sides. Each "with" round starts with the
endpoints fresh (active, never tried). Two phases (`--webhooks-phase steady|discovery|
both`, steady by default), each with its own ABBA rounds:

- steady: the sender finds them dead and its breakers pause them all before the uploads
  start (the issue's steady state: dead endpoints and a backlog, "nothing else
  happening"); how long that took and what it cost is reported beside the round;
- discovery: the uploads start at once, while the sender is still finding them dead and
  trying their backlog (the 20 s idle measurement is left out of both sides of this
  phase: the breakers would pause them meanwhile).

Each round waits for its images to finish processing before the next begins.

The figures: uploads/s and upload p50 with dead webhooks as ratios to those without
(1.0 = no difference; the issue's target is within 5 %), and the CPU each round cost the
API and the webhook sender.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

from bench.images import FULL, SMALL, ensure_images
from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from bench.stats import percentile
from bench.uploads import Upload, upload_all
from imgflow_localstack.ports import free_port
from imgflow_localstack.services import API, WEBHOOK_SENDER
from imgflow_localstack.system import LocalSystem

DEAD_ENDPOINTS = 50
PENDING = 10_000
WEBHOOKS_PER_TENANT = 25  # the API's limit (webhooks/service.py)
ROUND_IMAGES, QUICK_ROUND_IMAGES = 100, 6
CLIENTS, QUICK_CLIENTS = 8, 4
PAIRS, QUICK_PAIRS = 3, 1  # each pair is one round with and one without
SETTLE_TIMEOUT_S = 900
# Before each round's uploads: nothing else happening, as in the issue (its API used
# 37 ms of CPU a second beside dead webhooks, 12 without, and logged 1,800 lines a minute).
IDLE_S, QUICK_IDLE_S = 20.0, 2.0


STEADY, DISCOVERY = "steady", "discovery"


@dataclass
class Round:
    dead: bool
    uploads: list[Upload]
    api_cpu_s: float
    sender_cpu_s: float
    # the dead endpoints' states, and the attempts made on them during the round (probes)
    states: dict[str, int]
    attempts: int
    # before the round: seconds and attempts until the breakers had paused them all
    pause_s: float = 0.0
    pause_attempts: int = 0
    # idle, before the uploads: CPU ms per second of the API and the sender, and the
    # sender's and the API's log lines per minute
    idle_api_ms_s: float = 0.0
    idle_sender_ms_s: float = 0.0
    idle_log_lines_min: float = 0.0
    phase: str = STEADY

    @property
    def throughput(self) -> float:
        began = min(u.started_s for u in self.uploads)
        ended = max(u.started_s + u.latency_s for u in self.uploads)
        return len(self.uploads) / (ended - began)

    @property
    def latencies_ms(self) -> list[float]:
        return [u.latency_s * 1000 for u in self.uploads if u.status == 201]


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    options = options or BenchOptions()
    count = QUICK_ROUND_IMAGES if quick else ROUND_IMAGES
    clients = QUICK_CLIENTS if quick else CLIENTS
    pairs = QUICK_PAIRS if quick else PAIRS
    idle_s = QUICK_IDLE_S if quick else IDLE_S
    paths = ensure_images(count, SMALL if quick else FULL)
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-bench-webhooks-"))
    rounds: list[Round] = []
    try:
        with LocalSystem.on_free_ports(data_dir, concurrency=options.concurrency) as system:
            # A first round warms the system (connections, caches) and is not counted.
            asyncio.run(_round(system, paths, clients, False, idle_s))
            # ABBA in each phase: without, with, with, without, ...
            order = [(p % 2 == 1) ^ (i == 1) for p in range(pairs) for i in range(2)]
            for phase in options.webhooks_phases:
                for dead in order:
                    rounds.append(asyncio.run(_round(system, paths, clients, dead, idle_s, phase)))
                    side = "with" if dead else "without"
                    print(f"webhooks: round {len(rounds)} ({phase}, {side}) done")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return _suite(rounds, count, clients)


def _new_tenant(system: LocalSystem, prefix: str) -> str:
    """A new tenant's API key, made with the operators' CLI."""
    done = subprocess.run(
        [sys.executable, "-m", "imgflow_runtime.admin_cli", "tenants", "create",
         f"{prefix}-{uuid.uuid4().hex[:10]}"],
        env={**os.environ, **system.env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return str(json.loads(done.stdout)["api_key"])


async def _dead_endpoints(system: LocalSystem, conn: asyncpg.Connection) -> list[str]:
    """50 endpoints that will never answer (half a closed port, half a name that does not
    resolve) in two tenants, with 10,000 deliveries pending between them."""
    closed = free_port()  # nothing listens there: every attempt is refused
    ids: list[str] = []
    for t in range(-(-DEAD_ENDPOINTS // WEBHOOKS_PER_TENANT)):
        key = _new_tenant(system, "dead-webhooks")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=system.api_url, headers=headers) as api:
            for i in range(min(WEBHOOKS_PER_TENANT, DEAD_ENDPOINTS - len(ids))):
                n = t * WEBHOOKS_PER_TENANT + i
                url = (
                    f"http://127.0.0.1:{closed}/hook/{n}"
                    if n % 2
                    else f"http://gone-{n}.imgflow-bench.invalid/hook"
                )
                created = await api.post("/v1/webhooks", json={"url": url, "events": ["*"]})
                created.raise_for_status()
                ids.append(created.json()["id"])
    await conn.execute(
        """INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload, created_at)
           SELECT w, g, 'image.ready',
                  jsonb_build_object('id', g, 'at', now()::text, 'status', 'ready',
                                     'image_id', gen_random_uuid()::text),
                  now() + g * interval '1 microsecond'
             FROM unnest($1::uuid[]) AS w, generate_series(1, $2) AS g""",
        [uuid.UUID(i) for i in ids],
        PENDING // len(ids),
    )
    await conn.execute("SELECT pg_notify('webhook_deliveries', '')")
    return ids


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def _lines(path: Path) -> int:
    with path.open("rb") as log:
        return sum(1 for _ in log)


async def _round(
    system: LocalSystem,
    paths: Sequence[Path],
    clients: int,
    dead: bool,
    idle_s: float,
    phase: str = STEADY,
) -> Round:
    if phase == DISCOVERY:
        idle_s = 0.0  # the uploads start while the endpoints are fresh
    conn = await asyncpg.connect(system.stack.database_url)
    try:
        ids = await _dead_endpoints(system, conn) if dead else []
        hooks = [uuid.UUID(i) for i in ids]
        began = time.monotonic()
        if hooks and phase == STEADY:
            await _until_paused(conn, hooks)
        pause_s = time.monotonic() - began
        key = _new_tenant(system, "uploads")
        api_pid = system.service(API).child.pid
        sender_pid = system.service(WEBHOOK_SENDER).child.pid
        logs = [system.service(n).log_path for n in (API, WEBHOOK_SENDER)]
        idle0 = _cpu_s(api_pid), _cpu_s(sender_pid), sum(map(_lines, logs))
        await asyncio.sleep(idle_s)  # measuring the idle system: nothing to await
        idle1 = _cpu_s(api_pid), _cpu_s(sender_pid), sum(map(_lines, logs))
        attempts_before = await _attempts(conn, hooks)
        cpu0 = _cpu_s(api_pid), _cpu_s(sender_pid)
        uploads = await upload_all(
            system.api_url, {"Authorization": f"Bearer {key}"}, paths, clients, time.perf_counter()
        )
        cpu1 = _cpu_s(api_pid), _cpu_s(sender_pid)
        accepted = [uuid.UUID(u.image_id) for u in uploads if u.image_id]
        await _settle(conn, accepted)
        states: dict[str, int] = {}
        attempts = await _attempts(conn, hooks) - attempts_before
        if hooks:
            rows = await conn.fetch(
                "SELECT state, count(*) AS n FROM webhooks WHERE id = ANY($1) GROUP BY state",
                hooks,
            )
            states = {r["state"]: r["n"] for r in rows}
            await conn.execute("DELETE FROM webhooks WHERE id = ANY($1)", hooks)
    finally:
        await conn.close()
    api_cpu, sender_cpu = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    per_s = 1 / idle_s if idle_s else 0.0
    return Round(
        dead, uploads, api_cpu, sender_cpu, states, attempts, pause_s, attempts_before,
        idle_api_ms_s=(idle1[0] - idle0[0]) * 1000 * per_s,
        idle_sender_ms_s=(idle1[1] - idle0[1]) * 1000 * per_s,
        idle_log_lines_min=(idle1[2] - idle0[2]) * 60 * per_s,
        phase=phase,
    )  # fmt: skip


async def _attempts(conn: asyncpg.Connection, hooks: list[uuid.UUID]) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(attempts), 0) FROM webhook_deliveries WHERE webhook_id = ANY($1)",
            hooks,
        )
    )


async def _until_paused(conn: asyncpg.Connection, hooks: list[uuid.UUID]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        active = await conn.fetchval(
            "SELECT count(*) FROM webhooks WHERE id = ANY($1) AND state = 'active'", hooks
        )
        if active == 0:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the dead endpoints were not all paused")


async def _settle(conn: asyncpg.Connection, image_ids: list[uuid.UUID]) -> None:
    """Until every stage of the round's images is done or failed: the next round starts on
    a quiet system."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        left = await conn.fetchval(
            "SELECT count(*) FROM image_stages WHERE image_id = ANY($1) "
            "AND status NOT IN ('done', 'failed')",
            image_ids,
        )
        if left == 0:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the round's images were not processed in {SETTLE_TIMEOUT_S} s")


def _suite(rounds: list[Round], count: int, clients: int) -> Suite:
    def throughput(rs: list[Round]) -> float:
        return float(percentile([r.throughput for r in rs], 50))

    def p50(rs: list[Round]) -> float:
        return float(percentile([ms for r in rs for ms in r.latencies_ms], 50))

    def idle(rs: list[Round], attribute: str) -> float:
        return float(percentile([getattr(r, attribute) for r in rs], 50))

    measurements: list[Measurement] = []
    for phase in dict.fromkeys(r.phase for r in rounds):
        without = [r for r in rounds if not r.dead and r.phase == phase]
        beside = [r for r in rounds if r.dead and r.phase == phase]
        # steady keeps the names of the suite's first results; discovery's are marked
        base = "" if phase == STEADY else " (discovery phase)"
        no = f"no dead webhooks{base}"
        label = f"beside {DEAD_ENDPOINTS} dead endpoints, {PENDING:,} pending"
        label += " (discovery: not yet paused)" if phase == DISCOVERY else ""
        measurements += [
            Measurement(f"uploads/s, {no}", throughput(without), "images/s",
                        lower_is_better=False),
            Measurement(f"uploads/s {label}", throughput(beside), "images/s",
                        baseline=f"uploads/s, {no}", lower_is_better=False),
            Measurement(f"upload p50, {no}", p50(without), "ms"),
            Measurement(f"upload p50 {label}", p50(beside), "ms",
                        baseline=f"upload p50, {no}"),
        ]  # fmt: skip
        if phase == STEADY:
            measurements += [
                Measurement(f"idle API CPU, {no}", idle(without, "idle_api_ms_s"), "ms/s"),
                Measurement(f"idle API CPU {label}", idle(beside, "idle_api_ms_s"), "ms/s",
                            baseline=f"idle API CPU, {no}"),
                Measurement(f"idle sender CPU {label}", idle(beside, "idle_sender_ms_s"),
                            "ms/s"),
            ]  # fmt: skip
    table = Table(
        "rounds, in the order they ran",
        ["round", "phase", "dead webhooks", "uploads/s", "p50 ms", "p90 ms", "API CPU-s",
         "sender CPU-s",
         "dead endpoints' states", "attempts on them", "paused all in (s, attempts)",
         "idle API CPU ms/s", "idle sender CPU ms/s", "idle log lines/min"],
        [
            [i + 1, r.phase, "yes" if r.dead else "no", round(r.throughput, 2),
             round(percentile(r.latencies_ms, 50)), round(percentile(r.latencies_ms, 90)),
             round(r.api_cpu_s, 2), round(r.sender_cpu_s, 2),
             ", ".join(f"{k} {v}" for k, v in sorted(r.states.items())) or "-",
             r.attempts if r.dead else "-",
             f"{r.pause_s:.0f} s, {r.pause_attempts}" if r.dead and r.phase == STEADY
             else "-",
             round(r.idle_api_ms_s, 1), round(r.idle_sender_ms_s, 1),
             round(r.idle_log_lines_min, 1)]
            for i, r in enumerate(rounds)
        ],
    )  # fmt: skip
    refused = sum(1 for r in rounds for u in r.uploads if u.status != 201)
    notes = [
        f"{len(rounds)} rounds of {count} uploads from {clients} clients, each tenant fresh; "
        "ratios: uploads/s with / without (higher is better), p50 without / with "
        "(1.0 = no difference; the issue's target: within 5 %)",
        "the API makes no outbound call: the dead endpoints cost only the webhook sender; "
        "API and sender CPU-s are during the uploads; 'attempts on them' are the probes "
        "made during the round (in the discovery phase, every attempt of the round)",
        "phases: steady = the dead endpoints paused before the uploads; discovery = the "
        "uploads start while they are fresh (no idle measurement on either side)",
    ]
    if refused:
        notes.append(f"{refused} uploads were refused (see the rounds)")
    return Suite("webhooks", measurements, notes=notes, tables=[table], failed=refused > 0)
