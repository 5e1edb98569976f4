"""The listings' queries keep their shape whatever the tenant's size (issue 27, listings).

asyncpg prepares every statement, and after five runs PostgreSQL may run a prepared
statement with a generic plan, one made without the parameters' values. These tests run
the API's own repository functions on the session's real PostgreSQL with
``plan_cache_mode = force_generic_plan`` and read the plans PostgreSQL ran (auto_explain,
sent to this client as notices): a page after a cursor must seek to the cursor's position
in the listing's index (an index condition, not a filter over every newer row, whose cost
grows with the depth and so with the tenant), and the groups page must read each listed
group's members once. No timing: plan shapes and row counts only.

The tables here are small, where PostgreSQL would rather scan them whole; in a large
tenant it takes the index (seen at 10k and 100k images), so sequential scans are turned
off to ask what the query allows, not what a small table costs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import pytest

from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.pool import connect
from imgflow_upload_api.duplicates import repository as duplicates
from imgflow_upload_api.images import repository as images
from imgflow_upload_api.paging import Cursor
from imgflow_upload_api.stacks import repository as stacks
from tests.support import db_runner

T = TypeVar("T")
GROUPS, MEMBERS = 300, 3
PAGE = 20


@pytest.fixture(scope="module")
def db(system: LocalSystem, database_url: str) -> Callable[..., Any]:
    return db_runner(database_url, connect)


@pytest.fixture(scope="module")
def tenant(db: Callable[..., Any]) -> UUID:
    """A tenant with GROUPS groups of MEMBERS images each (one a minute, in order), and
    one member of the first group being deleted (hidden: it neither counts nor shows)."""
    tenant_id = uuid4()
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, "plans")
        await conn.execute(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256,
                                   width, height, format, created_at)
               SELECT id, $1, 'originals/' || id, 'image/jpeg', 1000 + n,
                      md5(id::text) || md5(n::text), 4000, 3000, 'JPEG',
                      $2::timestamptz + n * interval '1 minute'
                 FROM (SELECT gen_random_uuid() AS id, n
                         FROM generate_series(1, $3::int) AS n) AS s""",
            tenant_id,
            start,
            GROUPS * MEMBERS,
        )
        await conn.execute(
            """INSERT INTO image_stages (image_id, stage, status)
               SELECT i.id, s.stage, 'done' FROM images AS i,
                      unnest(ARRAY['thumbnails', 'hashing', 'dedupe']) AS s(stage)
                WHERE i.tenant_id = $1""",
            tenant_id,
        )
        await conn.execute(
            """WITH numbered AS (
                   SELECT id, (row_number() OVER (ORDER BY created_at) - 1) / $2 AS k
                     FROM images WHERE tenant_id = $1),
               groups AS (
                   INSERT INTO duplicate_groups (id, tenant_id, version, created_at, updated_at)
                   SELECT gen_random_uuid(), $1, 1, $3::timestamptz,
                          $3::timestamptz + k * interval '1 minute'
                     FROM generate_series(0, $4::int - 1) AS k
                   RETURNING id, updated_at)
               INSERT INTO duplicate_group_members (image_id, group_id)
               SELECT n.id, g.id FROM numbered AS n JOIN groups AS g
                   ON g.updated_at = $3::timestamptz + n.k * interval '1 minute'""",
            tenant_id,
            MEMBERS,
            start,
            GROUPS,
        )
        await conn.execute(
            """UPDATE images SET deleting_since = now() WHERE id = (
                   SELECT m.image_id FROM duplicate_group_members AS m
                     JOIN duplicate_groups AS g ON g.id = m.group_id
                     JOIN images AS i ON i.id = m.image_id
                    WHERE g.tenant_id = $1
                    ORDER BY g.updated_at, i.created_at LIMIT 1)""",
            tenant_id,
        )
        await conn.execute(
            "ANALYZE images, image_stages, duplicate_groups, duplicate_group_members"
        )

    db(seed)
    return tenant_id


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _generic_plans(
    conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> tuple[T, list[dict[str, Any]]]:
    """``work``'s result and the plans of the statements it ran, each planned generic."""
    notices: list[str] = []
    conn.add_log_listener(lambda _conn, message: notices.append(message.message))
    await conn.execute("LOAD 'auto_explain'")
    for setting, value in (
        ("auto_explain.log_min_duration", "0"),
        ("auto_explain.log_analyze", "on"),
        ("auto_explain.log_timing", "off"),
        ("auto_explain.log_format", "json"),
        ("auto_explain.log_level", "notice"),
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
    ):
        await conn.execute(f"SET {setting} = '{value}'")
    result = await work(conn)
    await conn.execute("RESET ALL")
    plans = [
        json.loads(text[text.index("{") :])["Plan"] for text in notices if "plan:" in text[:40]
    ]
    return result, plans


def _scans(plans: list[dict[str, Any]], relation: str) -> list[dict[str, Any]]:
    return [
        node for plan in plans for node in _nodes(plan) if node.get("Relation Name") == relation
    ]


def _middle_group(db: Callable[..., Any], tenant: UUID) -> tuple[datetime, UUID]:
    async def fetch(conn: asyncpg.Connection) -> asyncpg.Record:
        return await conn.fetchrow(
            """SELECT updated_at, id FROM duplicate_groups WHERE tenant_id = $1
                ORDER BY updated_at DESC, id DESC OFFSET $2 LIMIT 1""",
            tenant,
            GROUPS // 2,
        )

    row = db(fetch)
    return row["updated_at"], row["id"]


def test_a_deep_groups_page_seeks_to_its_cursor_under_a_generic_plan(
    db: Callable[..., Any], tenant: UUID
) -> None:
    position = _middle_group(db, tenant)

    async def page(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        # six runs: the plan cache's own switch comes after five
        for _ in range(5):
            await duplicates.group_page(conn, tenant, position, PAGE)
        return await duplicates.group_page(conn, tenant, position, PAGE)

    rows, plans = db(lambda conn: _generic_plans(conn, page))
    assert [r["updated_at"] for r in rows] == sorted((r["updated_at"] for r in rows), reverse=True)
    assert len(rows) == PAGE and all(r["updated_at"] < position[0] for r in rows)
    (last,) = _scans(plans[-1:], "duplicate_groups")
    assert "Index" in last["Node Type"], last
    # the position is where the index search starts, not a filter over the newer groups
    assert "updated_at" in last["Index Cond"], last
    assert last.get("Rows Removed by Filter", 0) == 0, last
    assert last["Actual Rows"] == PAGE, last


def test_the_groups_page_reads_each_listed_groups_members_once(
    db: Callable[..., Any], tenant: UUID
) -> None:
    position = _middle_group(db, tenant)
    _, plans = db(
        lambda conn: _generic_plans(
            conn, lambda c: duplicates.group_page(c, tenant, position, PAGE)
        )
    )
    (groups,) = _scans(plans, "duplicate_groups")
    member_reads = sum(n["Actual Loops"] for n in _scans(plans, "duplicate_group_members"))
    assert member_reads == groups["Actual Rows"] == PAGE


def test_the_groups_page_counts_and_shows_only_visible_members(
    db: Callable[..., Any], tenant: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def everything(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        return await duplicates.group_page(conn, tenant, None, GROUPS + 1)

    rows = db(everything)
    assert len(rows) == GROUPS
    oldest = rows[-1]  # the group one of whose members is being deleted
    assert oldest["size"] == MEMBERS - 1 == len(oldest["candidates"])
    assert all(r["size"] == MEMBERS == len(r["candidates"]) for r in rows[:-1])
    first = rows[0]["candidates"]
    assert [c["created_at"] for c in first] == sorted(c["created_at"] for c in first)
    assert set(first[0]) == {
        "id",
        "width",
        "height",
        "format",
        "byte_size",
        "captured_at",
        "has_exif",
        "created_at",
    }
    # a group larger than MAX_GROUP: its size is every visible member, its candidates
    # the earliest MAX_GROUP of them
    monkeypatch.setattr(duplicates, "MAX_GROUP", 2)
    (cut,) = db(lambda conn: duplicates.group_page(conn, tenant, None, 1))
    assert cut["size"] == MEMBERS
    assert [c["id"] for c in cut["candidates"]] == [c["id"] for c in first[:2]]


@pytest.fixture(scope="module")
def stacked(db: Callable[..., Any], tenant: UUID) -> UUID:
    """The tenant's groups mirrored as similar stacks (same ids, times and members),
    every other one resolved."""

    async def seed(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO similar_stacks (id, tenant_id, created_at, updated_at, resolved_at)
               SELECT id, tenant_id, created_at, updated_at,
                      CASE WHEN row_number() OVER (ORDER BY updated_at) % 2 = 0
                           THEN updated_at END
                 FROM duplicate_groups WHERE tenant_id = $1""",
            tenant,
        )
        await conn.execute(
            """INSERT INTO similar_stack_members (image_id, stack_id)
               SELECT m.image_id, m.group_id FROM duplicate_group_members AS m
                 JOIN duplicate_groups AS g ON g.id = m.group_id WHERE g.tenant_id = $1""",
            tenant,
        )
        await conn.execute("ANALYZE similar_stacks, similar_stack_members")

    db(seed)
    return tenant


@pytest.mark.parametrize("resolved", [None, True, False])
def test_a_deep_stacks_page_seeks_to_its_cursor_under_a_generic_plan(
    db: Callable[..., Any], stacked: UUID, resolved: bool | None
) -> None:
    position = _middle_group(db, stacked)  # a stack's position: the stacks mirror the groups

    async def page(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        for _ in range(5):  # the plan cache's own switch comes after five runs
            await stacks.stack_page(conn, stacked, position, PAGE, resolved)
        return await stacks.stack_page(conn, stacked, position, PAGE, resolved)

    rows, plans = db(lambda conn: _generic_plans(conn, page))
    assert len(rows) == PAGE and all(r["updated_at"] < position[0] for r in rows)
    assert [r["updated_at"] for r in rows] == sorted((r["updated_at"] for r in rows), reverse=True)
    if resolved is not None:
        assert all((r["resolved_at"] is not None) == resolved for r in rows)
    assert all(r["size"] == MEMBERS == len(r["frames"]) for r in rows)
    (last,) = _scans(plans[-1:], "similar_stacks")
    assert "Index" in last["Node Type"], last
    assert "updated_at" in last["Index Cond"], last
    # one read of each listed stack's members (size and frames in one pass)
    member_reads = sum(n["Actual Loops"] for n in _scans(plans[-1:], "similar_stack_members"))
    assert member_reads == last["Actual Rows"]
    if resolved is None:  # the filter, when asked, removes what it must and no more
        assert last.get("Rows Removed by Filter", 0) == 0, last


def test_a_deep_images_page_seeks_to_its_cursor_under_a_generic_plan(
    db: Callable[..., Any], tenant: UUID
) -> None:
    async def middle(conn: asyncpg.Connection) -> asyncpg.Record:
        return await conn.fetchrow(
            """SELECT created_at, id FROM images WHERE tenant_id = $1
                ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1""",
            tenant,
            GROUPS * MEMBERS // 2,
        )

    row = db(middle)
    cursor = Cursor(row["created_at"], row["id"])

    async def page(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        for _ in range(6):  # the plan cache's own switch comes after five runs
            rows = await images.fetch_page(
                conn,
                tenant,
                after=cursor,
                status=None,
                created_after=None,
                created_before=None,
                limit=PAGE,
            )
        return rows

    rows, plans = db(lambda conn: _generic_plans(conn, page))
    assert len(rows) == PAGE and all(r["created_at"] < cursor.at for r in rows)
    assert rows[0]["created_at"] == cursor.at - timedelta(minutes=1)
    (last,) = _scans(plans[-1:], "images")
    assert "Index" in last["Node Type"], last
    assert "created_at" in last["Index Cond"], last
    assert last["Actual Rows"] == PAGE, last


def test_a_status_filter_starts_from_the_stages_not_done(
    db: Callable[..., Any], tenant: UUID
) -> None:
    """failed / processing: read from the few stages not done (migration 0024), not by
    walking the tenant's images and computing each one's status."""

    async def mark(conn: asyncpg.Connection) -> list[UUID]:
        ids = [
            r["id"]
            for r in await conn.fetch(
                """SELECT id FROM images WHERE tenant_id = $1 AND deleting_since IS NULL
                    ORDER BY created_at OFFSET 100 LIMIT 3""",
                tenant,
            )
        ]
        await conn.execute(
            """UPDATE image_stages SET status = 'failed'
                WHERE image_id = ANY($1::uuid[]) AND stage = 'hashing'""",
            ids[:2],
        )
        await conn.execute(
            "UPDATE image_stages SET status = 'running' WHERE image_id = $1 AND stage = 'dedupe'",
            ids[2],
        )
        await conn.execute("ANALYZE image_stages")
        return ids

    async def unmark(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE image_stages SET status = 'done' WHERE image_id = ANY($1::uuid[])", ids
        )

    async def not_done(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT count(*) FROM image_stages WHERE status <> 'done'"))

    ids = db(mark)
    try:
        for status, expected in (("failed", ids[1::-1]), ("processing", ids[2:])):

            async def page(conn: asyncpg.Connection, status: str = status) -> list[dict[str, Any]]:
                for _ in range(6):
                    rows = await images.fetch_page(
                        conn,
                        tenant,
                        after=None,
                        status=status,
                        created_after=None,
                        created_before=None,
                        limit=PAGE,
                    )
                return rows

            rows, plans = db(lambda conn, page=page: _generic_plans(conn, page))
            assert [r["id"] for r in rows] == expected
            assert all(r["status"] == status for r in rows)
            last = plans[-1]
            indexes = {n.get("Index Name") for n in _nodes(last)}
            assert "image_stages_not_done" in indexes, indexes
            # images read: those with a stage not done (any tenant's), by their ids, not
            # the tenant's 900 walked (whose rows would be output, or removed by a filter)
            scans = _scans([last], "images")
            assert all(
                "id = ANY" in n.get("Index Cond", "") + n.get("Recheck Cond", "") for n in scans
            ), scans
            read = sum(
                (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
                for n in scans
            )
            assert read <= db(not_done), read
    finally:
        db(unmark)
