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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg
import redis

from imgflow_contracts.queues import Stage
from imgflow_runtime.db.outbox import EXPRESS, KIND_HEADER, KINDS, LANE_HEADER, UPLOAD
from imgflow_upload_api.jobs import repository
from imgflow_upload_api.jobs.broker import BrokerPublisher, Job
from imgflow_upload_api.jobs.fair_order import FairOrder

log = logging.getLogger(__name__)

BATCH = 200

QUEUES = [stage.queue for stage in Stage]
# Each stage's queue -> its express queue (queues.EXPRESS_QUEUES).
EXPRESS_QUEUES = {stage.queue: stage.express_queue for stage in Stage}
# After a job waited too long in an express queue (its worker absent or busy), the relay
# leaves that express queue alone for this many times the wait, then tries it again.
EXPRESS_STALL_WAITS = 15


@dataclass(frozen=True)
class Scheduling:
    mode: Literal["fair", "fifo"] = "fair"
    target_depth: int = 2
    poll_s: float = 0.05
    default_weight: int = 1
    # Tenants with at most this many uploads' jobs waiting for any one queue take the
    # express lane; 0: off.
    express_max_waiting: int = 4
    # Express-lane jobs kept in each stage's express queue (its own worker); the rest go
    # to the head of the queue. 0: no express queues.
    express_queue_depth: int = 1
    # A job waiting longer than this in an express queue moves to the head of the queue.
    express_queue_wait_s: float = 2.0


def rooms(depths: dict[str, int], target_depth: int) -> dict[str, int]:
    """Messages each queue may take now: what it lacks of its target."""
    return {queue: max(0, target_depth - depth) for queue, depth in depths.items()}


def express_rooms(depths: dict[str, int], target_depth: int) -> dict[str, int]:
    """Messages each queue may take at its head: the express lane may pass the target by
    up to the target again, so that the queue stays bounded whatever arrives."""
    return {queue: max(0, 2 * target_depth - depth) for queue, depth in depths.items()}


def _job(row: asyncpg.Record, *, express: bool = False, queue: str | None = None) -> Job:
    # The stored W3C context goes straight into the message headers, where the workers'
    # CeleryInstrumentor reads it: the upload's trace continues in the worker without a
    # publish span (about 2.5 ms of API CPU a job). The kind (and the express lane) go
    # with it, so that the stages the worker hands on go the same way.
    headers = {**(row["trace_context"] or {}), KIND_HEADER: row["kind"]}
    if express:
        headers[LANE_HEADER] = EXPRESS
    return Job(row["task_name"], queue or row["queue"], row["payload"], headers)


@dataclass
class _ExpressHead:
    """The message last seen at the head of an express queue, and since when."""

    message: bytes
    since: float


@dataclass
class ExpressPicks:
    """The express lane's jobs of one pass: to the express queues, to the queues' heads."""

    to_express: list[asyncpg.Record]
    to_head: list[asyncpg.Record]

    @property
    def ids(self) -> list[int]:
        return [r["id"] for r in [*self.to_express, *self.to_head]]


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: BrokerPublisher,
        interval_s: float,
        scheduling: Scheduling | None = None,
        on_sent: Callable[[int], None] | None = None,
        on_express_moved: Callable[[str], None] | None = None,
        on_light_sent: Callable[[list[tuple[UUID, UUID]]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.publisher = publisher
        self.interval_s = interval_s
        self.scheduling = scheduling or Scheduling()
        self.on_sent = on_sent  # counts what was handed over (a metric)
        self.on_express_moved = on_express_moved  # counts moves out of express queues, by queue
        # told the (tenant, image) pairs whose jobs went by the express lane
        # (tenants/light_first.py)
        self.on_light_sent = on_light_sent
        self.order = FairOrder(KINDS)
        # Set when jobs were committed: the relay loop (background.py) wakes at once and
        # sends pending rows in one pass, so a burst of uploads costs one transaction
        # and one broker round trip per batch rather than per upload.
        self.due = asyncio.Event()
        self._look_again: asyncio.TimerHandle | None = None
        self._express_heads: dict[str, _ExpressHead] = {}
        self._express_stalled_until: dict[str, float] = {}

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
                depths, heads = await self.publisher.survey(
                    [*QUEUES, *EXPRESS_QUEUES.values()], list(EXPRESS_QUEUES.values())
                )
                await self._move_stale_express(heads)
            except (redis.RedisError, OSError) as exc:
                log.warning("broker unreachable, jobs wait in the outbox: %s", exc)
                return 0
            express = await self._pick_express(conn, depths)
            picked: list[asyncpg.Record] = []
            skip = express.ids
            for queue, room in rooms(
                {q: depths[q] for q in QUEUES}, scheduling.target_depth
            ).items():
                room -= sum(1 for r in express.to_head if r["queue"] == queue)
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
            if sent == len(picked) + len(skip) and await repository.any_pending(conn):
                self._later()
            return sent

    async def _move_stale_express(self, heads: dict[str, bytes | None]) -> None:
        """A job that waited ``express_queue_wait_s`` at the head of an express queue (its
        worker busy with a long job, or not running) moves to the head of the stage's
        queue, where any worker takes it next; that express queue then rests for a while
        (EXPRESS_STALL_WAITS), so an absent express worker costs a light tenant that wait
        once, not on every job. Nothing is lost or doubled: the move is atomic."""
        wait_s = self.scheduling.express_queue_wait_s
        now = time.monotonic()
        for queue, express_queue in EXPRESS_QUEUES.items():
            head = heads.get(express_queue)
            seen = self._express_heads.get(express_queue)
            if head is None:
                self._express_heads.pop(express_queue, None)
            elif seen is None or seen.message != head:
                self._express_heads[express_queue] = _ExpressHead(head, now)
            elif now - seen.since >= wait_s:
                if await self.publisher.move_to_head(express_queue, queue, head):
                    log.warning(
                        "a job waited %.1f s in %s (its express worker busy or not running): "
                        "moved to the head of %s",
                        now - seen.since,
                        express_queue,
                        queue,
                    )
                    self._express_stalled_until[express_queue] = now + EXPRESS_STALL_WAITS * wait_s
                    if self.on_express_moved is not None:
                        self.on_express_moved(queue)
                self._express_heads.pop(express_queue, None)

    async def _pick_express(self, conn: asyncpg.Connection, depths: dict[str, int]) -> ExpressPicks:
        """New uploads of tenants with little waiting (light), for the express lane: the
        stage's express queue while it holds less than ``express_queue_depth``, then the
        head of the queue itself.

        In weighted turns a tenant that just arrived is next for its queue, but a FIFO
        queue kept ``target_depth`` deep still makes it wait for the jobs already there
        (chosen before it came), and at the head it still waits for a worker to finish a
        running job: the express queue's own worker is free for it. A tenant with a
        backlog at any stage is not light, so it cannot use the lane to pass others; the
        lane is bounded (the express queue's depth, the target depth beyond it)."""
        scheduling = self.scheduling
        none = ExpressPicks([], [])
        if scheduling.express_max_waiting <= 0:
            return none
        now = time.monotonic()
        head_room = express_rooms({q: depths[q] for q in QUEUES}, scheduling.target_depth)
        express_room = {
            queue: (
                max(0, scheduling.express_queue_depth - depths[express_queue])
                if self._express_stalled_until.get(express_queue, 0.0) <= now
                else 0
            )
            for queue, express_queue in EXPRESS_QUEUES.items()
        }
        room = {q: head_room[q] + express_room[q] for q in QUEUES if head_room[q] + express_room[q]}
        if not room:
            return none
        rows = await repository.lock_light_lanes(
            conn, list(room), UPLOAD, scheduling.express_max_waiting, scheduling.default_weight
        )
        picks = ExpressPicks([], [])
        for queue, n in room.items():
            chosen = self._in_turns(UPLOAD, [r for r in rows if r["queue"] == queue], n)
            picks.to_express += chosen[: express_room[queue]]
            picks.to_head += chosen[express_room[queue] :]
        return picks

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
        express: ExpressPicks | None = None,
    ) -> int:
        """Send ``rows`` to the tail of their queues and the express lane's to their
        express queues and the queues' heads; all or none. Returns how many were sent."""
        express = express or ExpressPicks([], [])
        ids = [r["id"] for r in rows] + express.ids
        if not ids:
            return 0
        tail = [_job(r) for r in rows]
        tail += [
            _job(r, express=True, queue=EXPRESS_QUEUES[r["queue"]]) for r in express.to_express
        ]
        try:
            await self.publisher.publish(tail, [_job(r, express=True) for r in express.to_head])
        except (redis.RedisError, OSError) as exc:  # all or none: the rows wait
            error = f"{type(exc).__name__}: {exc}"
            await repository.record_failure(conn, ids, error)
            log.warning("broker unreachable, %d job(s) wait in the outbox: %s", len(ids), error)
            return 0
        await repository.delete_sent(conn, ids)
        if self.on_sent is not None:
            self.on_sent(len(ids))
        if self.on_light_sent is not None and express.ids:
            self.on_light_sent(
                [(r["tenant_id"], r["image_id"]) for r in [*express.to_express, *express.to_head]]
            )
        return len(ids)

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            return await repository.count_pending(conn)
