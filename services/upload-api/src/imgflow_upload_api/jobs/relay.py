"""Relay outbox rows to the broker, then delete them.

Whoever commits jobs wakes the relay loop (background.py), which sends pending rows, and
also runs every interval to retry whatever is still there (the broker was down, or the
API died in between).

Fair scheduling (the default, docs/operating/scheduling.md): the broker's queues are kept
short, ``target_depth`` messages each, and the backlog waits here in PostgreSQL. Each pass
tops every queue up to its target, choosing the rows by kind of work (uploads before bulk)
and across tenants in weighted turns (fair_order.py). The workers hand the stages that
follow theirs on the same way (stage_runner: straight to a short queue, else through the
outbox), so the backlog cannot pile up in the broker further down the line either. While
rows wait for room the relay looks again every ``poll_s``.

One relay chooses at a time (an advisory lock), so replicas neither overfill the queues
nor interleave two fair orders; rows are also locked with SKIP LOCKED. A job can still
reach the broker twice if the process dies between sending and deleting, or the broker's
answer to a send is lost; the workers are idempotent, so that costs only work.

``fifo`` is the relay as it was before (everything, oldest first, the queues as deep as
the backlog): kept for the benchmark's baseline and as a switch back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg
import redis

from imgflow_contracts.queues import Stage
from imgflow_runtime.db.outbox import KIND_HEADER, KINDS, UPLOAD
from imgflow_upload_api.jobs import repository
from imgflow_upload_api.jobs.broker import BrokerPublisher, Job
from imgflow_upload_api.jobs.fair_order import FairOrder

log = logging.getLogger(__name__)

BATCH = 200

QUEUES = [stage.queue for stage in Stage]


@dataclass(frozen=True)
class Scheduling:
    mode: Literal["fair", "fifo"] = "fair"
    target_depth: int = 2
    poll_s: float = 0.05
    default_weight: int = 1
    # Tenants with at most this many uploads' jobs waiting for a queue go to its head
    # (the express lane); 0: off.
    express_max_waiting: int = 4


def rooms(depths: dict[str, int], target_depth: int) -> dict[str, int]:
    """Messages each queue may take now: what it lacks of its target."""
    return {queue: max(0, target_depth - depth) for queue, depth in depths.items()}


def express_rooms(depths: dict[str, int], target_depth: int) -> dict[str, int]:
    """Messages each queue may take at its head: the express lane may pass the target by
    up to the target again, so that the queue stays bounded whatever arrives."""
    return {queue: max(0, 2 * target_depth - depth) for queue, depth in depths.items()}


def _job(row: asyncpg.Record) -> Job:
    # The stored W3C context goes straight into the message headers, where the workers'
    # CeleryInstrumentor reads it: the upload's trace continues in the worker without a
    # publish span (about 2.5 ms of API CPU a job). The kind goes with it, so that the
    # stages the worker hands on are of the same kind.
    headers = {**(row["trace_context"] or {}), KIND_HEADER: row["kind"]}
    return Job(row["task_name"], row["queue"], row["payload"], headers)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: BrokerPublisher,
        interval_s: float,
        scheduling: Scheduling | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.interval_s = interval_s
        self.scheduling = scheduling or Scheduling()
        self.on_sent = on_sent  # counts what was handed over (a metric)
        self.order = FairOrder(KINDS)
        # Set when jobs were committed: the relay loop (background.py) wakes at once and
        # sends pending rows in one pass, so a burst of uploads costs one transaction
        # and one broker round trip per batch rather than per upload.
        self.due = asyncio.Event()
        self._look_again: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        """Jobs were just committed to the outbox: relay them on the next pass, now."""
        self.due.set()

    def _later(self) -> None:
        """Rows wait for room in the queues: another pass in ``poll_s``."""
        if self._look_again is None or self._look_again.cancelled():
            loop = asyncio.get_running_loop()
            self._look_again = loop.call_later(self.scheduling.poll_s, self._wake_later)

    def _wake_later(self) -> None:
        self._look_again = None
        self.due.set()

    async def relay(self) -> int:
        """Send pending outbox rows (up to a batch); returns how many."""
        if self.scheduling.mode == "fifo":
            return await self._relay_oldest_first()
        return await self._relay_fair()

    async def _relay_oldest_first(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.lock_batch(conn, BATCH)
            return await self._publish(conn, rows)

    async def _relay_fair(self) -> int:
        scheduling = self.scheduling
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repository.take_relay_turn(conn):
                self._later()  # another replica is choosing now
                return 0
            try:
                depths = await self.publisher.depths(QUEUES)
            except (redis.RedisError, OSError) as exc:
                log.warning("broker unreachable, jobs wait in the outbox: %s", exc)
                return 0
            express = await self._pick_express(conn, depths)
            picked: list[asyncpg.Record] = []
            skip = [r["id"] for r in express]
            for queue, room in rooms(depths, scheduling.target_depth).items():
                room -= sum(1 for r in express if r["queue"] == queue)
                for kind in KINDS:
                    left = room - sum(1 for r in picked if r["queue"] == queue)
                    if left <= 0:
                        break
                    rows = await repository.lock_lanes(
                        conn, queue, kind, left, scheduling.default_weight, skip
                    )
                    picked += self._in_turns(kind, rows, left)
            sent = await self._publish(conn, picked, express)
            # Rows left wait for the workers to make room; a failed send waits for the
            # interval's retry instead, not hammering a broker that is away.
            if sent == len(picked) + len(express) and await repository.any_pending(conn):
                self._later()
            return sent

    async def _pick_express(
        self, conn: asyncpg.Connection, depths: dict[str, int]
    ) -> list[asyncpg.Record]:
        """New uploads of tenants with little waiting, for the head of their queues.

        In weighted turns a tenant that just arrived is next for its queue, but a FIFO
        queue kept ``target_depth`` deep still makes it wait for the jobs already there
        (chosen before it came), at each of its stages: the express lane puts it ahead
        of them. A tenant with a backlog is not light, so it cannot use the lane to pass
        others; the lane is bounded by the target depth beyond it."""
        scheduling = self.scheduling
        if scheduling.express_max_waiting <= 0:
            return []
        room = {q: n for q, n in express_rooms(depths, scheduling.target_depth).items() if n}
        if not room:
            return []
        rows = await repository.lock_light_lanes(
            conn, list(room), UPLOAD, scheduling.express_max_waiting, scheduling.default_weight
        )
        picked: list[asyncpg.Record] = []
        for queue, n in room.items():
            picked += self._in_turns(UPLOAD, [r for r in rows if r["queue"] == queue], n)
        return picked

    def _in_turns(self, kind: str, rows: list[asyncpg.Record], room: int) -> list[asyncpg.Record]:
        """Up to ``room`` of ``rows`` (one queue, one kind) in the fair order."""
        lanes: dict[tuple[str, object], list[asyncpg.Record]] = {}
        for row in rows:
            lanes.setdefault((kind, row["tenant_id"]), []).append(row)
        weights = {row["tenant_id"]: row["weight"] for row in rows}
        return self.order.pick(lanes, weights, room, seq=lambda r: r["id"])

    async def _publish(
        self,
        conn: asyncpg.Connection,
        rows: list[asyncpg.Record],
        to_head: list[asyncpg.Record] | None = None,
    ) -> int:
        """Send ``rows`` to the tail of their queues and ``to_head`` to the head; all or
        none. Returns how many were sent."""
        to_head = to_head or []
        if not rows and not to_head:
            return 0
        ids = [r["id"] for r in [*rows, *to_head]]
        try:
            await self.publisher.publish([_job(r) for r in rows], [_job(r) for r in to_head])
        except (redis.RedisError, OSError) as exc:  # all or none: the rows wait
            error = f"{type(exc).__name__}: {exc}"
            await repository.record_failure(conn, ids, error)
            log.warning("broker unreachable, %d job(s) wait in the outbox: %s", len(ids), error)
            return 0
        await repository.delete_sent(conn, ids)
        if self.on_sent is not None:
            self.on_sent(len(ids))
        return len(ids)

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            return await repository.count_pending(conn)
