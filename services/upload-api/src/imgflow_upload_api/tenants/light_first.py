"""Light tenants' work first, on the API's side too: while a tenant with no backlog has
images in the express lane, a tenant with a backlog runs at most ``share`` uploads at a
time in this process (0: none); its other uploads wait here, before their bodies are
read, until one of its own ends or the light work is done, and at most ``window_s``, so
that a steady stream of light work cannot starve it. Nothing is refused.

Why: on one host the API, the object store and the database serve a flood's uploads on
the cores the express workers need for a small tenant's three images: even one of the
flood's uploads at a time left them at 2.3-2.6x their time alone, none at about 1.1x
(docs/operating/scheduling.md, "Tenth round"). A fixed per-tenant limit would hold an
import back all the time, and over a WAN, where an upload takes seconds, a lot; this
holds it back only while a light tenant's images are being processed.

"Light work in flight" starts with a light tenant's upload (one without a backlog), from
its first byte: the backlog's next uploads then wait while the light one's body is still
read. Once taken, the upload's image counts until the relay sent its jobs through the
express lane (at most ``unsent_s``, the relay's longest pause: they may go by another
lane), and then until the image's terminal event (ready, failed, deleted) reaches this
process's event hub, at most ``window_s``: the workers hand the later stages on
themselves, so the relay cannot see the image finish, and an event the hub missed (its
LISTEN connection lost) must not hold a backlog back for good. In this process only:
with several API replicas each knows the light work its own uploads and relay saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from uuid import UUID


class LightWorkFirst:
    def __init__(
        self,
        on: bool,
        share: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[], None] | None = None,
        unsent_s: float | None = None,
    ) -> None:
        self.on = on
        self.share = share  # uploads a backlog still runs meanwhile, per tenant (0: none)
        self.window_s = window_s
        self.unsent_s = min(window_s, unsent_s if unsent_s is not None else window_s)
        self.clock = clock
        self.on_wait = on_wait  # counts the uploads that waited (a metric)
        # light tenant -> its uploads in progress
        self._uploading: Counter[UUID] = Counter()
        # light tenant -> when its taken uploads stop counting at the latest, if the relay
        # has not sent their jobs by then
        self._unsent: dict[UUID, float] = {}
        # light image -> (its tenant, when it stops counting at the latest)
        self._in_flight: dict[UUID, tuple[UUID, float]] = {}
        self._running: Counter[UUID] = Counter()
        # Set and replaced whenever a waiting upload may go: an image's end arrives in a
        # plain callback (the event hub's), where an asyncio.Condition cannot be taken.
        self._changed = asyncio.Event()

    def light_sent(self, images: Iterable[tuple[UUID, UUID]]) -> None:
        """The relay sent these (tenant, image) pairs' jobs through the express lane."""
        if not self.on:
            return
        now = self.clock()
        self._forget_done(now)  # so the map holds only light work still in flight
        for tenant, image in images:
            self._unsent.pop(tenant, None)
            self._in_flight[image] = (tenant, now + self.window_s)

    def image_ended(self, image: UUID) -> None:
        """An image is ready, failed or deleted (the event hub's terminal events)."""
        if self._in_flight.pop(image, None) is not None:
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _forget_done(self, now: float) -> None:
        for done in [i for i, (_, until) in self._in_flight.items() if until <= now]:
            del self._in_flight[done]
        for done in [t for t, until in self._unsent.items() if until <= now]:
            del self._unsent[done]

    def light_work_of_others(self, tenant: UUID) -> float:
        """Seconds until every other tenant's light work is taken to be done at the
        latest (0: none in flight)."""
        if any(t != tenant for t in self._uploading):
            return self.window_s  # an upload's end wakes the waiters: they look again
        now = self.clock()
        self._forget_done(now)
        untils = [until for t, until in self._in_flight.values() if t != tenant]
        untils += [until for t, until in self._unsent.items() if t != tenant]
        return max((until - now for until in untils), default=0.0)

    def must_wait(self, tenant: UUID, backlog: bool) -> float:
        """How long ``tenant``'s next upload may wait now at most (0: it goes)."""
        if not self.on or not backlog or self._running[tenant] < self.share:
            return 0.0
        return self.light_work_of_others(tenant)

    @contextlib.asynccontextmanager
    async def turn(self, tenant: UUID, backlog: bool) -> AsyncIterator[None]:
        """Hold one of the tenant's running uploads for the block, after waiting if it
        has a ``backlog`` while others' light work is in flight; without a backlog, the
        upload is light work itself."""
        if not self.on:  # nothing to count on the upload path
            yield
            return
        if not backlog:
            async with self._running_upload(tenant), self._light_upload(tenant):
                yield
            return
        give_up_at = self.clock() + self.window_s  # newer light work must not starve it
        wait_s = min(self.must_wait(tenant, backlog), self.window_s)
        if wait_s > 0 and self.on_wait is not None:
            self.on_wait()
        while wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait_s)
            wait_s = min(self.must_wait(tenant, backlog), give_up_at - self.clock())
        async with self._running_upload(tenant):
            yield

    @contextlib.asynccontextmanager
    async def _running_upload(self, tenant: UUID) -> AsyncIterator[None]:
        # Light uploads count too: a flood's first uploads, made while it was light, are
        # part of its share once it has a backlog.
        try:
            with _counted(self._running, tenant):
                yield
        finally:
            self._wake()

    @contextlib.asynccontextmanager
    async def _light_upload(self, tenant: UUID) -> AsyncIterator[None]:
        # Inside _running_upload, whose end wakes the waiters for both.
        with _counted(self._uploading, tenant):
            yield
            # taken: its jobs are in the outbox, light work until the relay sends them
            self._unsent[tenant] = self.clock() + self.unsent_s


@contextlib.contextmanager
def _counted(counter: Counter[UUID], tenant: UUID) -> Iterator[None]:
    """Count one of ``tenant``'s uploads in ``counter`` for the block; no zero entries
    are kept (the maps' keys are the tenants with some)."""
    counter[tenant] += 1
    try:
        yield
    finally:
        counter[tenant] -= 1
        if not counter[tenant]:
            del counter[tenant]
