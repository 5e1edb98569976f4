"""The event streams as plain async generators of messages; endpoints.py serves them as SSE.

Each stream subscribes to the hub *before* it reads the database, so nothing committed
in between is missed, and skips what it has already sent.

- One image: first its current state (every stage), then each change; it ends once every
  stage is terminal (``image.ready`` / ``image.failed``) or the image is deleted. After a
  lost LISTEN connection, or on a client's reconnect, the state is simply read again.
- A tenant: an ``open`` message with the latest event id, then every event of the tenant.
  A reconnect with ``Last-Event-ID`` first replays the stored events after that id; so
  does a resynchronisation after the LISTEN connection was lost. Event ids are taken in
  insertion order, not commit order, so an event committed a moment after a later-numbered
  one (two images finishing at once) can fall before a resume point: a client that must
  not miss an outcome also has webhooks, or reads the image.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_upload_api.events import repository
from imgflow_upload_api.events.hub import TERMINAL_IMAGE_EVENTS, Event, EventHub, Signal
from imgflow_upload_api.images.schemas import overall_status

BACKLOG_PAGE = 500
TERMINAL_STAGE_STATUSES = frozenset({"done", "failed"})


@dataclass(frozen=True)
class Message:
    event: str
    id: int
    data: dict[str, Any]


@dataclass(frozen=True)
class ImageState:
    image_id: UUID
    stages: dict[str, dict[str, Any]]
    last_event_id: int

    @property
    def finished(self) -> bool:
        return all(s["status"] in TERMINAL_STAGE_STATUSES for s in self.stages.values())

    def message(self) -> Message:
        statuses = [s["status"] for s in self.stages.values()]
        data = {
            "image_id": str(self.image_id),
            "status": overall_status(statuses),
            "finished": self.finished,
            "stages": self.stages,
        }
        return Message("state", self.last_event_id, data)


class RecentIds:
    """The ids a stream sent lately, to drop an event that both a replay and LISTEN bring."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[int] = deque(maxlen=size)
        self._ids: set[int] = set()

    def __contains__(self, event_id: int) -> bool:
        return event_id in self._ids

    def add(self, event_id: int) -> None:
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(event_id)
        self._ids.add(event_id)


async def read_image_state(
    pool: asyncpg.Pool, tenant_id: UUID, image_id: UUID
) -> ImageState | None:
    """The image's stages and its latest event id, in one snapshot; None if not found."""
    async with pool.acquire() as conn:
        rows = await repository.stage_rows(conn, tenant_id, image_id)
    if not rows:
        return None
    stages = {
        r["stage"]: {"status": r["status"], "error": r["error"], "attempts": r["attempts"]}
        for r in rows
    }
    return ImageState(image_id, stages, rows[0]["last_event_id"])


async def latest_event_id(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await repository.latest_event_id(conn)


async def stored_events(pool: asyncpg.Pool, tenant_id: UUID, after: int) -> AsyncIterator[Event]:
    """The tenant's stored events after id ``after``, oldest first, a page at a time."""
    while True:
        async with pool.acquire() as conn:
            rows = await repository.events_after(conn, tenant_id, after, BACKLOG_PAGE)
        for row in rows:
            yield Event.from_mapping(row)
        if len(rows) < BACKLOG_PAGE:
            return
        after = rows[-1]["id"]


def _message(event: Event) -> Message:
    return Message(event.name, event.id, event.public())


async def image_stream(
    hub: EventHub, pool: asyncpg.Pool, tenant_id: UUID, image_id: UUID
) -> AsyncIterator[Message]:
    with hub.subscribe(tenant_id, image_id) as subscription:
        state = await read_image_state(pool, tenant_id, image_id)
        if state is None:
            return
        yield state.message()
        seen = state.last_event_id  # per image, ids are in commit order (see 0008)
        while not state.finished:
            item = await subscription.get()
            if item is Signal.RESYNC:
                fresh = await read_image_state(pool, tenant_id, image_id)
                if fresh is None:
                    return  # deleted while nobody listened
                if fresh.last_event_id > seen:
                    state, seen = fresh, fresh.last_event_id
                    yield state.message()
                continue
            if isinstance(item, Signal):
                return  # lagged or closing: a reconnect reads the state again
            if item.id <= seen:
                continue
            seen = item.id
            yield _message(item)
            if item.type in TERMINAL_IMAGE_EVENTS:
                return


async def tenant_stream(
    hub: EventHub, pool: asyncpg.Pool, tenant_id: UUID, last_event_id: int | None
) -> AsyncIterator[Message]:
    with hub.subscribe(tenant_id) as subscription:
        sent = RecentIds()
        seen = await latest_event_id(pool) if last_event_id is None else last_event_id
        yield Message("open", seen, {"last_event_id": seen})

        async def replay() -> AsyncIterator[Message]:
            nonlocal seen
            async for event in stored_events(pool, tenant_id, seen):
                if event.id not in sent:
                    sent.add(event.id)
                    yield _message(event)
                seen = max(seen, event.id)

        if last_event_id is not None:
            async for message in replay():
                yield message
        while True:
            item = await subscription.get()
            if item is Signal.RESYNC:
                async for message in replay():
                    yield message
                continue
            if isinstance(item, Signal):
                return  # lagged or closing: the client resumes with Last-Event-ID
            if item.id in sent:
                continue
            sent.add(item.id)
            seen = max(seen, item.id)
            yield _message(item)
