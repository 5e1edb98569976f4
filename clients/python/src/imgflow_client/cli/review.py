"""What `imgflow groups` and `imgflow stacks` share: reviewing a listing of image sets
(duplicate groups, similar stacks) and naming members to act on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar
from uuid import UUID

from imgflow_client.cli.common import EXIT_USAGE, fail

T = TypeVar("T")


async def first(items: AsyncIterator[T], limit: int | None) -> list[T]:
    """The first ``limit`` items (all of them without one). Stops reading at the limit,
    so no page beyond it is fetched."""
    taken: list[T] = []
    async for item in items:
        taken.append(item)
        if limit is not None and len(taken) >= limit:
            break
    return taken


def image_ids(values: tuple[str, ...]) -> list[UUID]:
    """The image ids given on the command line; one that is not a UUID is a usage error
    here, before anything is asked of the server."""
    ids = []
    for value in values:
        try:
            ids.append(UUID(value))
        except ValueError:
            fail(f"not an image id: {value!r}", EXIT_USAGE)
    return ids


def reason_words(reason: str) -> str:
    """A keeper's or pick's reason code (``most-pixels``) as words (``most pixels``)."""
    return reason.replace("-", " ")
