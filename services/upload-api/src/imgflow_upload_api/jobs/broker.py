"""Send jobs to Celery's Redis/Valkey broker from the event loop, a batch per round trip.

Celery's ``send_task`` is synchronous (kombu has no asyncio transport), so the relay used to
hop to a thread for each batch, and every message cost the API 0.3-0.5 ms of CPU under load:
``saferepr`` of the kwargs, a kombu producer, and a new redis-py client object per message
(kombu's Redis channel builds one for each publish). That was the largest piece of a small
upload's CPU after the S3 PUT (docs/performance/upload-api.md, issue 16).

Celery still builds every message here (``app.amqp.as_task_v2``: the protocol-2 headers and
body) and kombu serializes the body; this module only wraps it the way kombu's Redis
transport stores a message (``Channel.basic_publish`` then ``_put``: the body base64 in a
JSON envelope, pushed with LPUSH onto the list named after the queue), and sends a whole
batch in one MULTI/EXEC. ``tests/test_broker_publish.py`` compares the result with what
``send_task`` pushes, field by field, so a Celery or kombu upgrade that changes the format
fails there, not in the workers.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu.serialization import dumps as serialize
from kombu.utils.json import dumps as json_dumps
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

# A message without a priority goes to priority 0, whose list is the queue's own name
# (kombu.transport.redis.Channel._q_for_pri); every imgflow job is sent that way.
_PRIORITY = 0
_PERSISTENT = 2  # kombu's delivery_mode for durable messages, what Celery sends


# Pop the head of KEYS[1] (kombu's consumers BRPOP: the right end) and push it onto the
# head of KEYS[2], only if it is still ARGV[1]: one message moved, never lost or doubled.
_MOVE_HEAD = """
if redis.call('LINDEX', KEYS[1], -1) == ARGV[1] then
  redis.call('RPUSH', KEYS[2], redis.call('RPOP', KEYS[1]))
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Job:
    task_name: str
    queue: str
    kwargs: Mapping[str, Any]
    # Extra message headers: the W3C trace context the workers' CeleryInstrumentor reads.
    headers: Mapping[str, str] = field(default_factory=dict)


class BrokerPublisher:
    """Publishes Celery task messages with redis-py's asyncio client."""

    def __init__(self, app: Celery, client: aioredis.Redis) -> None:
        self._amqp = app.amqp
        self._client = client
        self._origin = anon_nodename()
        self._reply_to = app.thread_oid
        self._move_head = client.register_script(_MOVE_HEAD)

    @classmethod
    def connect(cls, app: Celery, broker_url: str, timeout_s: float = 2.0) -> BrokerPublisher:
        """A publisher for ``broker_url`` (redis:// or rediss://); connects on first use.

        Bounded timeouts and two quick retries (a connection the broker dropped is
        reopened at once); a longer outage fails the batch, which stays in the outbox.
        """
        client = aioredis.Redis.from_url(
            broker_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        )
        return cls(app, client)

    def encode(self, job: Job) -> bytes:
        """The bytes ``send_task(job.task_name, kwargs=..., queue=job.queue,
        headers=...)`` would push, with fresh ids."""
        task_id = str(uuid.uuid4())
        headers, properties, body, _ = self._amqp.as_task_v2(
            task_id,
            job.task_name,
            kwargs=job.kwargs,
            reply_to=self._reply_to,
            origin=self._origin,
            ignore_result=None,
            # What saferepr would give for these small JSON payloads, without its cost.
            argsrepr="()",
            kwargsrepr=repr(dict(job.kwargs)),
        )
        headers.update(job.headers)
        content_type, content_encoding, data = serialize(body, serializer="json")
        properties.update(
            delivery_mode=_PERSISTENT,
            delivery_info={"exchange": "", "routing_key": job.queue},
            priority=_PRIORITY,
            body_encoding="base64",
            delivery_tag=str(uuid.uuid4()),
        )
        raw = data.encode(content_encoding) if isinstance(data, str) else data
        envelope = {
            "body": base64.b64encode(raw).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": properties,
        }
        return json_dumps(envelope).encode()

    async def publish(self, jobs: Sequence[Job], to_head: Sequence[Job] = ()) -> None:
        """All of ``jobs`` (at the tail of their queues) and ``to_head`` (at the head, to
        be taken next, in the order given) or none of them, in one MULTI/EXEC round trip;
        raises redis.RedisError (or OSError) when the broker cannot be reached."""
        if not jobs and not to_head:
            return
        async with self._client.pipeline(transaction=True) as pipe:
            for job in jobs:
                pipe.lpush(job.queue, self.encode(job))
            # kombu's consumers BRPOP: the right end is the head. Pushed last first, so
            # the first of them is the first taken.
            for job in reversed(to_head):
                pipe.rpush(job.queue, self.encode(job))
            await pipe.execute()

    async def survey(
        self, queues: Sequence[str], heads_of: Sequence[str] = ()
    ) -> tuple[dict[str, int], dict[str, bytes | None]]:
        """Each queue's length, and the message at the head of each of ``heads_of`` (None:
        empty), in one round trip; raises redis.RedisError (or OSError) when
        unreachable."""
        async with self._client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            for queue in heads_of:
                pipe.lindex(queue, -1)
            answers = await pipe.execute()
        depths = {queue: int(n) for queue, n in zip(queues, answers, strict=False)}
        heads = dict(zip(heads_of, answers[len(queues) :], strict=True))
        return depths, heads

    async def move_to_head(self, source: str, queue: str, message: bytes) -> bool:
        """Move ``message`` from the head of ``source`` to the head of ``queue`` if it is
        still at the head of ``source`` (atomic: taken by a worker meanwhile, it stays
        where it is); returns whether it moved."""
        return bool(await self._move_head(keys=[source, queue], args=[message]))

    async def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each queue's list (what workers have not taken yet), in
        one round trip; raises redis.RedisError (or OSError) when unreachable."""
        async with self._client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            counts = await pipe.execute()
        return {queue: int(n) for queue, n in zip(queues, counts, strict=True)}

    async def close(self) -> None:
        await self._client.aclose()
