"""Following the API's cursor pages to the end: every listing (images, duplicate groups,
similar stacks) answers a page of items and the cursor of the next, None on the last."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Page(Protocol[T_co]):
    """ImagePage, DuplicateGroupPage, SimilarStackPage: what following them needs."""

    @property
    def items(self) -> Sequence[T_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


async def follow(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    """Every item of every page, ``fetch(cursor)`` asked for one page at a time (the first
    with None), and only as the items are read: a caller that stops early fetches no more."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
