"""A pending job behind a backlog is waiting, not lost: the sweeper leaves it alone until
its queue has moved past it (imgflow_runtime.db.sweeper.QueueHead).

Against the session's real PostgreSQL and Valkey: the queue heads are read from messages
Celery itself published, and the sweeps run in transactions that are rolled back.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from uuid import UUID, uuid4

import asyncpg
import pytest
import redis

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import CommonSettings
from imgflow_runtime.celery_app import make_producer_app
from imgflow_runtime.db.pool import connect
from imgflow_runtime.db.sweeper import QueueHead, SweepPolicy, sweep
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from imgflow_upload_api.jobs.queue_heads import job_in_message, read_queue_heads

POLICY = SweepPolicy(pending_after_s=60, running_after_s=60, max_sweeps=3)


@pytest.fixture
def broker(settings: CommonSettings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker_url)
    yield client
    client.close()


def _job(stage: Stage = Stage.THUMBNAILS) -> ImageJob:
    image_id = uuid4()
    return ImageJob(image_id=image_id, stage=stage, object_key=f"originals/backlog/{image_id}")


def test_the_head_is_the_oldest_job_celery_queued(
    settings: CommonSettings, broker: redis.Redis
) -> None:
    # Scratch queues no worker consumes, filled the way the relay fills the real ones.
    thumbnails, hashing, dedupe = (f"test-backlog-{secrets.token_hex(4)}" for _ in range(3))
    jobs = [_job() for _ in range(3)]
    producer = make_producer_app(settings)
    try:
        for job in jobs:
            producer.send_task(job.stage.task_name, kwargs=job.to_message(), queue=thumbnails)
        broker.lpush(hashing, b"not a celery message")
        queues = {Stage.THUMBNAILS: thumbnails, Stage.HASHING: hashing, Stage.DEDUPE: dedupe}
        heads = read_queue_heads(broker, queues)
        assert job_in_message(broker.lindex(thumbnails, 0)) == jobs[-1]  # newest on the left
    finally:
        broker.delete(thumbnails, hashing, dedupe)
        producer.close()
    assert heads == [
        QueueHead(Stage.THUMBNAILS, jobs[0].image_id),
        QueueHead(Stage.HASHING, None),  # in line behind something unreadable
    ]  # the empty dedupe queue has no head


def test_a_window_of_heads_is_the_messages_nearest_the_head(
    settings: CommonSettings, broker: redis.Redis
) -> None:
    queue = f"test-backlog-{secrets.token_hex(4)}"
    jobs = [_job() for _ in range(3)]
    producer = make_producer_app(settings)
    try:
        for job in jobs:
            producer.send_task(job.stage.task_name, kwargs=job.to_message(), queue=queue)
        heads = read_queue_heads(broker, {Stage.THUMBNAILS: queue}, window=2)
    finally:
        broker.delete(queue)
        producer.close()
    assert sorted(h.image_id for h in heads) == sorted(j.image_id for j in jobs[:2])


def _sweep_and_see(
    database_url: str,
    ages_min: list[int],
    heads_at: int | list[int] | str | None,
    sweeps: int = 0,
) -> list[str]:
    """Pending thumbnail stages queued ``ages_min`` minutes ago; the queue's head is the
    one at index ``heads_at`` (a list: the messages nearest the head; None: an unreadable
    head, "empty": no head). What each
    became: "waiting", "requeued" or "dead-lettered"."""

    async def scenario(conn: asyncpg.Connection) -> list[str]:
        tx = conn.transaction()
        await tx.start()
        try:
            ids: list[UUID] = []
            for age in ages_min:
                image_id = uuid4()
                ids.append(image_id)
                await conn.execute(
                    """INSERT INTO images (id, tenant_id, object_key, content_type,
                                          byte_size, sha256)
                       VALUES ($1, $2, $3, 'image/jpeg', 1000, $4)""",
                    image_id,
                    DEFAULT_TENANT_ID,
                    f"originals/backlog/{image_id}",
                    secrets.token_hex(32),
                )
                await conn.execute(
                    """INSERT INTO image_stages (image_id, stage, status, queued_at, sweeps)
                       VALUES ($1, 'thumbnails', 'pending', now() - make_interval(mins => $2),
                               $3)""",
                    image_id,
                    age,
                    sweeps,
                )
            if heads_at == "empty":
                heads = []
            elif isinstance(heads_at, list):
                heads = [QueueHead(Stage.THUMBNAILS, ids[i]) for i in heads_at]
            else:
                head = ids[heads_at] if isinstance(heads_at, int) else None
                heads = [QueueHead(Stage.THUMBNAILS, head)]
            await sweep(conn, POLICY, heads)
            became = []
            for image_id in ids:
                if await conn.fetchval(
                    "SELECT count(*) FROM dead_letters WHERE image_id = $1", image_id
                ):
                    became.append("dead-lettered")
                elif await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE image_id = $1", image_id
                ):
                    became.append("requeued")
                else:
                    became.append("waiting")
            return became
        finally:
            await tx.rollback()

    async def go() -> list[str]:
        conn = await connect(database_url)
        try:
            return await scenario(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_jobs_in_line_behind_the_head_are_not_swept(database_url: str) -> None:
    # All three are past the 60 s deadline; the queue's oldest message is the 120 min one.
    assert _sweep_and_see(database_url, [180, 120, 90], heads_at=1) == [
        "requeued",  # queued before the head: the queue moved past it, its message is gone
        "waiting",  # the head itself
        "waiting",  # behind it
    ]


def test_a_job_put_ahead_does_not_make_those_behind_it_look_lost(database_url: str) -> None:
    # The express lane put the 90 min job at the head, ahead of the 120 min one: the
    # oldest of the messages nearest the head is what counts.
    assert _sweep_and_see(database_url, [180, 120, 90], heads_at=[2, 1]) == [
        "requeued",
        "waiting",
        "waiting",
    ]


def test_an_unreadable_head_keeps_the_whole_queue_waiting(database_url: str) -> None:
    assert _sweep_and_see(database_url, [180, 90], heads_at=None) == ["waiting", "waiting"]


def test_an_empty_queue_leaves_the_deadline_to_decide(database_url: str) -> None:
    assert _sweep_and_see(database_url, [180, 90], heads_at="empty") == ["requeued", "requeued"]


def test_a_job_swept_to_its_limit_is_not_dead_lettered_while_in_line(database_url: str) -> None:
    assert _sweep_and_see(database_url, [180, 120, 90], heads_at=1, sweeps=3) == [
        "dead-lettered",  # passed over three times already: lost
        "waiting",
        "waiting",
    ]
