"""The stacks' upkeep against the session's real PostgreSQL: the deduper's check stores
the stacks (ids carried, versions, events), a trash or a delete changes a stack at once
and the background pass restacks what is left, a dismissal keeps images apart.

Embeddings are synthetic and the geometric evidence is given per pair, as in
test_dedupe_repository.py; the pixels' side is tested end to end in
test_similar_stacks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from imgflow_deduper.checks import check_image
from imgflow_deduper.overlap import Overlap
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.similar_stacks import only_stacks, restack_around, restack_dirty
from imgflow_runtime.grouping import Regrouped
from imgflow_runtime.stacking import restack
from tests.support import db_runner
from tests.test_dedupe_repository import GEOMETRY_POLICY, near, new_image, random_vector

COPY = Overlap(120, 0.95, 1.0, mirrored=False)
FRAME = Overlap(90, 0.45, 0.9, mirrored=False)  # shares part of the frame: similar


@pytest.fixture(scope="module")
def db(system: LocalSystem, database_url: str) -> Callable[..., Any]:
    return db_runner(database_url)


class Scene:
    """Images with synthetic vectors around one direction, and the evidence per pair."""

    def __init__(self, db: Callable[..., Any]) -> None:
        self.db = db
        self.v = random_vector()
        self.evidence: dict[frozenset[UUID], Overlap] = {}

    def probe(self, a: UUID, b: UUID) -> Overlap | None:
        return self.evidence.get(frozenset((a, b)), Overlap(0, 0.0, float("nan"), False, 500))

    def add(self, vector: np.ndarray, **relations: list[UUID]) -> UUID:
        image = new_image(self.db)
        for kind, others in relations.items():
            for other in others:
                self.evidence[frozenset((image, other))] = COPY if kind == "copy_of" else FRAME
        self.db(check_image, image, vector, GEOMETRY_POLICY, None, self.probe)
        return image


def stack_rows(db: Callable[..., Any], images: list[UUID]) -> dict[UUID, UUID]:
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT image_id, stack_id FROM similar_stack_members WHERE image_id = ANY($1)",
            images,
        )

    return {r["image_id"]: r["stack_id"] for r in db(fetch)}


def stack(db: Callable[..., Any], stack_id: UUID) -> dict[str, Any] | None:
    async def fetch(conn: asyncpg.Connection) -> asyncpg.Record | None:
        return await conn.fetchrow("SELECT * FROM similar_stacks WHERE id = $1", stack_id)

    row = db(fetch)
    return None if row is None else dict(row)


def events(db: Callable[..., Any], stack_id: UUID) -> list[tuple[str, int]]:
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT type, group_version FROM image_events WHERE stack_id = $1 ORDER BY id",
            stack_id,
        )

    return [(r["type"], r["group_version"]) for r in db(fetch)]


def execute(db: Callable[..., Any], sql: str, *args: Any) -> None:
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute(sql, *args)

    db(run)


def test_a_copy_alone_makes_no_stack_and_another_frame_makes_one(
    db: Callable[..., Any],
) -> None:
    scene = Scene(db)
    photo = scene.add(scene.v)
    copy = scene.add(near(scene.v, 0.97), copy_of=[photo])
    assert stack_rows(db, [photo, copy]) == {}  # one duplicate group is no stack

    frame = scene.add(near(scene.v, 0.90), frame_of=[photo, copy])
    rows = stack_rows(db, [photo, copy, frame])
    assert set(rows) == {photo, copy, frame} and len(set(rows.values())) == 1
    stack_id = rows[photo]
    assert stack(db, stack_id)["version"] == 1  # type: ignore[index]
    assert events(db, stack_id) == [("similar_stack.updated", 1)]

    # a later frame of the burst, like the first only: the stack keeps its id
    later = scene.add(near(scene.v, 0.88), frame_of=[frame])
    assert stack_rows(db, [photo, copy, frame, later]) == dict.fromkeys(
        (photo, copy, frame, later), stack_id
    )
    assert stack(db, stack_id)["version"] == 2  # type: ignore[index]
    assert events(db, stack_id)[-1] == ("similar_stack.updated", 2)


def test_a_trashed_member_leaves_at_once_and_the_rest_is_restacked(
    db: Callable[..., Any],
) -> None:
    scene = Scene(db)
    photo = scene.add(scene.v)
    frame = scene.add(near(scene.v, 0.90), frame_of=[photo])
    later = scene.add(near(scene.v, 0.88), frame_of=[photo, frame])
    stack_id = stack_rows(db, [photo])[photo]
    version = stack(db, stack_id)["version"]  # type: ignore[index]

    # in one transaction, so the API's background pass cannot restack in between
    async def trash_then_delete(conn: asyncpg.Connection) -> tuple[Any, ...]:
        async with conn.transaction():
            await conn.execute("UPDATE images SET trashed_at = now() WHERE id = $1", later)
            members = await conn.fetch(
                "SELECT image_id FROM similar_stack_members WHERE stack_id = $1", stack_id
            )
            flagged = await conn.fetchrow(
                "SELECT dirty, version FROM similar_stacks WHERE id = $1", stack_id
            )
            await conn.execute("DELETE FROM images WHERE id = $1", frame)
            deleted = await conn.fetchval(
                "SELECT version FROM similar_stacks WHERE id = $1", stack_id
            )
        return {r["image_id"] for r in members}, dict(flagged), deleted

    members, flagged, after_delete = db(trash_then_delete)
    # a trashed member leaves at once: a new version, flagged for the pass
    assert members == {photo, frame}
    assert flagged == {"dirty": True, "version": version + 1}
    assert after_delete == version + 2
    assert ("similar_stack.updated", version + 1) in events(db, stack_id)

    # one image is left: no stack once the pass has run (this one, or the API's)
    while db(restack_dirty, 50):
        pass
    assert stack(db, stack_id) is None
    assert stack_rows(db, [photo]) == {}
    assert events(db, stack_id)[-1] == ("similar_stack.deleted", version + 2)


def test_dismissed_images_are_never_stacked_together_again(
    db: Callable[..., Any],
) -> None:
    scene = Scene(db)
    photo = scene.add(scene.v)
    frame = scene.add(near(scene.v, 0.90), frame_of=[photo])
    stack_id = stack_rows(db, [photo])[photo]
    low, high = sorted((photo, frame))

    async def dismiss_and_restack(conn: asyncpg.Connection) -> None:
        tenant = await conn.fetchval("SELECT tenant_id FROM images WHERE id = $1", photo)
        await conn.execute(
            "INSERT INTO similar_dismissals (image_a, image_b, tenant_id) VALUES ($1, $2, $3)",
            low,
            high,
            tenant,
        )
        await restack_around(conn, tenant, [photo])

    db(dismiss_and_restack)
    assert stack(db, stack_id) is None
    scene.db(check_image, frame, near(scene.v, 0.90), GEOMETRY_POLICY, None, scene.probe)
    assert stack_rows(db, [photo, frame]) == {}


def test_a_stored_stack_that_is_now_one_group_is_retired() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()
    units = {a: a, b: b, c: a}  # c is a copy of a: their group's unit is a's
    stored = uuid4()
    result: Regrouped[UUID, UUID] = restack([(a, c)], {stored: frozenset({a, b, c})})
    assert result.kept == {stored: frozenset({a, c})}
    kept = only_stacks(result, units)
    assert kept.kept == {} and kept.retired == {stored}
    fresh = only_stacks(restack([(a, b), (a, c)], {}), units)
    assert fresh.new == (frozenset({a, b, c}),)
