"""Duplicate groups keep their identity: an upload changes only the groups it touches.

A group that gains or loses a member keeps its id and gets the next version; a split
keeps the id on the larger part; in a component too large to regroup whole (bursts,
look-alike product shots), an upload's group events are those of the groups it joined.
Checks run in-process against the session's real PostgreSQL, as test_duplicate_groups.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from imgflow_deduper.checks import check_image
from imgflow_runtime.db import duplicate_groups
from imgflow_runtime.db.duplicate_groups import regroup_dirty
from tests.test_dedupe_repository import DIM, POLICY, db  # noqa: F401
from tests.test_duplicate_groups import delete_image, group_of, new_tenant

Db = Callable[..., Any]
# Its own generator: drawing from test_dedupe_repository's would change the vectors of
# every test that runs after these in one session.
RNG = np.random.default_rng(27)


def random_vector() -> np.ndarray:
    v = RNG.normal(size=DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(v: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at exactly this cosine similarity to ``v``."""
    other = RNG.normal(size=DIM)
    other -= (other @ v) * v
    other /= np.linalg.norm(other)
    out = cosine * v + np.sqrt(1 - cosine**2) * other
    return (out / np.linalg.norm(out)).astype(np.float32)


def _image(db: Db, tenant: UUID, phash: int | None = None) -> UUID:  # noqa: F811
    """An image row, with a pHash if given (else none: the CNN alone decides its pairs)."""
    image_id = uuid4()

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256,
                                   phash)
               VALUES ($1, $2, $3, 'image/jpeg', 1000, $4, $5)""",
            image_id,
            tenant,
            f"originals/{image_id}",
            secrets.token_hex(32),
            phash,
        )

    db(insert)
    return image_id


def _events_since(db: Db, tenant: UUID, after: int) -> list[tuple[str, UUID, int]]:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """SELECT type, group_id, group_version FROM image_events
                WHERE tenant_id = $1 AND group_id IS NOT NULL AND id > $2 ORDER BY id""",
            tenant,
            after,
        )

    return [(r["type"], r["group_id"], r["group_version"]) for r in db(fetch)]


def _last_event(db: Db) -> int:  # noqa: F811
    async def fetch(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM image_events"))

    return db(fetch)


def _state(db: Db, images: dict[str, UUID]) -> dict[str, tuple[UUID, int] | None]:  # noqa: F811
    """Each label's group: (id, version), or None."""
    out: dict[str, tuple[UUID, int] | None] = {}
    for label, image in images.items():
        g = group_of(db, image)
        out[label] = None if g is None else (g["id"], g["version"])
    return out


UPDATED = "duplicate_group.updated"


def _bridge() -> tuple[int, int]:
    """Two pHashes 8 bits apart: a pHash pair (POLICY: <= 8 bits) of score 1 - 8/64, weaker
    than any copy's CNN pair, between two images the CNN keeps apart."""
    h = secrets.randbits(63)
    return h, h ^ 0xFF


def test_an_upload_in_a_large_component_changes_only_the_group_it_joins(
    db: Db,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four photos' copies chained into one component by pHash pairs across photos (one
    pair between two groups of three: far from half, no merge). With the component larger
    than what is regrouped whole, a new copy of the second photo bumps that group alone:
    one event, every other group's id and version as they were. (Regrouping a cut of the
    component made ~9 groups go and come back, ~41 events an upload.)"""
    monkeypatch.setattr(duplicate_groups, "WHOLE_COMPONENT", 6)
    tenant = new_tenant(db)
    photos = "abcd"
    centres = {p: random_vector() for p in photos}
    bridges = {p: _bridge() for p in photos[:-1]}  # p's last copy, the next one's first
    images: dict[str, UUID] = {}
    for k, p in enumerate(photos):
        for i, cos in enumerate((1.0, 0.99, 0.985)):
            phash = None
            if i == 0 and k > 0:
                phash = bridges[photos[k - 1]][1]
            elif i == 2 and p in bridges:
                phash = bridges[p][0]
            images[f"{p}{i}"] = _image(db, tenant, phash)
            vector = centres[p] if cos == 1.0 else near(centres[p], cos)
            db(check_image, images[f"{p}{i}"], vector, POLICY)

    before = _state(db, images)
    ids = {p: before[f"{p}0"][0] for p in photos}  # type: ignore[index]
    # each photo its own group, made at its second copy (v1), joined by its third (v2)
    assert before == {f"{p}{i}": (ids[p], 2) for p in photos for i in range(3)}
    assert len(set(ids.values())) == 4
    mark = _last_event(db)

    images["b3"] = _image(db, tenant)
    db(check_image, images["b3"], near(centres["b"], 0.98), POLICY)

    after = _state(db, images)
    assert after == {
        **{f"{p}{i}": (ids[p], 2) for p in "acd" for i in range(3)},
        **{f"b{i}": (ids["b"], 3) for i in range(4)},
    }
    assert _events_since(db, tenant, mark) == [(UPDATED, ids["b"], 3)]


def test_a_split_keeps_the_id_on_the_larger_part(db: Db) -> None:  # noqa: F811
    """Three copies of one photo, two of a related one, and a hub image close to both:
    one group of six (half the pairs between the two sides, through the hub). The hub
    deleted, the sides fall apart: the three keep the group's id, the two get a new one."""
    tenant = new_tenant(db)
    a = random_vector()
    c = near(a, 0.91)  # related photos, not duplicates
    vectors = {
        "a1": near(a, 0.995),
        "a2": near(a, 0.995),
        "a0": (0.65 * a + 0.35 * c) / np.linalg.norm(0.65 * a + 0.35 * c),
        "x": (a + c) / np.linalg.norm(a + c),
        "c0": near(c, 0.995),
        "c1": near(c, 0.995),
    }
    images = {label: _image(db, tenant) for label in vectors}
    for label, vector in vectors.items():
        db(check_image, images[label], vector.astype(np.float32), POLICY)
    whole = _state(db, images)
    gid = whole["a1"][0]  # type: ignore[index]
    # made by a2 (v1); a0, x, c0 and c1 each joined it (v2..v5)
    assert whole == {label: (gid, 5) for label in vectors}
    mark = _last_event(db)

    delete_image(db, images.pop("x"))
    db(regroup_dirty, 1000)  # or the running API's loop did it already: the same rows

    after = _state(db, images)
    new_id = after["c0"][0]  # type: ignore[index]
    assert new_id != gid
    assert after == {
        "a1": (gid, 7),
        "a2": (gid, 7),
        "a0": (gid, 7),
        "c0": (new_id, 1),
        "c1": (new_id, 1),
    }
    events = _events_since(db, tenant, mark)
    # the delete's bump (v6) at once, then the split: the id stays (v7), a new one (v1)
    assert events[0] == (UPDATED, gid, 6)
    assert sorted(events[1:], key=str) == sorted([(UPDATED, gid, 7), (UPDATED, new_id, 1)], key=str)
