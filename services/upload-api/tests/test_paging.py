"""Keyset pages: a cursor reads back as its position, only for its tenant and listing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from starlette.requests import Request
from starlette.responses import Response

from imgflow_upload_api.paging import Cursor, Listing, after, page
from imgflow_upload_api.problems import Problem

TENANT = uuid4()
AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def _request() -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/v1/images",
            "query_string": b"limit=2",
            "headers": [(b"host", b"api.test")],
            "scheme": "https",
            "server": ("api.test", 443),
        }
    )


def _page(rows: list[dict[str, Any]], response: Response) -> tuple[list[Any], str | None]:
    keyset = ("created_at", "id")
    request = _request()
    return page(rows, 2, keyset=keyset, listing=Listing.IMAGES, tenant_id=TENANT,
                request=request, response=response)  # fmt: skip


def _refused(token: str, listing: Listing, tenant=TENANT) -> Problem:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as refused:
        Cursor.decode(token, tenant, listing)
    assert refused.value.status == 400 and refused.value.code == "bad-cursor"
    return refused.value


@pytest.mark.parametrize("listing", list(Listing))
def test_a_cursor_reads_back_for_its_tenant_and_listing(listing: Listing) -> None:
    cursor = Cursor(AT, uuid4())
    assert Cursor.decode(cursor.encode(TENANT, listing), TENANT, listing) == cursor
    _refused(cursor.encode(TENANT, listing), listing, tenant=uuid4())


def test_a_cursor_of_the_other_listing_is_a_400_that_says_so() -> None:
    images = Cursor(AT, uuid4()).encode(TENANT, Listing.IMAGES)
    groups = Cursor(AT, uuid4()).encode(TENANT, Listing.DUPLICATE_GROUPS)
    assert "/v1/images" in _refused(images, Listing.DUPLICATE_GROUPS).detail
    assert "/v1/duplicate-groups" in _refused(groups, Listing.IMAGES).detail
    assert after(None, TENANT, Listing.IMAGES) is None


def test_a_page_of_limit_plus_one_rows_has_a_next_cursor_and_link() -> None:
    rows = [{"created_at": AT, "id": uuid4()} for _ in range(3)]
    response = Response()
    shown, cursor = _page(rows, response)
    assert shown == rows[:2] and cursor is not None
    assert Cursor.decode(cursor, TENANT, Listing.IMAGES) == Cursor(AT, rows[1]["id"])
    assert response.headers["link"] == (
        f'<https://api.test/v1/images?limit=2&cursor={cursor}>; rel="next"'
    )
    last = Response()
    assert _page(rows[:2], last) == (rows[:2], None)
    assert "link" not in last.headers
