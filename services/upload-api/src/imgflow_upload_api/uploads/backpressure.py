"""Refuse uploads while the system is past its breaking depth, instead of letting the
broker run out of memory (ADR-0012: breaking above 10,000 queued jobs).

Depths are read in the background, so an upload never waits on Redis to be admitted.
While the broker is unreachable its depths are unknown and uploads go on: the outbox
holds their jobs, and its own depth is limited the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from imgflow_upload_api.problems import Problem

log = logging.getLogger(__name__)


@dataclass
class Backpressure:
    breaking_depth: int
    retry_after_s: int = 30
    queue_depths: dict[str, int] = field(default_factory=dict)
    outbox_depth: int = 0
    updated_at: float = 0.0

    def update(self, queue_depths: dict[str, int] | None, outbox_depth: int | None) -> None:
        if queue_depths is not None:
            self.queue_depths = queue_depths
        if outbox_depth is not None:
            self.outbox_depth = outbox_depth
        self.updated_at = time.monotonic()

    def over_limit(self) -> dict[str, int]:
        """The queues (and the outbox) past the breaking depth, with their depths."""
        depths = {**self.queue_depths, "outbox": self.outbox_depth}
        return {name: n for name, n in depths.items() if n > self.breaking_depth}

    def admit(self) -> None:
        """Raise a 503 problem when any queue is past the breaking depth."""
        over = self.over_limit()
        if over:
            raise Problem(
                503,
                "overloaded",
                "Overloaded",
                f"the processing queues are full ({', '.join(f'{k}: {v}' for k, v in over.items())}"
                f"; the limit is {self.breaking_depth}); retry later",
                headers={"Retry-After": str(self.retry_after_s)},
                depths=over,
            )
