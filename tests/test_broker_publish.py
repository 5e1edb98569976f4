"""The relay's publisher (imgflow_upload_api.jobs.broker) against the session's real Valkey:
what it pushes is what Celery's own send_task pushes, apart from the fresh ids, so the
workers, Flower and the sweeper's queue heads read it the same way.

Each test uses a queue of its own, which no worker consumes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.ports import free_port
from imgflow_runtime.celery_app import make_producer_app
from imgflow_upload_api.jobs.broker import BrokerPublisher, Job
from imgflow_upload_api.jobs.queue_heads import job_in_message

TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture
def queue(settings: CommonSettings) -> Iterator[str]:
    name = f"test-publish-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(settings.broker_url)
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    client.close()


def _job(queue: str) -> Job:
    image_id = uuid4()
    payload = ImageJob(
        image_id=image_id, stage=Stage.THUMBNAILS, object_key=f"originals/{image_id}"
    )
    return Job(Stage.THUMBNAILS.task_name, queue, payload.to_message(), TRACE)


def _publish(settings: CommonSettings, jobs: list[Job], url: str | None = None) -> None:
    async def run() -> None:
        publisher = BrokerPublisher.connect(
            make_producer_app(settings), url or settings.broker_url, timeout_s=1
        )
        try:
            await publisher.publish(jobs)
        finally:
            await publisher.close()

    asyncio.run(run())


def _without_ids(raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    """The envelope with its per-message ids blanked, and the decoded body. (``reply_to``
    is an id of the sending app and thread, where an RPC result backend would answer.)"""
    envelope = json.loads(raw)
    headers, properties = envelope["headers"], envelope["properties"]
    assert headers["id"] == headers["root_id"] == properties["correlation_id"]
    for holder, name in (
        (headers, "id"),
        (headers, "root_id"),
        (properties, "correlation_id"),
        (properties, "delivery_tag"),
        (properties, "reply_to"),
    ):
        assert holder[name]
        holder[name] = "-"
    body = json.loads(base64.b64decode(envelope.pop("body")))
    return envelope, body


def test_a_job_is_pushed_as_send_task_pushes_it(settings: CommonSettings, queue: str) -> None:
    job = _job(queue)
    celery = make_producer_app(settings)
    try:
        celery.send_task(
            job.task_name, kwargs=dict(job.kwargs), queue=queue, headers=dict(job.headers)
        )
    finally:
        celery.close()
    _publish(settings, [job])

    client = redis.Redis.from_url(settings.broker_url)
    theirs, ours = client.rpop(queue), client.rpop(queue)
    assert client.llen(queue) == 0
    client.close()
    assert theirs is not None and ours is not None
    assert _without_ids(ours) == _without_ids(theirs)
    assert json.loads(ours)["headers"]["traceparent"] == TRACE["traceparent"]
    assert job_in_message(ours) == ImageJob.model_validate(job.kwargs)


def test_a_batch_lands_in_order_with_fresh_ids(settings: CommonSettings, queue: str) -> None:
    jobs = [_job(queue) for _ in range(3)]
    _publish(settings, jobs)

    client = redis.Redis.from_url(settings.broker_url)
    # LPUSH: the first job sent is the oldest, at the right end, where workers pop.
    raw = list(reversed(client.lrange(queue, 0, -1)))
    client.close()
    assert [job_in_message(r) for r in raw] == [ImageJob.model_validate(j.kwargs) for j in jobs]
    ids = {json.loads(r)["headers"]["id"] for r in raw}
    tags = {json.loads(r)["properties"]["delivery_tag"] for r in raw}
    assert len(ids) == len(tags) == 3


def test_jobs_for_the_head_are_taken_next_in_their_order(
    settings: CommonSettings, queue: str
) -> None:
    """The fair relay's express lane: jobs pushed to the head go before those in line."""
    in_line, express = [_job(queue) for _ in range(2)], [_job(queue) for _ in range(2)]
    _publish(settings, in_line)

    async def run() -> None:
        publisher = BrokerPublisher.connect(make_producer_app(settings), settings.broker_url)
        try:
            await publisher.publish([], to_head=express)
        finally:
            await publisher.close()

    asyncio.run(run())
    client = redis.Redis.from_url(settings.broker_url)
    taken = [job_in_message(client.rpop(queue)) for _ in range(4)]  # as a worker's BRPOP
    client.close()
    assert taken == [ImageJob.model_validate(j.kwargs) for j in [*express, *in_line]]


def test_an_unreachable_broker_raises(settings: CommonSettings, queue: str) -> None:
    """The relay keeps a job in the outbox only if publishing raises: a publisher that
    swallowed the failure would lose the job."""
    port = free_port()
    with pytest.raises((redis.RedisError, OSError)):
        _publish(settings, [_job(queue)], url=f"redis://127.0.0.1:{port}/0")
