"""Light tenants' work first, on the API's side too: while a tenant with no backlog has
jobs in the express lane, a tenant with a backlog runs at most ``share`` uploads at a
time in this process; its other uploads wait here, before their bodies are read, until
one of its own ends or the light work is done. Nothing is refused.

Why: on one host the API, the object store and the database serve a flood's uploads on
the cores the express workers need for a small tenant's three images; held to two
uploads in progress the flood left them within 2x of their time alone, unthrottled it did
not (docs/operating/scheduling.md, "Ninth round"). A fixed per-tenant limit would hold an
import back all the time, and over a WAN, where an upload takes seconds, a lot; this
holds it back only for the seconds a light tenant's images are being processed.

"Light work in flight" is what the relay sent through the express lane in the last
``window_s`` (it cannot see the jobs end: the workers hand the later stages on
themselves). In this process only: with several API replicas each knows the light work
its own relay sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from uuid import UUID


class LightWorkFirst:
    def __init__(
        self,
        share: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        self.share = share  # 0: off
        self.window_s = window_s
        self.clock = clock
        self.on_wait = on_wait  # counts the uploads that waited (a metric)
        self._light_until: dict[UUID, float] = {}
        self._running: Counter[UUID] = Counter()
        self._changed = asyncio.Condition()

    def light_sent(self, tenants: Iterable[UUID]) -> None:
        """The relay sent these tenants' jobs through the express lane just now."""
        if self.share <= 0:
            return
        now = self.clock()
        self._forget_done(now)  # so the map holds only the window's tenants
        for tenant in tenants:
            self._light_until[tenant] = now + self.window_s

    def _forget_done(self, now: float) -> None:
        for done in [t for t, until in self._light_until.items() if until <= now]:
            del self._light_until[done]

    def light_work_of_others(self, tenant: UUID) -> float:
        """Seconds until every other tenant's light work is taken to be done (0: none)."""
        now = self.clock()
        self._forget_done(now)
        return max(
            (until - now for t, until in self._light_until.items() if t != tenant), default=0.0
        )

    def must_wait(self, tenant: UUID, backlog: bool) -> float:
        """How long ``tenant``'s next upload may wait now at most (0: it goes)."""
        if self.share <= 0 or not backlog or self._running[tenant] < self.share:
            return 0.0
        return self.light_work_of_others(tenant)

    @contextlib.asynccontextmanager
    async def turn(self, tenant: UUID, backlog: bool) -> AsyncIterator[None]:
        """Hold one of the tenant's running uploads for the block, after waiting if it
        has a ``backlog`` while others' light work is in flight."""
        if self.share <= 0:  # off: nothing to count on the upload path
            yield
            return
        wait_s = self.must_wait(tenant, backlog)
        if wait_s > 0:
            if self.on_wait is not None:
                self.on_wait()
            async with self._changed:
                while wait_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), wait_s)
                    wait_s = self.must_wait(tenant, backlog)
        self._running[tenant] += 1
        try:
            yield
        finally:
            self._running[tenant] -= 1
            if not self._running[tenant]:
                del self._running[tenant]
            async with self._changed:
                self._changed.notify_all()
