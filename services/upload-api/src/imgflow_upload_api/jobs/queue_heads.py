"""The oldest job waiting in each stage's broker queue, for the sweeper (QueueHead).

Celery's Redis transport keeps a queue as a list: a send pushes on the left (LPUSH), a
worker pops from the right (BRPOP), so the oldest message is at index -1. A message is
kombu's JSON envelope around Celery's protocol-2 body, ``[args, kwargs, embed]``, where the
kwargs are an ``ImageJob``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping

import redis
from pydantic import ValidationError

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_runtime.db.sweeper import QueueHead

log = logging.getLogger(__name__)

STAGE_QUEUES: Mapping[Stage, str] = {stage: stage.queue for stage in Stage}


def job_in_message(raw: bytes) -> ImageJob | None:
    """The job a queued Celery message carries; None for anything else."""
    try:
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        return ImageJob.model_validate(kwargs)
    except (ValueError, TypeError, KeyError, ValidationError):
        return None


def read_queue_heads(
    broker: redis.Redis, queues: Mapping[Stage, str] = STAGE_QUEUES, window: int = 1
) -> list[QueueHead]:
    """A QueueHead for each of the ``window`` messages at the head of each non-empty
    queue, in one round trip. More than one: the fair relay's express lane puts new jobs
    ahead of older ones, so the oldest in line is one of the first few, not always the
    first (the sweeper takes the oldest of those it is given)."""
    with broker.pipeline(transaction=False) as pipe:
        for queue in queues.values():
            pipe.lrange(queue, -window, -1)
        nearest = pipe.execute()
    heads = []
    for stage, raws in zip(queues, nearest, strict=True):
        # empty: nothing is in line, the deadline alone decides
        for raw in raws:
            job = job_in_message(raw)
            head = job.image_id if job is not None and job.stage is stage else None
            if head is None:
                log.warning("a message at the head of %s is not a %s job", queues[stage], stage)
            heads.append(QueueHead(stage, head))
    return heads
