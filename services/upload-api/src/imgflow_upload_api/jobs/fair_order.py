"""The order in which the relay publishes waiting jobs: by kind of work first (every
``UPLOAD`` job before any ``BULK`` one), then across tenants in weighted turns.

The turns are start-time fair queueing (Goyal et al., 1996), the weighted form of round
robin that needs no fixed quantum: each (kind, tenant) lane carries a virtual finish
tag; the lane with the smallest tag sends next and moves its tag on by 1/weight. A lane
that was idle starts at the current virtual time, so idling earns no credit: a tenant
that uploads after an hour of silence is served in turn, not given an hour of catch-up.
The tags live in the relay process; only one relay publishes at a time (an advisory
lock), so a replica taking over starts with fresh tags, which costs at most one round of
exactness.

Plain functions over plain data: no database, no broker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

Row = TypeVar("Row")
Lane = tuple[str, Hashable]  # (kind, tenant)


@dataclass
class FairOrder:
    """Weighted fair turns across tenants, kept from one relay pass to the next."""

    kinds: Sequence[str]
    _finish: dict[Lane, float] = field(default_factory=dict)
    _now: dict[str, float] = field(default_factory=dict)

    def pick(
        self,
        lanes: Mapping[Lane, Sequence[Row]],
        weights: Mapping[Hashable, float],
        room: int,
        seq: Callable[[Row], int],
    ) -> list[Row]:
        """Up to ``room`` rows from ``lanes`` (each lane's rows oldest first), in the
        order to publish them. ``weights`` per tenant (missing: 1); ``seq`` orders rows
        by age, and breaks ties between lanes in favour of the older head."""
        picked: list[Row] = []
        for kind in self.kinds:
            if len(picked) >= room:
                break
            waiting = {
                lane: deque(rows) for lane, rows in lanes.items() if lane[0] == kind and rows
            }
            now = self._now.get(kind, 0.0)
            while waiting and len(picked) < room:
                start = {lane: max(self._finish.get(lane, 0.0), now) for lane in waiting}
                lane = min(waiting, key=lambda ln: (start[ln], seq(waiting[ln][0])))
                now = start[lane]
                self._finish[lane] = now + 1.0 / max(weights.get(lane[1], 1.0), 1e-9)
                picked.append(waiting[lane].popleft())
                if not waiting[lane]:
                    del waiting[lane]
            self._now[kind] = now
        self._forget_idle()
        return picked

    def _forget_idle(self) -> None:
        """Drop tags already behind their kind's virtual time: they would start at it
        anyway, and a tag per tenant ever seen would grow without bound."""
        for lane in [ln for ln, tag in self._finish.items() if tag <= self._now.get(ln[0], 0.0)]:
            del self._finish[lane]
