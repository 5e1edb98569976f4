"""The deduper keeps stored groups: ids, versions, events, on checks, reprocesses, deletes.

Synthetic unit vectors against the session's real PostgreSQL (as test_dedupe_repository.py),
so each pair is known in advance; real photographs go through the whole system in
test_duplicate_groups_e2e.py.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np

from imgflow_deduper.checks import check_image
from imgflow_runtime.db.duplicate_groups import regroup_dirty
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from imgflow_runtime.grouping import Pair, Rule, group
from tests.test_dedupe_repository import POLICY, db, near, random_vector  # noqa: F401

Db = Callable[..., Any]


def new_tenant(db: Db) -> UUID:  # noqa: F811
    tenant = uuid4()

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))

    db(insert)
    return tenant


def new_image(db: Db, tenant: UUID = DEFAULT_TENANT_ID) -> UUID:  # noqa: F811
    image_id = uuid4()

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
               VALUES ($1, $2, $3, 'image/jpeg', 1000, $4)""",
            image_id,
            tenant,
            f"originals/{image_id}",
            secrets.token_hex(32),
        )

    db(insert)
    return image_id


def group_of(db: Db, image_id: UUID) -> dict[str, Any] | None:  # noqa: F811
    """The stored group holding ``image_id``: id, version, dirty, members."""

    async def fetch(conn: asyncpg.Connection) -> asyncpg.Record | None:
        return await conn.fetchrow(
            """SELECT g.id, g.version, g.dirty,
                      (SELECT array_agg(image_id) FROM duplicate_group_members
                        WHERE group_id = g.id) AS members
                 FROM duplicate_group_members AS m JOIN duplicate_groups AS g
                   ON g.id = m.group_id WHERE m.image_id = $1""",
            image_id,
        )

    row = db(fetch)
    return None if row is None else {**dict(row), "members": set(row["members"] or [])}


def group_events(db: Db, group_id: UUID) -> list[tuple[str, int]]:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT type, group_version FROM image_events WHERE group_id = $1 ORDER BY id",
            group_id,
        )

    return [(r["type"], r["group_version"]) for r in db(fetch)]


def delete_image(db: Db, image_id: UUID) -> None:  # noqa: F811
    async def delete(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM images WHERE id = $1", image_id)

    db(delete)


def three_copies(db: Db) -> tuple[list[UUID], np.ndarray]:  # noqa: F811
    """Three images, each checked in turn, the later two near duplicates of the first."""
    v = random_vector()
    images = [new_image(db) for _ in range(3)]
    db(check_image, images[0], v, POLICY)
    db(check_image, images[1], near(v, 0.97), POLICY)
    db(check_image, images[2], near(v, 0.96), POLICY)
    return images, v


def test_copies_joining_keep_the_group_id_and_bump_its_version(db: Db) -> None:  # noqa: F811
    v = random_vector()
    a, b, c = (new_image(db) for _ in range(3))
    db(check_image, a, v, POLICY)
    assert group_of(db, a) is None  # alone: no group

    db(check_image, b, near(v, 0.97), POLICY)
    first = group_of(db, a)
    assert first is not None and first["members"] == {a, b} and first["version"] == 1

    db(check_image, c, near(v, 0.96), POLICY)
    second = group_of(db, c)
    assert second is not None and second["id"] == first["id"]
    assert second["members"] == {a, b, c} and second["version"] == 2
    assert group_events(db, first["id"]) == [
        ("duplicate_group.updated", 1),
        ("duplicate_group.updated", 2),
    ]


def test_checking_an_image_again_changes_nothing(db: Db) -> None:  # noqa: F811
    (a, _, _), v = three_copies(db)
    before = group_of(db, a)
    db(check_image, a, v, POLICY)
    assert group_of(db, a) == before


def test_a_reprocessed_image_that_no_longer_matches_leaves_its_group(db: Db) -> None:  # noqa: F811
    (a, b, c), _ = three_copies(db)
    before = group_of(db, a)
    assert before is not None and before["members"] == {a, b, c}

    db(check_image, c, random_vector(), POLICY)  # its pixels changed: matches nothing now

    after = group_of(db, a)
    assert after is not None and after["id"] == before["id"]
    assert after["members"] == {a, b} and after["version"] == before["version"] + 1
    assert group_of(db, c) is None

    async def pairs(conn: asyncpg.Connection) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM duplicate_pairs WHERE image_a = $1 OR image_b = $1", c
            )
        )

    assert db(pairs) == 0  # its old pairs went, not only the group


def test_a_reprocessed_hub_leaving_splits_nothing_it_does_not_hold(db: Db) -> None:  # noqa: F811
    """Two images joined only through a third: when the third stops matching, the other
    two have no pair and no group left."""
    v = random_vector()
    hub, left, right = (new_image(db) for _ in range(3))
    db(check_image, hub, v, POLICY)
    db(check_image, left, near(v, 0.95), POLICY)
    db(check_image, right, near(v, 0.95), POLICY)
    gid = group_of(db, hub)["id"]  # type: ignore[index]

    db(check_image, hub, random_vector(), POLICY)

    assert group_of(db, left) is None and group_of(db, right) is None
    assert group_events(db, gid)[-1][0] == "duplicate_group.deleted"


def test_a_deleted_member_bumps_the_version_at_once_and_is_regrouped_later(db: Db) -> None:  # noqa: F811
    (a, b, c), _ = three_copies(db)
    before = group_of(db, a)
    assert before is not None

    delete_image(db, c)
    marked = group_of(db, a)
    assert marked is not None and marked["members"] == {a, b}
    assert marked["version"] == before["version"] + 1

    # flagged, then regrouped: here, or by the running API's loop already (whichever first)
    db(regroup_dirty, 1000)
    after = group_of(db, a)
    assert after is not None and not after["dirty"] and after["id"] == before["id"]
    assert after["version"] == marked["version"]  # the members did not change again

    delete_image(db, b)  # one image left: no group
    db(regroup_dirty, 1000)
    assert group_of(db, a) is None
    assert group_events(db, before["id"])[-1][0] == "duplicate_group.deleted"


def test_dismissed_images_are_never_grouped_together(db: Db) -> None:  # noqa: F811
    v = random_vector()
    a, b = new_image(db), new_image(db)

    async def dismiss(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO duplicate_dismissals (image_a, image_b, tenant_id)
               VALUES (LEAST($1::uuid, $2::uuid), GREATEST($1::uuid, $2::uuid), $3)""",
            a,
            b,
            DEFAULT_TENANT_ID,
        )

    db(dismiss)
    db(check_image, a, v, POLICY)
    db(check_image, b, near(v, 0.99), POLICY)
    assert group_of(db, a) is None and group_of(db, b) is None


def test_the_groups_do_not_depend_on_the_order_of_checks(db: Db) -> None:  # noqa: F811
    """Two related photos' copies and an image between them (a duplicate of copies of
    both): the same groups (as labels) whatever the order of checks, each order in a
    tenant of its own; the image between never fuses the two photos."""
    u = random_vector()
    w = near(u, 0.88)  # related (same subject), not duplicates
    vectors = {
        "u0": u,
        "u1": near(u, 0.97),
        "u2": near(u, 0.96),
        "w0": w,
        "w1": near(w, 0.97),
        "w2": near(w, 0.95),
    }
    # nearer one side: an exact midpoint would tie, and ties are broken by ids (which
    # differ between the tenants' runs)
    between = 0.55 * vectors["u2"] + 0.45 * vectors["w2"]
    vectors["x"] = (between / np.linalg.norm(between)).astype(np.float32)
    outcomes = []
    for seed in range(3):
        tenant = new_tenant(db)
        labels = list(vectors)
        random.Random(seed).shuffle(labels)
        ids = {label: new_image(db, tenant) for label in labels}
        for label in labels:
            db(check_image, ids[label], vectors[label], POLICY)
        by_id = {i: label for label, i in ids.items()}
        groups = set()
        for label in labels:
            g = group_of(db, ids[label])
            if g is not None:
                groups.add(frozenset(by_id[m] for m in g["members"]))
        outcomes.append(groups)
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert len(outcomes[0]) == 2, outcomes[0]
    for g in outcomes[0]:
        assert not ({"u0", "u1"} & g and {"w0", "w1"} & g), g


def _member_rows(db: Db, images: list[UUID]) -> dict[UUID, tuple[UUID, str]]:  # noqa: F811
    """Each image's member row: its group and the row version PostgreSQL wrote (xmin)."""

    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """SELECT image_id, group_id, xmin::text AS written FROM duplicate_group_members
                WHERE image_id = ANY($1::uuid[])""",
            images,
        )

    return {r["image_id"]: (r["group_id"], r["written"]) for r in db(fetch)}


def test_a_member_joining_rewrites_only_its_own_row(db: Db) -> None:  # noqa: F811
    v = random_vector()
    images = [new_image(db) for _ in range(6)]
    # Every pair well above POLICY's cosine 0.94 (the least ~0.965): with 0.96-0.99 some
    # pairs sat within a random draw of it (0.94 +- 0.002) and the group's shape
    # depended on the RNG's state, that is on which tests ran before.
    for image, cos in zip(images[:5], (1.0, 0.995, 0.99, 0.985, 0.98), strict=True):
        db(check_image, image, near(v, cos) if cos < 1 else v, POLICY)
    before = group_of(db, images[0])
    rows = _member_rows(db, images[:5])
    assert before is not None and before["members"] == set(images[:5])

    db(check_image, images[5], near(v, 0.9875), POLICY)

    after = group_of(db, images[0])
    assert after is not None and after["members"] == set(images)
    assert (after["id"], after["version"]) == (before["id"], before["version"] + 1)
    assert _member_rows(db, images[:5]) == rows, "the members already there were not rewritten"


def _stored_groups(db: Db, tenant: UUID) -> set[frozenset[UUID]]:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """SELECT array_agg(m.image_id) AS members
                 FROM duplicate_groups AS g JOIN duplicate_group_members AS m
                   ON m.group_id = g.id
                WHERE g.tenant_id = $1 GROUP BY g.id""",
            tenant,
        )

    return {frozenset(r["members"]) for r in db(fetch)}


def _regrouped_from_scratch(db: Db, tenant: UUID) -> set[frozenset[UUID]]:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT image_a, image_b, score FROM duplicate_pairs WHERE tenant_id = $1", tenant
        )

    pairs = [Pair(r["image_a"], r["image_b"], float(r["score"])) for r in db(fetch)]
    return set(group(pairs, Rule.AVERAGE_LINK).groups)


def test_stored_groups_match_a_regrouping_from_scratch_after_every_check(
    db: Db,  # noqa: F811
) -> None:
    """Images join, move between groups and groups merge as copies of two related photos
    (and images between them) arrive in a shuffled order: after each check the stored
    rows are exactly the groups the rule makes of every pair, none left behind."""
    u = random_vector()
    w = near(u, 0.90)
    vectors = [u, near(u, 0.97), near(u, 0.955), w, near(w, 0.97), near(w, 0.955)]
    for k in (0.5, 0.6, 0.4):
        between = k * vectors[2] + (1 - k) * vectors[5]
        vectors.append((between / np.linalg.norm(between)).astype(np.float32))
    tenant = new_tenant(db)
    order = list(range(len(vectors)))
    random.Random(7).shuffle(order)
    for i in order:
        db(check_image, new_image(db, tenant), vectors[i], POLICY)
        assert _stored_groups(db, tenant) == _regrouped_from_scratch(db, tenant)
    assert _stored_groups(db, tenant), "the scenario made groups"


def _labelled_groups(db: Db, tenant: UUID, ids: dict[str, UUID]) -> set[frozenset[str]]:  # noqa: F811
    by_id = {i: label for label, i in ids.items()}
    return {frozenset(by_id[m] for m in members) for members in _stored_groups(db, tenant)}


def test_fixed_scenarios_make_the_groups_written_down(db: Db) -> None:  # noqa: F811
    """Literal expected groups, worked out from the vectors and the documented rule
    (cosine 0.94 or more is a duplicate; a copy joins a group when at least half the
    pairs between them are duplicates), not from the grouping code."""
    u = random_vector()
    w = near(u, 0.88)  # the same subject, not a duplicate
    a = random_vector()
    b = near(a, 0.96)
    vectors = {
        # two related photos' copies: two groups, never fused; a stranger alone
        "u0": u,
        "u1": near(u, 0.97),
        "u2": near(u, 0.96),
        "w0": w,
        "w1": near(w, 0.97),
        "stranger": random_vector(),
        # a chain: c matches b only (cos(a, c) is about 0.92), one pair of the two: joins
        "a": a,
        "b": b,
        "c": near(b, 0.96),
    }
    assert float(vectors["a"] @ vectors["c"]) < 0.94  # the chain's ends are not duplicates
    tenant = new_tenant(db)
    ids = {label: new_image(db, tenant) for label in vectors}
    for label, vector in vectors.items():
        db(check_image, ids[label], vector, POLICY)

    assert _labelled_groups(db, tenant, ids) == {
        frozenset({"u0", "u1", "u2"}),
        frozenset({"w0", "w1"}),
        frozenset({"a", "b", "c"}),
    }
