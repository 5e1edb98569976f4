"""Everything that locks several of one image's stage rows takes them in one order, by
(image id, stage): a reprocess meeting a worker's "done" or the relay's "sent" then waits
instead of deadlocking (PostgreSQL would abort one side after a second: a 500 for the
API's reprocess, found by the contract test's fuzzer, or a relay rolling back jobs it had
already published).

Each test stages the interleaving that deadlocked before: a third transaction holds one
row so that the reset stops half-way through its locks while the other side starts.
Against the session's real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_runtime.db import resets, stages
from imgflow_runtime.db.outbox import enqueue
from imgflow_runtime.db.pool import connect
from imgflow_upload_api.jobs import repository as relay_repository
from tests.support import image_with_stages

ROW_WAIT_S = 30  # how long a staged transaction may take to reach its lock wait


async def _waiting_for_a_lock(watcher: asyncpg.Connection, pid: int) -> None:
    """Until backend ``pid`` waits for a lock: PostgreSQL's own view of the wait, polled
    (it has no notification for it), rather than a guess at timing."""
    async with asyncio.timeout(ROW_WAIT_S):
        blocked = "SELECT cardinality(pg_blocking_pids($1)) > 0"
        while not await watcher.fetchval(blocked, pid):  # noqa: ASYNC110 (a server's state)
            await asyncio.sleep(0.01)


async def _reset(conn: asyncpg.Connection, image: tuple[UUID, str], wanted: list[Stage]) -> str:
    """The API's single reprocess, as images.repository.reset_stages runs it."""
    async with conn.transaction():
        running = await resets.running_stages(conn, [image[0]], wanted)
        if running:
            return "running: " + ",".join(running[image[0]])
        await resets.reset_images(conn, [image], wanted)
    return "reset"


async def _interleaved(
    database_url: str, image_statuses: dict[Stage, str], wanted: list[Stage], other: OtherSide
) -> tuple[str, object]:
    """Hold the first row the reset locks (dedupe's), start the reset (it waits there),
    start ``other`` and let it reach a wait of its own, then let go; returns what both
    ended with. Before the one order, ``other`` took a later row first and waited for
    dedupe's behind the reset, which then waited for that later row: a deadlock."""
    conns = [await connect(database_url) for _ in range(4)]
    setup, blocker, resetter, worker = conns
    try:
        image = await image_with_stages(setup, image_statuses)
        ready = await other.prepare(setup, image)
        async with blocker.transaction():
            await blocker.execute(
                "SELECT 1 FROM image_stages WHERE image_id = $1 AND stage = $2 FOR UPDATE",
                image[0],
                Stage.DEDUPE.value,
            )
            reset = asyncio.create_task(_reset(resetter, image, wanted))
            await _waiting_for_a_lock(setup, resetter.get_server_pid())
            done = asyncio.create_task(other.run(worker, image, ready))
            await _waiting_for_a_lock(setup, worker.get_server_pid())
        async with asyncio.timeout(ROW_WAIT_S):
            return await reset, await done
    finally:
        for conn in conns:
            await conn.close()


class OtherSide:
    async def prepare(self, conn: asyncpg.Connection, image: tuple[UUID, str]) -> list[int]:
        return []

    async def run(
        self, conn: asyncpg.Connection, image: tuple[UUID, str], ready: list[int]
    ) -> object:
        raise NotImplementedError


class ThumbnailsDone(OtherSide):
    """The thumbnailer recording its stage done, which releases hashing and dedupe."""

    async def run(
        self, conn: asyncpg.Connection, image: tuple[UUID, str], ready: list[int]
    ) -> object:
        return await stages.mark_done(conn, image[0], Stage.THUMBNAILS)


class RelaySent(OtherSide):
    """The relay deleting the jobs it has just published, starting their queue wait."""

    async def prepare(self, conn: asyncpg.Connection, image: tuple[UUID, str]) -> list[int]:
        jobs = [
            ImageJob(image_id=image[0], stage=stage, object_key=image[1])
            for stage in (Stage.HASHING, Stage.DEDUPE)
        ]
        return await enqueue(conn, jobs)

    async def run(
        self, conn: asyncpg.Connection, image: tuple[UUID, str], ready: list[int]
    ) -> object:
        async with conn.transaction():
            await relay_repository.delete_sent(conn, ready)
        return await conn.fetchval("SELECT count(*) FROM outbox WHERE image_id = $1", image[0])


def test_a_reprocess_waits_for_a_finishing_worker_instead_of_deadlocking(
    database_url: str,
) -> None:
    reset, released = asyncio.run(
        _interleaved(
            database_url,
            {Stage.THUMBNAILS: "running", Stage.HASHING: "pending", Stage.DEDUPE: "pending"},
            wanted=list(Stage),
            other=ThumbnailsDone(),
        )
    )
    # The reset went first, found thumbnails running and changed nothing (the API's 409);
    # then the worker recorded it done and released the stages waiting for it.
    assert reset == "running: thumbnails"
    assert released == [Stage.HASHING, Stage.DEDUPE]


def test_a_reprocess_waits_for_the_relay_marking_its_jobs_sent(database_url: str) -> None:
    reset, left = asyncio.run(
        _interleaved(
            database_url,
            {Stage.THUMBNAILS: "done", Stage.HASHING: "pending", Stage.DEDUPE: "pending"},
            wanted=[Stage.HASHING, Stage.DEDUPE],
            other=RelaySent(),
        )
    )
    # The reset enqueued its two jobs; the relay deleted only the two it had sent.
    assert (reset, left) == ("reset", 2)
