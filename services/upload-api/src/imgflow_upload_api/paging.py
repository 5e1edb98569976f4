"""Keyset pages, the step every listing shares (images, duplicate groups, similar
stacks); the groups' and the stacks' page query is image_set_pages.py.

A listing fetches one row more than asked: if it came, there is a next page, whose cursor
is the position (a timestamp and an id, the listing's keyset order) of the page's last
row, and whose URL goes in a ``Link: rel="next"`` header.

Cursors are opaque to clients: base64url of JSON with a check digest over the position,
the tenant and the listing, so a garbled, truncated or edited cursor, one of another
tenant, or one of another listing is refused (400) rather than read as a position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query, Request, Response

from imgflow_upload_api.problems import Problem

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
CursorParam = Annotated[
    str | None, Query(description="`next_cursor` of the previous page.", max_length=512)
]


class Listing(StrEnum):
    IMAGES = "images"
    DUPLICATE_GROUPS = "duplicate-groups"
    SIMILAR_STACKS = "similar-stacks"


@dataclass(frozen=True)
class Cursor:
    """The position after the last row of a page: its keyset (at, id)."""

    at: datetime
    id: UUID

    def encode(self, tenant_id: UUID, listing: Listing) -> str:
        position = [self.at.isoformat(), str(self.id)]
        check = _check(tenant_id, listing, position)
        raw = json.dumps({"p": position, "c": check}).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str, tenant_id: UUID, listing: Listing) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            position, check = data["p"], data["c"]
            if check != _check(tenant_id, listing, position):
                raise _foreign(tenant_id, listing, position, check)
            at = datetime.fromisoformat(position[0])
            if at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(at, UUID(position[1]))
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError):
            raise _bad_cursor(
                "the cursor is not one this API issued; start again without it"
            ) from None


def _check(tenant_id: UUID, listing: Listing, position: list[str]) -> str:
    # The images' cursors had no listing in their digest: theirs still has none, so a
    # cursor a client holds across an upgrade still works.
    scope = "" if listing is Listing.IMAGES else f"{listing}|"
    digest = hashlib.sha256(f"{scope}{tenant_id}|{position[0]}|{position[1]}".encode())
    return digest.hexdigest()[:16]


def _bad_cursor(detail: str) -> Problem:
    return Problem(400, "bad-cursor", "Bad cursor", detail)


def _foreign(tenant_id: UUID, listing: Listing, position: list[str], check: str) -> Exception:
    """A clear problem for a cursor of another listing; a ValueError otherwise."""
    for other in Listing:
        if other is not listing and check == _check(tenant_id, other, position):
            return _bad_cursor(
                f"the cursor pages /v1/{other}, not /v1/{listing}; start again without it"
            )
    return ValueError("check digest mismatch")


def after(cursor: str | None, tenant_id: UUID, listing: Listing) -> Cursor | None:
    """The position a page starts after (None: the first page)."""
    return None if cursor is None else Cursor.decode(cursor, tenant_id, listing)


def page(
    rows: Sequence[dict[str, Any]],
    limit: int,
    *,
    keyset: tuple[str, str],
    listing: Listing,
    tenant_id: UUID,
    request: Request,
    response: Response,
) -> tuple[list[dict[str, Any]], str | None]:
    """The page of ``rows`` (fetched with ``limit + 1``) and the next page's cursor, which
    also goes in the response's Link header. ``keyset``: the rows' (timestamp, id) keys."""
    shown = list(rows[:limit])
    if len(rows) <= limit:
        return shown, None
    last = shown[-1]
    cursor = Cursor(last[keyset[0]], last[keyset[1]]).encode(tenant_id, listing)
    response.headers["Link"] = f'<{request.url.include_query_params(cursor=cursor)}>; rel="next"'
    return shown, cursor
