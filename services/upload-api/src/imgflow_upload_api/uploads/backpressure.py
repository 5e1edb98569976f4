"""Refuse uploads while the system is past its breaking depth, instead of letting the
backlog grow without bound (ADR-0012: breaking above 10,000 queued jobs), and refuse the
tenants that hold the backlog first (issue 30).

With fair scheduling the backlog waits in the outbox, counted per tenant. Past the
breaking depth a tenant is refused while it holds more than an equal share of that depth
among the tenants with work waiting; a tenant with nothing waiting is always admitted.
So one tenant's import cannot lock everyone else out, and it is admitted again as soon as
its share drains.

A broker queue past the breaking depth (possible with the FIFO relay, where the broker
holds the backlog, or when the workers stopped) refuses every tenant: who queued it is
not known there.

Depths are read in the background, so an upload never waits on Redis to be admitted.
While the broker is unreachable its depths are unknown and uploads go on: the outbox
holds their jobs, and its own depth is limited the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from uuid import UUID

from imgflow_upload_api.problems import Problem

log = logging.getLogger(__name__)


@dataclass
class Backpressure:
    breaking_depth: int
    retry_after_s: int = 30
    queue_depths: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    # jobs waiting in the outbox per tenant (every kind)
    queued_by_tenant: dict[UUID, int] = field(default_factory=dict)
    updated_at: float = 0.0

    def update(
        self,
        queue_depths: dict[str, int] | None,
        outbox_depth: int | None,
        queued_by_tenant: dict[UUID, int] | None = None,
    ) -> None:
        if queue_depths is not None:
            self.queue_depths = queue_depths
        if outbox_depth is not None:
            self.outbox_depth = outbox_depth
        if queued_by_tenant is not None:
            self.queued_by_tenant = queued_by_tenant
        self.updated_at = time.monotonic()

    def queued(self, tenant: UUID) -> int:
        return self.queued_by_tenant.get(tenant, 0)

    def over_limit(self) -> dict[str, int]:
        """The queues (and the outbox) past the breaking depth, with their depths."""
        depths = {**self.queue_depths, "outbox": self.outbox_depth}
        return {name: n for name, n in depths.items() if n > self.breaking_depth}

    def fair_share(self) -> int:
        """Past the breaking depth, what a tenant may hold and still be admitted."""
        holders = sum(1 for n in self.queued_by_tenant.values() if n > 0)
        return self.breaking_depth // max(1, holders)

    def admit(self, tenant: UUID | None = None) -> None:
        """Raise a 503 problem when the system is past its breaking depth and this
        tenant is among those holding the backlog (see the module's docstring)."""
        over = self.over_limit()
        if not over:
            return
        brokers_over = {k: v for k, v in over.items() if k != "outbox"}
        held = self.queued(tenant) if tenant is not None else None
        if not brokers_over and held is not None and held <= self.fair_share():
            return
        raise Problem(
            503,
            "overloaded",
            "Overloaded",
            f"the processing queues are full ({', '.join(f'{k}: {v}' for k, v in over.items())}"
            f"; the limit is {self.breaking_depth})"
            + (
                f"; this tenant has {held} jobs waiting, more than its share ({self.fair_share()})"
                if held is not None and not brokers_over
                else ""
            )
            + "; retry later",
            headers={"Retry-After": str(self.retry_after_s)},
            depths=over,
            **(
                {"tenant_queued": held, "fair_share": self.fair_share()} if held is not None else {}
            ),
        )
