"""The deduper's search and records against the real PostgreSQL + pgvector of the session.

Embeddings here are synthetic unit vectors (their geometry is what the SQL sees); the
model itself is tested in services/deduper/tests, and end to end in test_dedupe_api.py.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from imgflow_deduper.checks import CheckPolicy, check_image, recheck_late_phashes
from imgflow_deduper.decision import GeometryThresholds, Thresholds
from imgflow_deduper.overlap import Overlap
from imgflow_deduper.repository import (
    EmbeddingSpace,
    SearchLimits,
    nearest_sql,
    phash_nearest_sql,
    similar_candidates_sql,
)
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from tests.support import db_runner

DIM = 1280
POLICY = CheckPolicy(
    space=EmbeddingSpace("efficientnet-lite0", DIM),
    limits=SearchLimits(candidates=20, phash_distance=20, ef_search=100),
    thresholds=Thresholds(
        cosine=0.94, phash_distance=8, combined_cosine=0.80, combined_phash_distance=20
    ),
)
RNG = np.random.default_rng(2026)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def random_vector() -> np.ndarray:
    return _unit(RNG.normal(size=DIM))


def near(v: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at exactly this cosine similarity to ``v``."""
    other = RNG.normal(size=DIM)
    other = _unit(other - (other @ v) * v)
    return _unit(cosine * v + np.sqrt(1 - cosine**2) * other)


@pytest.fixture(scope="module")
def db(system: LocalSystem, database_url: str) -> Callable[..., Any]:
    return db_runner(database_url)


def new_image(
    db: Callable[..., Any], *, sha256: str | None = None, phash: int | None = None
) -> UUID:
    image_id = uuid4()

    async def insert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            """INSERT INTO images
                      (id, tenant_id, object_key, content_type, byte_size, sha256, phash)
               VALUES ($1, $5, $2, 'image/jpeg', 1000, $3, $4)""",
            image_id,
            f"originals/{image_id}",
            sha256 or secrets.token_hex(32),
            phash,
            DEFAULT_TENANT_ID,
        )

    db(insert)
    return image_id


def pairs_of(db: Callable[..., Any], image_id: UUID) -> dict[UUID, dict[str, Any]]:
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """SELECT CASE WHEN image_a = $1 THEN image_b ELSE image_a END AS other, *
                 FROM duplicate_pairs WHERE image_a = $1 OR image_b = $1""",
            image_id,
        )

    return {r["other"]: dict(r) for r in db(fetch)}


def test_a_near_vector_is_a_cnn_duplicate_and_a_far_one_is_not(db: Callable[..., Any]) -> None:
    v = random_vector()
    original, close, unrelated = new_image(db), new_image(db), new_image(db)
    assert db(check_image, original, v, POLICY).duplicates == []
    db(check_image, unrelated, random_vector(), POLICY)

    result = db(check_image, close, near(v, 0.96), POLICY)

    assert [c.image_id for c, _ in result.duplicates] == [original]
    pair = pairs_of(db, close)[original]
    assert pair["method"] == "cnn"
    assert pair["score"] == pytest.approx(0.96, abs=1e-4)
    assert pair["cosine"] == pytest.approx(0.96, abs=1e-4)
    assert unrelated not in pairs_of(db, close)


@pytest.mark.parametrize("crop_first", [True, False])
def test_a_crop_is_found_through_the_sub_views(db: Callable[..., Any], crop_first: bool) -> None:
    crop_vector = random_vector()
    # The original's whole frame is only fairly close to the crop (below the threshold);
    # one of its five sub-views is very close.
    original_vector = near(crop_vector, 0.85)
    views = np.stack(
        [random_vector(), near(crop_vector, 0.98), *(random_vector() for _ in range(3))]
    )
    original, crop = new_image(db), new_image(db)
    checks = [(original, original_vector, views), (crop, crop_vector, None)]
    for image_id, vector, sub_views in checks[::-1] if crop_first else checks:
        result = db(check_image, image_id, vector, POLICY, sub_views)

    assert result.duplicates, "the second check should find the first image"
    pair = pairs_of(db, crop)[original]
    assert pair["method"] == "cnn"
    assert pair["cosine"] == pytest.approx(0.85, abs=1e-3)
    assert pair["view_cosine"] == pytest.approx(0.98, abs=1e-3)
    assert pair["score"] == pytest.approx(0.98, abs=1e-3)


def test_equal_bytes_are_found_whatever_the_vectors(db: Callable[..., Any]) -> None:
    sha = secrets.token_hex(32)
    first, second = new_image(db, sha256=sha), new_image(db, sha256=sha)
    db(check_image, first, random_vector(), POLICY)

    result = db(check_image, second, random_vector(), POLICY)

    assert result.exact_twin == first
    assert pairs_of(db, second)[first]["method"] == "sha256"


def test_a_close_phash_is_a_duplicate_even_when_the_cnn_disagrees(db: Callable[..., Any]) -> None:
    a = new_image(db, phash=0x0F0F_0F0F_0F0F_0F0F)
    b = new_image(db, phash=0x0F0F_0F0F_0F0F_0F0F ^ 0b10101)  # 3 bits apart
    db(check_image, a, random_vector(), POLICY)

    db(check_image, b, random_vector(), POLICY)

    pair = pairs_of(db, b)[a]
    assert (pair["method"], pair["phash_distance"]) == ("phash", 3)


def test_a_phash_that_arrives_late_still_finds_its_pair(db: Callable[..., Any]) -> None:
    hash_a = -0x1234_5678_9ABC_DEF0  # a negative signed int64, as the hasher may store
    a = new_image(db, phash=hash_a)
    b = new_image(db)  # its dedupe runs before the hasher wrote its pHash
    db(check_image, a, random_vector(), POLICY)
    checked = db(check_image, b, random_vector(), POLICY)
    assert checked.phash_pending
    assert a not in pairs_of(db, b)

    async def hasher_writes(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE images SET phash = $2 WHERE id = $1", b, hash_a ^ 0b11)

    db(hasher_writes)
    assert db(recheck_late_phashes, POLICY, 100) >= 1

    assert pairs_of(db, b)[a]["method"] == "phash"

    async def pending(conn: asyncpg.Connection) -> bool:
        return await conn.fetchval(
            "SELECT phash_pending FROM duplicate_checks WHERE image_id=$1", b
        )

    assert db(pending) is False


def test_other_tenants_are_not_searched(db: Callable[..., Any]) -> None:
    v = random_vector()
    theirs, mine = new_image(db), new_image(db)
    db(check_image, theirs, v, POLICY)

    async def move(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "UPDATE image_embeddings SET tenant_id = $2 WHERE image_id = $1", theirs, uuid4()
        )

    db(move)
    assert db(check_image, mine, v, POLICY).duplicates == []


def test_deleting_an_image_removes_its_pairs_and_embedding(db: Callable[..., Any]) -> None:
    v = random_vector()
    kept, deleted = new_image(db), new_image(db)
    db(check_image, kept, v, POLICY)
    db(check_image, deleted, near(v, 0.99), POLICY)
    assert deleted in pairs_of(db, kept)

    async def delete(conn: asyncpg.Connection) -> int:
        await conn.execute("DELETE FROM images WHERE id = $1", deleted)
        return await conn.fetchval(
            "SELECT count(*) FROM image_embeddings WHERE image_id = $1", deleted
        )

    assert db(delete) == 0
    assert pairs_of(db, kept) == {}


def test_a_check_of_a_deleted_image_is_a_no_op(db: Callable[..., Any]) -> None:
    assert db(check_image, uuid4(), random_vector(), POLICY) is None


def test_running_a_check_twice_leaves_one_pair(db: Callable[..., Any]) -> None:
    v = random_vector()
    a, b = new_image(db), new_image(db)
    db(check_image, a, v, POLICY)
    db(check_image, b, near(v, 0.97), POLICY)
    db(check_image, b, near(v, 0.97), POLICY)
    db(check_image, a, v, POLICY)
    assert list(pairs_of(db, a)) == [b]


def test_the_nearest_neighbour_search_uses_the_hnsw_index(db: Callable[..., Any]) -> None:
    async def plan(conn: asyncpg.Connection) -> str:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            rows = await conn.fetch(
                f"EXPLAIN {nearest_sql(POLICY.space)}",
                uuid4(),
                DEFAULT_TENANT_ID,
                random_vector().tolist(),
                10,
            )
        return "\n".join(r[0] for r in rows)

    assert "image_embeddings_efficientnet_lite0_hnsw" in db(plan)


def test_the_phash_search_can_use_its_hnsw_index(db: Callable[..., Any]) -> None:
    """Its ORDER BY matches the index (a small tenant is cheaper sorted, so the planner is
    kept from sorting here; a large one is searched by the index on its own)."""

    async def plan(conn: asyncpg.Connection) -> str:
        async with conn.transaction():
            await conn.execute(
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;"
                " SET LOCAL enable_sort = off"
            )
            # $3 (the vector) belongs to the whole search; typed here so it can be sent.
            rows = await conn.fetch(
                f"EXPLAIN WITH vector AS (SELECT $3::text) {phash_nearest_sql()}",
                uuid4(),
                DEFAULT_TENANT_ID,
                None,
                20,
                0x0F0F,
                20,
            )
        return "\n".join(r[0] for r in rows)

    assert "images_phash_hnsw" in db(plan)


def _flip(value: int, bits: int, rng: random.Random) -> int:
    """``value`` (a signed int64) with ``bits`` of its 64 bits flipped at random."""
    mask = sum(1 << b for b in rng.sample(range(64), bits))
    flipped = (value & (2**64 - 1)) ^ mask
    return flipped - 2**64 if flipped >= 2**63 else flipped


def test_a_near_phash_is_found_behind_many_within_the_distance(db: Callable[..., Any]) -> None:
    """A large tenant holds many unrelated hashes within the search distance: a near copy
    stored after them must still be a candidate (the search takes the nearest, not the
    first it meets)."""
    rng = random.Random(16)
    tenant = uuid4()
    target = -0x3A5F_0C1E_9D2B_7744

    async def populate(conn: asyncpg.Connection) -> tuple[UUID, UUID]:
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))
        # Stored first, 15 x the candidates: 12-19 bits away (within the search's 20, past
        # the decision's 8), what a scan meets before the copy (however the rows land in
        # the table's free space, the copy is rarely among the first 20 of 301).
        hashes = [_flip(target, rng.randint(12, 19), rng) for _ in range(15 * 20)]
        copy_hash = _flip(target, 3, rng)
        ids = [uuid4() for _ in range(len(hashes) + 2)]
        await conn.executemany(
            """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size,
                                   sha256, phash)
               VALUES ($1, $2, $3, 'image/jpeg', 1000, $4, $5)""",
            [
                (image_id, tenant, f"originals/{image_id}", secrets.token_hex(32), phash)
                for image_id, phash in zip(ids, [*hashes, copy_hash, target], strict=True)
            ],
        )
        return ids[-2], ids[-1]

    copy, subject = db(populate)

    db(check_image, subject, random_vector(), POLICY)

    pair = pairs_of(db, subject)[copy]
    assert (pair["method"], pair["phash_distance"]) == ("phash", 3)


GEOMETRY_POLICY = replace(
    POLICY,
    geometry=GeometryThresholds(min_inliers=15, duplicate_iou=0.5, duplicate_agreement=0.7),
)


def similar_of(db: Callable[..., Any], image_id: UUID) -> dict[UUID, dict[str, Any]]:
    async def fetch(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """SELECT CASE WHEN image_a = $1 THEN image_b ELSE image_a END AS other, *
                 FROM similar_pairs WHERE image_a = $1 OR image_b = $1""",
            image_id,
        )

    return {r["other"]: dict(r) for r in db(fetch)}


def test_another_frame_of_a_scene_is_similar_and_kept_out_of_duplicates(
    db: Callable[..., Any],
) -> None:
    # The geometric evidence per pair, as overlap.py would measure it on the pixels.
    v = random_vector()
    original, copy, burst = new_image(db), new_image(db), new_image(db)
    evidence = {
        frozenset((original, copy)): Overlap(120, 0.95, 1.0, mirrored=False),
        frozenset((original, burst)): Overlap(90, 0.8, 0.3, mirrored=False),
        frozenset((copy, burst)): Overlap(80, 0.8, 0.35, mirrored=False),
    }

    def probe(a: UUID, b: UUID) -> Overlap | None:
        return evidence.get(frozenset((a, b)))

    db(check_image, original, v, GEOMETRY_POLICY, None, probe)
    found = db(check_image, copy, near(v, 0.97), GEOMETRY_POLICY, None, probe)
    assert [c.image_id for c, _ in found.duplicates] == [original]
    pair = pairs_of(db, copy)[original]
    assert (pair["method"], pair["inliers"]) == ("cnn", 120)
    assert pair["iou"] == pytest.approx(0.95) and "IoU 0.95" in pair["basis"]

    result = db(check_image, burst, near(v, 0.96), GEOMETRY_POLICY, None, probe)

    # the CNN calls the burst frame a duplicate of both; the geometry says another picture
    assert result.duplicates == []
    assert {c.image_id for c, _ in result.similar} == {original, copy}
    assert pairs_of(db, burst) == {}
    similar = similar_of(db, burst)
    assert set(similar) == {original, copy}
    assert similar[original]["agreement"] == pytest.approx(0.3)
    assert "agreement < 0.7" in similar[original]["basis"]

    # judged again with other evidence (the frame is a copy after all), the pair moves
    evidence[frozenset((original, burst))] = Overlap(90, 0.9, 0.95, mirrored=False)
    again = db(check_image, burst, near(v, 0.96), GEOMETRY_POLICY, None, probe)
    assert [c.image_id for c, _ in again.duplicates] == [original]
    assert set(similar_of(db, burst)) == {copy}


def test_the_motions_are_stored_with_each_pair_null_where_not_measured(
    db: Callable[..., Any],
) -> None:
    """The two motion measures (stacks10, stacks11) are columns of both pair tables, as
    the API shows them: a copy's small ones, a moved subject's that made it similar, and
    NULL for a fit whose motion was not measured (0 matches there is no finding)."""
    policy = replace(
        GEOMETRY_POLICY,
        geometry=replace(
            GEOMETRY_POLICY.geometry, duplicate_motion=8.0, duplicate_second_motion=15
        ),
    )
    v = random_vector()
    original, copy, moved, unmeasured = (new_image(db) for _ in range(4))
    evidence = {
        frozenset((original, copy)): Overlap(120, 0.95, 1.0, False, motion=2.5),
        frozenset((original, moved)): Overlap(100, 0.9, 0.95, False, motion=3.0, second_motion=20),
        frozenset((original, unmeasured)): Overlap(110, 0.92, 0.97, False),
    }

    def probe(a: UUID, b: UUID) -> Overlap | None:
        return evidence.get(frozenset((a, b)))

    db(check_image, original, v, policy, None, probe)
    for image, cosine in ((copy, 0.97), (moved, 0.965), (unmeasured, 0.96)):
        db(check_image, image, near(v, cosine), policy, None, probe)

    duplicates, similar = pairs_of(db, original), similar_of(db, original)
    assert set(duplicates) >= {copy, unmeasured} and set(similar) == {moved}
    assert duplicates[copy]["motion"] == pytest.approx(2.5)
    assert duplicates[copy]["second_motion"] == 0
    assert similar[moved]["motion"] == pytest.approx(3.0)
    assert similar[moved]["second_motion"] == 20
    assert "20 matches on a second motion >= 15" in similar[moved]["basis"]
    assert (duplicates[unmeasured]["motion"], duplicates[unmeasured]["second_motion"]) == (
        None,
        None,
    )


@pytest.mark.parametrize("similar_candidates", [0, 20])
def test_a_shot_behind_many_copies_is_checked_through_the_similar_candidates(
    db: Callable[..., Any], similar_candidates: int
) -> None:
    """A tenant keeps 25 copies of one shot: they fill the 20 nearest of a new frame of the
    scene, and another shot that shares part of its frame (CNN 0.6) is never a candidate,
    unless the similar check draws the nearest image of each duplicate group too."""
    v = random_vector()
    copies = [new_image(db) for _ in range(25)]
    for image in copies:  # no pixels: the CNN decides, and they make one group
        db(check_image, image, near(v, 0.985), GEOMETRY_POLICY, None, lambda a, b: None)
    subject_vector = near(v, 0.9)
    other_shot = new_image(db)
    db(check_image, other_shot, near(subject_vector, 0.6), GEOMETRY_POLICY)
    subject = new_image(db)
    shares_a_part = frozenset((subject, other_shot))

    def probe(a: UUID, b: UUID) -> Overlap | None:
        return Overlap(40, 0.3, 0.5, mirrored=False) if {a, b} == shares_a_part else None

    limits = replace(POLICY.limits, similar_candidates=similar_candidates, probe_cosine=0.5)
    policy = replace(GEOMETRY_POLICY, limits=limits, probe_cosine=0.5)

    result = db(check_image, subject, subject_vector, policy, None, probe)

    found = {c.image_id for c, _ in result.similar}
    assert found == ({other_shot} if similar_candidates else set())
    assert (other_shot in similar_of(db, subject)) == bool(similar_candidates)


def test_the_similar_candidates_read_the_hnsw_index(db: Callable[..., Any]) -> None:
    async def plan(conn: asyncpg.Connection) -> str:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            rows = await conn.fetch(
                "EXPLAIN WITH u AS (SELECT $4::int, $5::bigint, $6::int)"
                f" {similar_candidates_sql(POLICY.space)}",
                uuid4(),
                DEFAULT_TENANT_ID,
                random_vector().tolist(),
                20,
                None,
                20,
                20,
                100,
                0.5,
            )
        return "\n".join(r[0] for r in rows)

    assert "image_embeddings_efficientnet_lite0_hnsw" in db(plan)
