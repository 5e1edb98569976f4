"""Which image of a similar stack to keep: a suggestion, with its reasons.

The frames of a burst or the crops of one scene are different pictures, so the pick is
the best *photo*, not the best copy: the sharpest (the Laplacian's variance the deduper
measured on the analysis copy: blur and camera shake lower it), then the largest (most
pixels), then the one with the most metadata (capture time, camera, orientation, GPS).
Then the earliest upload, then the least id, so the suggestion is one image, the same in
any order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class Frame:
    id: UUID
    sharpness: float | None  # unknown (not measured yet) is worst
    width: int | None
    height: int | None
    metadata: int  # how many of the metadata fields are present
    created_at: datetime


@dataclass(frozen=True)
class Pick:
    id: UUID
    reasons: tuple[str, ...]  # the criteria on which it beats some member, in order


# (reason, how good: higher is better)
CRITERIA: tuple[tuple[str, Callable[[Frame], float]], ...] = (
    ("sharpest", lambda f: f.sharpness if f.sharpness is not None else float("-inf")),
    ("largest", lambda f: (f.width or 0) * (f.height or 0)),
    ("most-metadata", lambda f: f.metadata),
)


def suggest_pick(frames: Sequence[Frame]) -> Pick | None:
    """The frame to keep, and every criterion on which it is as good as each other frame
    and better than some (the deciding one first); ``earliest-upload`` when all tie."""
    if not frames:
        return None

    def key(f: Frame) -> tuple[object, ...]:
        return (*(-score(f) for _, score in CRITERIA), f.created_at, f.id)

    best, *others = sorted(frames, key=key)
    reasons = tuple(
        reason
        for reason, score in CRITERIA
        if all(score(best) >= score(f) for f in others)
        and any(score(best) > score(f) for f in others)
    )
    return Pick(best.id, reasons or ("earliest-upload",))
