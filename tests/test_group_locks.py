"""Duplicate-group upkeep locks images, not the tenant (issue 27, bottleneck 2).

Against the session's real PostgreSQL, two connections: one holds a regrouping's locks
in an open transaction (``lock_group_images``, as ``regroup_around`` takes them), the
other regroups. Into another component of the same tenant it goes ahead while the first
still holds its locks; into the same component it waits for them (seen in
pg_stat_activity: waiting on an advisory lock) and then regroups what the first
committed; a resolve's tenant lock still holds every regrouping of the tenant back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from imgflow_runtime.db import duplicate_groups
from imgflow_runtime.db.duplicate_groups import (
    lock_group_images,
    lock_tenant_groups,
    regroup_around,
)
from tests.test_dedupe_repository import db  # noqa: F401
from tests.test_duplicate_groups import group_of, new_image, new_tenant

Db = Callable[..., Any]


async def _pair(conn: asyncpg.Connection, tenant: UUID, x: UUID, y: UUID) -> None:
    a, b = sorted((x, y))
    await conn.execute(
        """INSERT INTO duplicate_pairs (image_a, image_b, tenant_id, method, score)
           VALUES ($1, $2, $3, 'cnn', 0.99)""",
        a,
        b,
        tenant,
    )


async def _waits_on_a_lock(watcher: asyncpg.Connection, pid: int) -> bool:
    state = await watcher.fetchval(
        "SELECT wait_event_type = 'Lock' AND wait_event = 'advisory'"
        " FROM pg_stat_activity WHERE pid = $1",
        pid,
    )
    return bool(state)


async def _until(done: asyncio.Task[Any], watcher: asyncpg.Connection, pid: int) -> str:
    """Whichever comes first: the regrouping finished, or it waits on a lock."""
    while True:
        if done.done():
            return "finished"
        if await _waits_on_a_lock(watcher, pid):
            return "waiting"
        await asyncio.sleep(0.01)  # polling the two events above


def _two_connections(database_url: str, body: Callable[..., Awaitable[None]]) -> None:
    async def go() -> None:
        holder, other, watcher = [await asyncpg.connect(database_url) for _ in range(3)]
        try:
            await body(holder, other, watcher)
        finally:
            for conn in (holder, other, watcher):
                await conn.close()

    asyncio.run(go())


def test_different_components_of_one_tenant_regroup_in_parallel(
    db: Db,  # noqa: F811
    database_url: str,
) -> None:
    tenant = new_tenant(db)
    a1, a2, b1, b2 = (new_image(db, tenant) for _ in range(4))

    async def body(holder: asyncpg.Connection, other: asyncpg.Connection, watcher: Any) -> None:
        await _pair(holder, tenant, a1, a2)
        await _pair(holder, tenant, b1, b2)
        async with holder.transaction():
            await lock_group_images(holder, tenant, {a1, a2})  # a regrouping of A, in flight
            task = asyncio.create_task(regroup_around(other, tenant, [b1]))
            assert await _until(task, watcher, other.get_server_pid()) == "finished"
            await task

    _two_connections(database_url, body)
    group = group_of(db, b1)
    assert group is not None and group["members"] == {b1, b2}


def test_one_component_waits_then_regroups_what_the_first_committed(
    db: Db,  # noqa: F811
    database_url: str,
) -> None:
    tenant = new_tenant(db)
    a1, a2, a3 = (new_image(db, tenant) for _ in range(3))

    async def body(holder: asyncpg.Connection, other: asyncpg.Connection, watcher: Any) -> None:
        await _pair(holder, tenant, a1, a2)
        async with holder.transaction():
            await lock_group_images(holder, tenant, {a1, a2})
            task = asyncio.create_task(regroup_around(other, tenant, [a1]))
            assert await _until(task, watcher, other.get_server_pid()) == "waiting"
            # The first adds a pair to the component while the second waits on it.
            await _pair(holder, tenant, a2, a3)
        await task  # read under the locks, after the commit: it sees the new pair

    _two_connections(database_url, body)
    group = group_of(db, a1)
    assert group is not None and group["members"] == {a1, a2, a3}
    assert group_of(db, a3) == group


def test_a_resolve_holds_back_every_regrouping_of_its_tenant(
    db: Db,  # noqa: F811
    database_url: str,
) -> None:
    tenant = new_tenant(db)
    b1, b2 = (new_image(db, tenant) for _ in range(2))

    async def body(holder: asyncpg.Connection, other: asyncpg.Connection, watcher: Any) -> None:
        await _pair(holder, tenant, b1, b2)
        async with holder.transaction():
            await lock_tenant_groups(holder, tenant)  # as a resolve does
            task = asyncio.create_task(regroup_around(other, tenant, [b1]))
            assert await _until(task, watcher, other.get_server_pid()) == "waiting"
        await task

    _two_connections(database_url, body)
    group = group_of(db, b1)
    assert group is not None and group["members"] == {b1, b2}


def test_the_fallback_takes_the_tenant_and_waits_for_regroupings_in_flight(
    db: Db,  # noqa: F811
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A regrouping whose set kept growing falls back to the tenant's lock (here at once):
    it waits for every regrouping of the tenant in flight, even in another component."""
    monkeypatch.setattr(duplicate_groups, "_LOCK_ATTEMPTS", 0)
    tenant = new_tenant(db)
    a1, a2, b1, b2 = (new_image(db, tenant) for _ in range(4))

    async def body(holder: asyncpg.Connection, other: asyncpg.Connection, watcher: Any) -> None:
        await _pair(holder, tenant, a1, a2)
        await _pair(holder, tenant, b1, b2)
        async with holder.transaction():
            await lock_group_images(holder, tenant, {a1, a2})
            task = asyncio.create_task(regroup_around(other, tenant, [b1]))
            assert await _until(task, watcher, other.get_server_pid()) == "waiting"
        await task

    _two_connections(database_url, body)
    group = group_of(db, b1)
    assert group is not None and group["members"] == {b1, b2}
