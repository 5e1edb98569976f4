"""Which member of a duplicate group to keep: a suggestion, with its reasons.

Criteria, in order (the first that tells two images apart decides): most pixels; an
original format over a web re-encode (WebP, GIF, AVIF: what sites and messengers convert
photos to); the larger file (less compressed); the earliest capture time (the first
shot, not a later export); EXIF present. Then the earliest upload, then the least id, so
the suggestion is always one image, the same in any order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

RE_ENCODE_FORMATS = frozenset({"WEBP", "GIF", "AVIF"})


@dataclass(frozen=True)
class Candidate:
    id: UUID
    width: int | None
    height: int | None
    format: str | None
    byte_size: int
    captured_at: datetime | None
    has_exif: bool
    created_at: datetime


@dataclass(frozen=True)
class Suggestion:
    id: UUID
    reasons: tuple[str, ...]  # the criteria on which it beats some member, in order


def _pixels(c: Candidate) -> int:
    return (c.width or 0) * (c.height or 0)


def _original_format(c: Candidate) -> int:
    return 0 if c.format is None or c.format.upper() in RE_ENCODE_FORMATS else 1


def _early_capture(c: Candidate) -> float:
    # earlier is better; unknown is worst (naive times compared as they are: same camera)
    return -c.captured_at.timestamp() if c.captured_at is not None else float("-inf")


# (reason, how good: higher is better)
CRITERIA: tuple[tuple[str, Callable[[Candidate], float]], ...] = (
    ("most-pixels", _pixels),
    ("original-format", _original_format),
    ("largest-file", lambda c: c.byte_size),
    ("earliest-capture", _early_capture),
    ("has-exif", lambda c: int(c.has_exif)),
)


def suggest_keeper(members: Sequence[Candidate]) -> Suggestion | None:
    """The member to keep, and every criterion on which it is as good as each other
    member and better than some (the deciding one first); ``earliest-upload`` when the
    members' facts are all equal."""
    if not members:
        return None

    def key(c: Candidate) -> tuple[object, ...]:
        return (*(-score(c) for _, score in CRITERIA), c.created_at, c.id)

    best, *others = sorted(members, key=key)
    reasons = tuple(
        reason
        for reason, score in CRITERIA
        if all(score(best) >= score(c) for c in others)
        and any(score(best) > score(c) for c in others)
    )
    return Suggestion(best.id, reasons or ("earliest-upload",))
