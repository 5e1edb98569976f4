"""One LISTEN connection per API process, fanned out to the event streams it serves.

PostgreSQL triggers (migration 0008) NOTIFY every image event on one channel. Each API
process keeps a single dedicated connection listening to it, and hands each event to the
subscriptions that want it (a tenant, or one image of a tenant) through bounded queues: a
subscriber that falls behind is cut off (it can resume), never slowing the others.

When the LISTEN connection is lost (PostgreSQL restarted, a network blip), the hub
reconnects with backoff and then tells every subscriber to resynchronise from the
database, since NOTIFYs sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

log = logging.getLogger(__name__)

CHANNEL = "image_events"
# Notified with a key's SHA-256 (hex) when it is revoked or deleted (migration 0009).
REVOCATIONS_CHANNEL = "api_key_revoked"
# How the LISTEN connection shows in pg_stat_activity (and how a test finds it).
APPLICATION_NAME = "imgflow-event-hub"
MAX_RETRY_S = 30.0
TERMINAL_IMAGE_EVENTS = frozenset({"image.ready", "image.failed", "image.deleted"})


@dataclass(frozen=True)
class Event:
    """One row of image_events, as the triggers announce it: an image's or a stage's, or
    a duplicate group's (``group_id`` and ``version`` set, no ``image_id``), a similar
    stack's (``stack_id`` and ``version``), or a
    webhook's (``webhook_id`` set: ``webhook.disabled``)."""

    id: int
    type: str
    tenant_id: UUID
    image_id: UUID | None
    stage: str | None
    status: str
    error: str | None
    at: str
    group_id: UUID | None = None
    webhook_id: UUID | None = None
    version: int | None = None
    stack_id: UUID | None = None

    @classmethod
    def from_mapping(cls, raw: Any) -> Event:
        at = raw["at"]
        return cls(
            id=int(raw["id"]),
            type=raw["type"],
            tenant_id=UUID(str(raw["tenant_id"])),
            image_id=_uuid(raw["image_id"]),
            stage=raw["stage"],
            status=raw["status"],
            error=raw["error"],
            at=at if isinstance(at, str) else at.isoformat(),
            group_id=_uuid(raw.get("group_id")),
            webhook_id=_uuid(raw.get("webhook_id")),
            version=raw.get("version"),
            stack_id=_uuid(raw.get("stack_id")),
        )

    @property
    def name(self) -> str:
        """The SSE event name: ``stage``, ``image``, ``duplicate_group``, ``similar_stack``."""
        return self.type.split(".", 1)[0]

    def public(self) -> dict[str, Any]:
        """What a client sees (its own tenant id is no news to it)."""
        if self.webhook_id is not None:
            return {
                "id": self.id,
                "type": self.type,
                "webhook_id": str(self.webhook_id),
                "status": self.status,
                "error": self.error,
                "at": self.at,
            }
        if self.stack_id is not None:
            return {
                "id": self.id,
                "type": self.type,
                "stack_id": str(self.stack_id),
                "version": self.version,
                "status": self.status,
                "at": self.at,
            }
        if self.group_id is not None:
            return {
                "id": self.id,
                "type": self.type,
                "group_id": str(self.group_id),
                "version": self.version,
                "status": self.status,
                "at": self.at,
            }
        return {
            "id": self.id,
            "type": self.type,
            "image_id": str(self.image_id),
            "stage": self.stage,
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


def _uuid(value: Any) -> UUID | None:
    return None if value is None else UUID(str(value))


class Signal(Enum):
    """Queue items that are not events."""

    RESYNC = "resync"  # the LISTEN connection was re-established: NOTIFYs may have been lost
    LAGGED = "lagged"  # this subscriber fell too far behind and was dropped
    CLOSED = "closed"  # the hub is stopping


class Subscription:
    def __init__(self, tenant_id: UUID, image_id: UUID | None, queue_size: int) -> None:
        self.tenant_id = tenant_id
        self.image_id = image_id
        self._queue: asyncio.Queue[Event | Signal] = asyncio.Queue(queue_size)
        self.dropped = False

    def wants(self, event: Event) -> bool:
        return event.tenant_id == self.tenant_id and (
            self.image_id is None or event.image_id == self.image_id
        )

    def offer(self, item: Event | Signal) -> bool:
        """Queue ``item`` without waiting; False once this subscriber has been dropped."""
        if self.dropped:
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop(Signal.LAGGED)
            return False
        if item is Signal.CLOSED:
            self.dropped = True
        return True

    def _drop(self, signal: Signal) -> None:
        self.dropped = True
        while not self._queue.empty():  # the backlog is useless now: make room for the news
            self._queue.get_nowait()
        self._queue.put_nowait(signal)

    async def get(self) -> Event | Signal:
        return await self._queue.get()


class EventHub:
    def __init__(
        self,
        database_url: str,
        *,
        queue_size: int,
        retry_s: float,
        health_check_s: float = 15.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._database_url = database_url
        self._queue_size = queue_size
        self._retry_s = retry_s
        self._health_check_s = health_check_s
        self._subscriptions: set[Subscription] = set()
        self._revocation_listeners: list[Callable[[bytes | None], None]] = []
        self._image_end_listeners: list[Callable[[UUID], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        if registry is not None:
            Gauge(
                "imgflow_event_subscribers",
                "Event streams (SSE clients) this process serves now.",
                registry=registry,
            ).set_function(lambda: self.subscribers)
            Gauge(
                "imgflow_event_listen_connected",
                "1 while this process's LISTEN connection to PostgreSQL is up.",
                registry=registry,
            ).set_function(lambda: float(self.connected.is_set()))

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def on_key_revoked(self, listener: Callable[[bytes | None], None]) -> None:
        """Call ``listener`` with a revoked key's digest; with None after a reconnect, when
        revocations may have been missed."""
        self._revocation_listeners.append(listener)

    def on_image_ended(self, listener: Callable[[UUID], None]) -> None:
        """Call ``listener`` with the id of every image that is ready, failed or deleted
        (a notification lost while the LISTEN connection was down is not repeated)."""
        self._image_end_listeners.append(listener)

    @contextlib.contextmanager
    def subscribe(self, tenant_id: UUID, image_id: UUID | None = None) -> Iterator[Subscription]:
        """Events of a tenant (or one image of it) until the block exits."""
        subscription = Subscription(tenant_id, image_id, self._queue_size)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for subscription in list(self._subscriptions):
            subscription.offer(Signal.CLOSED)

    def _broadcast(self, signal: Signal) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(signal)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = Event.from_mapping(json.loads(payload))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed %s notification: %.200r", CHANNEL, payload)
            return
        if event.type in TERMINAL_IMAGE_EVENTS and event.image_id is not None:
            for listener in self._image_end_listeners:
                listener(event.image_id)
        for subscription in list(self._subscriptions):
            if subscription.wants(event) and not subscription.offer(event):
                self._subscriptions.discard(subscription)

    def _on_revocation(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            digest: bytes | None = bytes.fromhex(payload)
        except ValueError:
            log.warning("malformed %s notification; forgetting every key", REVOCATIONS_CHANNEL)
            digest = None
        self._revoked(digest)

    def _revoked(self, digest: bytes | None) -> None:
        for listener in self._revocation_listeners:
            listener(digest)

    async def _run(self) -> None:
        delay = self._retry_s
        while True:
            try:
                conn = await asyncpg.connect(
                    self._database_url, server_settings={"application_name": APPLICATION_NAME}
                )
            except Exception as exc:  # refused, timed out, starting up: all mean later
                log.warning("event hub cannot connect (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
                continue
            try:
                await self._listen(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event hub lost its LISTEN connection: %r", exc)
            finally:
                self.connected.clear()
                conn.terminate()  # never waits: the server may be gone
            delay = self._retry_s
            await asyncio.sleep(delay)

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        await conn.add_listener(REVOCATIONS_CHANNEL, self._on_revocation)
        # Whatever happened while nobody listened (or before a subscriber's first read)
        # is only in the table now: every subscriber re-reads it, and no cached key is
        # trusted (its revocation may have gone unheard).
        self._broadcast(Signal.RESYNC)
        self._revoked(None)
        self.connected.set()
        log.info("event hub listening on %s", CHANNEL)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), timeout=self._health_check_s)
            if not lost.is_set():  # a half-open socket only shows when used
                await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=5)
        raise ConnectionError("the LISTEN connection was closed")
