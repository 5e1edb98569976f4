"""The deduper's SQL: store an embedding, gather candidates with their signals, record.

Candidates come from four places, all scoped to the image's tenant: nearest neighbours
in the HNSW index (cosine), images with the same SHA-256, images whose pHash is within
the loosest pHash threshold (when the hasher's ``images.phash`` exists for both), and,
for the similar check, the nearest image of each other duplicate group further down the
same HNSW scan (``similar_candidates_sql``).
Each candidate comes back with every signal measured, whichever source found it (the
whole-frame cosine, the best whole-frame-against-sub-view cosine, the pHash distance,
equal bytes), so the decision sees the whole picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import numpy as np

from imgflow_deduper.decision import PairSignals, Verdict
from imgflow_deduper.overlap import Overlap


@dataclass(frozen=True)
class EmbeddingSpace:
    """Which stored embeddings are comparable: one model, one size.

    Both are written into the SQL as literals (the name is validated by the settings), so
    the planner can match the model's partial, expression HNSW index.
    """

    model: str
    dim: int

    @property
    def column(self) -> str:
        return f"e.embedding::vector({self.dim})"

    def param(self, n: int) -> str:
        return f"${n}::real[]::vector({self.dim})"


@dataclass(frozen=True)
class SearchLimits:
    candidates: int  # per source
    phash_distance: int  # loosest pHash distance any rule accepts
    ef_search: int
    # The similar check's own candidates (``similar_candidates_sql``): at most this many
    # other duplicate groups, by their nearest image at least ``probe_cosine`` alike
    # among the ``ef_search`` nearest; 0: none.
    similar_candidates: int = 0
    probe_cosine: float = 1.0


def _measured(value: float) -> float | None:
    """NULL, not NaN, for a figure not measured (a fit too poor to judge, or no textured
    cell in common): the API shows it as absent."""
    return None if math.isnan(value) else value


def _motions(overlaps: Sequence[Overlap | None]) -> tuple[list[float | None], list[int | None]]:
    """Each overlap's two motions as stored: NULL where not measured. The second motion's
    0 is "none found" only where the cells' motion was measured with it; a count found is
    stored whatever the cells showed (a fit whose cells had no texture in common)."""
    motion = [None if o is None else _measured(o.motion) for o in overlaps]
    second = [
        None if o is None or (m is None and o.second_motion == 0) else o.second_motion
        for o, m in zip(overlaps, motion, strict=True)
    ]
    return motion, second


@dataclass(frozen=True)
class Candidate:
    image_id: UUID
    signals: PairSignals


@dataclass(frozen=True)
class Subject:
    """What the search needs to know about the image being checked."""

    image_id: UUID
    tenant_id: UUID
    phash: int | None  # None: the hasher has not written it (yet), or no such column


_phash_column_seen = False


async def has_phash_column(conn: asyncpg.Connection) -> bool:
    """The hasher's migration adds images.phash; until it has run, search without it.

    Once seen, the column stays (migrations only add), so the catalogue is asked only
    until then, not twice per job."""
    global _phash_column_seen
    if not _phash_column_seen:
        _phash_column_seen = bool(
            await conn.fetchval(
                """SELECT EXISTS (SELECT 1 FROM information_schema.columns
                                   WHERE table_schema = current_schema()
                                     AND table_name = 'images' AND column_name = 'phash')"""
            )
        )
    return _phash_column_seen


async def load_subject(
    conn: asyncpg.Connection, image_id: UUID, with_phash: bool
) -> Subject | None:
    phash = "phash" if with_phash else "NULL::bigint"
    row = await conn.fetchrow(
        f"SELECT tenant_id, {phash} AS phash FROM images WHERE id = $1", image_id
    )
    return None if row is None else Subject(image_id, row["tenant_id"], row["phash"])


async def store_embedding(
    conn: asyncpg.Connection,
    subject: Subject,
    space: EmbeddingSpace,
    vector: np.ndarray,
    views: np.ndarray | None = None,
) -> bool:
    """Upsert the image's embedding and its sub-views'; False if the image is gone.

    Commits before any search, so of two duplicates checked at the same time, the later
    search sees the other.
    """
    async with conn.transaction():
        if not await _upsert_embedding(conn, subject, space, vector):
            return False
        await conn.execute(
            "DELETE FROM image_view_embeddings WHERE image_id = $1", subject.image_id
        )
        if views is not None and len(views):
            await conn.executemany(
                f"""INSERT INTO image_view_embeddings (image_id, view, model, embedding)
                    VALUES ($1, $2, $3, {space.param(4)})""",
                [
                    (subject.image_id, k, space.model, v.astype(np.float32).tolist())
                    for k, v in enumerate(views, start=1)
                ],
            )
    return True


async def _upsert_embedding(
    conn: asyncpg.Connection, subject: Subject, space: EmbeddingSpace, vector: np.ndarray
) -> bool:
    stored = await conn.fetchval(
        f"""INSERT INTO image_embeddings (image_id, tenant_id, model, embedding)
            SELECT id, $2, $3, {space.param(4)} FROM images WHERE id = $1
            ON CONFLICT (image_id) DO UPDATE
               SET tenant_id = EXCLUDED.tenant_id, model = EXCLUDED.model,
                   embedding = EXCLUDED.embedding, created_at = now()
            RETURNING true""",
        subject.image_id,
        subject.tenant_id,
        space.model,
        vector.astype(np.float32).tolist(),
    )
    return bool(stored)


async def stored_embedding(
    conn: asyncpg.Connection, image_id: UUID, space: EmbeddingSpace
) -> np.ndarray | None:
    value = await conn.fetchval(
        "SELECT embedding::real[] FROM image_embeddings WHERE image_id = $1 AND model = $2",
        image_id,
        space.model,
    )
    return None if value is None else np.asarray(value, dtype=np.float32)


def nearest_sql(space: EmbeddingSpace) -> str:
    """Nearest neighbours of $3 in tenant $2, but not image $1, at most $4: the HNSW scan.

    The ORDER BY expression and the model literal must match the partial expression
    index of migration 0003, or PostgreSQL falls back to an exact (sequential) scan.
    """
    return f"""SELECT e.image_id AS id FROM image_embeddings AS e
                WHERE e.model = '{space.model}' AND e.tenant_id = $2 AND e.image_id <> $1
                ORDER BY {space.column} <=> {space.param(3)}
                LIMIT $4"""


def similar_candidates_sql(space: EmbeddingSpace) -> str:
    """The nearest image of each other duplicate group (an ungrouped image is a group of
    its own) among the $8 nearest of $3, at least $9 alike, at most $7 of them.

    The $4 nearest alone fill up with copies in a tenant that keeps many of each shot,
    and a shot that shares only part of its scene's frame (CNN 0.5-0.7) never meets the
    rest of its scene: its stack is never found. One image a group is enough to stack
    (a stack holds whole groups), so this bounds the extra checks by the groups, not by
    the copies. The same HNSW scan as ``nearest_sql``, read further.
    """
    return f"""SELECT id FROM (
                  SELECT DISTINCT ON (coalesce(m.group_id, w.id)) w.id, w.distance
                    FROM (SELECT e.image_id AS id, {space.column} <=> {space.param(3)} AS distance
                            FROM image_embeddings AS e
                           WHERE e.model = '{space.model}' AND e.tenant_id = $2
                             AND e.image_id <> $1
                           ORDER BY {space.column} <=> {space.param(3)}
                           LIMIT $8) AS w
                    LEFT JOIN duplicate_group_members AS m ON m.image_id = w.id
                   WHERE 1 - w.distance >= $9
                   ORDER BY coalesce(m.group_id, w.id), w.distance
               ) AS nearest_of_each
               ORDER BY distance LIMIT $7"""


def phash_nearest_sql() -> str:
    """Of the $4 images of tenant $2 nearest to pHash $5 (Hamming distance, HNSW), but not
    image $1, those within $6 bits.

    Nearest first, not the first met: in a large tenant many unrelated hashes lie within
    the distance, and a scan that stops at $4 of them misses a near copy (migration 0014).
    The ORDER BY expression must match that migration's index, or PostgreSQL scans every
    image of the tenant.
    """
    return """SELECT n.id FROM (
                  SELECT o.id, o.phash FROM images AS o
                   WHERE $5::bigint IS NOT NULL AND o.phash IS NOT NULL AND o.id <> $1
                     AND o.tenant_id = $2
                   ORDER BY o.phash::bit(64) <~> $5::bigint::bit(64)
                   LIMIT $4) AS n
               WHERE bit_count((n.phash # $5::bigint)::bit(64)) <= $6"""


async def find_candidates(
    conn: asyncpg.Connection,
    subject: Subject,
    space: EmbeddingSpace,
    vector: np.ndarray,
    limits: SearchLimits,
    with_phash: bool,
) -> list[Candidate]:
    other_phash = "o.phash" if with_phash else "NULL::bigint"
    by_phash = phash_nearest_sql() if with_phash else "SELECT NULL::uuid AS id WHERE false"
    sql = f"""
        WITH by_vector AS ({nearest_sql(space)}), by_bytes AS (
            SELECT o.id FROM images AS o JOIN images AS me ON me.id = $1
             WHERE o.sha256 = me.sha256 AND o.id <> me.id AND o.tenant_id = me.tenant_id
             LIMIT $4
        ), by_phash AS ({by_phash}),
        -- its pairs already stored are judged again: a reprocess may end them
        by_scene AS ({similar_candidates_sql(space)}),
        by_pair AS (
            SELECT CASE WHEN p.image_a = $1 THEN p.image_b ELSE p.image_a END AS id
              FROM duplicate_pairs AS p WHERE p.image_a = $1 OR p.image_b = $1
            UNION
            SELECT CASE WHEN p.image_a = $1 THEN p.image_b ELSE p.image_a END
              FROM similar_pairs AS p WHERE p.image_a = $1 OR p.image_b = $1
        ),
        candidates AS (
            SELECT id FROM by_vector UNION SELECT id FROM by_bytes UNION SELECT id FROM by_phash
            UNION SELECT id FROM by_scene UNION SELECT id FROM by_pair
        )
        SELECT o.id,
               o.sha256 = me.sha256 AS same_sha256,
               1 - ({space.column} <=> {space.param(3)}) AS cosine,
               bit_count(({other_phash} # $5::bigint)::bit(64)) AS phash_distance,
               -- my whole frame against their sub-views, and theirs against mine
               GREATEST(
                   (SELECT max(1 - (v.embedding::vector({space.dim}) <=> {space.param(3)}))
                      FROM image_view_embeddings AS v
                     WHERE v.image_id = o.id AND v.model = '{space.model}'),
                   (SELECT max(1 - (v.embedding::vector({space.dim}) <=> {space.column}))
                      FROM image_view_embeddings AS v
                     WHERE v.image_id = $1 AND v.model = '{space.model}')
               ) AS view_cosine
          FROM candidates AS c
          JOIN images AS o ON o.id = c.id
          JOIN images AS me ON me.id = $1
          LEFT JOIN image_embeddings AS e ON e.image_id = o.id AND e.model = '{space.model}'
    """
    async with conn.transaction():
        # Local to this transaction: how wide HNSW looks (the vector and the pHash index
        # alike), and keep looking when the tenant filter removes rows (pgvector >= 0.8).
        # No sequential scan: for the similar candidates' 200 nearest the planner prices a
        # scan and sort of the whole table below the HNSW index (45 ms against 1 ms at
        # 6,000 images, growing with the table: bench --only dedupe).
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', $1, true),"
            " set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('enable_seqscan', 'off', true)",
            str(limits.ef_search),
        )
        rows = await conn.fetch(
            sql,
            subject.image_id,
            subject.tenant_id,
            vector.astype(np.float32).tolist(),
            limits.candidates,
            subject.phash,
            limits.phash_distance,
            limits.similar_candidates,
            limits.ef_search,
            limits.probe_cosine,
        )
    return [
        Candidate(
            r["id"],
            PairSignals(
                same_sha256=r["same_sha256"],
                cosine=None if r["cosine"] is None else float(r["cosine"]),
                phash_distance=r["phash_distance"],
                view_cosine=None if r["view_cosine"] is None else float(r["view_cosine"]),
            ),
        )
        for r in rows
    ]


Judged = Sequence[tuple[Candidate, Verdict]]


def _method(verdict: Verdict) -> str:
    assert verdict.duplicate is not None, "a duplicate verdict carries its decision"
    return verdict.duplicate.method.value


async def _record_similar(conn: asyncpg.Connection, subject: Subject, similar: Judged) -> None:
    """Replace the image's similar pairs by those found (each was judged afresh)."""
    await conn.execute(
        """DELETE FROM similar_pairs WHERE (image_a = $1 OR image_b = $1)
              AND NOT (CASE WHEN image_a = $1 THEN image_b ELSE image_a END = ANY($2::uuid[]))""",
        subject.image_id,
        [c.image_id for c, _ in similar],
    )
    overlaps = [c.signals.overlap for c, _ in similar]
    motion, second_motion = _motions(overlaps)
    await conn.execute(
        """INSERT INTO similar_pairs
               (image_a, image_b, tenant_id, cosine, view_cosine, phash_distance, inliers,
                iou, agreement, basis, motion, second_motion)
           SELECT LEAST($1::uuid, t.other), GREATEST($1::uuid, t.other), $2, t.cosine,
                  t.view_cosine, t.distance, t.inliers, t.iou, t.agreement, t.basis,
                  t.motion, t.second_motion
             FROM unnest($3::uuid[], $4::real[], $5::real[], $6::smallint[], $7::int[],
                         $8::real[], $9::real[], $10::text[], $11::real[], $12::int[])
                  AS t(other, cosine, view_cosine, distance, inliers, iou, agreement, basis,
                       motion, second_motion)
            WHERE EXISTS (SELECT 1 FROM images WHERE id = t.other)
           ON CONFLICT (image_a, image_b) DO UPDATE
              SET cosine = EXCLUDED.cosine, view_cosine = EXCLUDED.view_cosine,
                  phash_distance = EXCLUDED.phash_distance, inliers = EXCLUDED.inliers,
                  iou = EXCLUDED.iou, agreement = EXCLUDED.agreement, basis = EXCLUDED.basis,
                  motion = EXCLUDED.motion, second_motion = EXCLUDED.second_motion,
                  found_at = now()""",
        subject.image_id,
        subject.tenant_id,
        [c.image_id for c, _ in similar],
        [c.signals.cosine for c, _ in similar],
        [c.signals.view_cosine for c, _ in similar],
        [c.signals.phash_distance for c, _ in similar],
        [o.inliers if o else 0 for o in overlaps],
        [o.iou if o else 0.0 for o in overlaps],
        [_measured(o.agreement) if o else None for o in overlaps],
        [v.basis for _, v in similar],
        motion,
        second_motion,
    )


async def record_check(
    conn: asyncpg.Connection,
    subject: Subject,
    found: Judged,
    method: str,
    phash_pending: bool,
    similar: Judged | None = None,
) -> tuple[UUID | None, list[UUID]]:
    """Upsert the pairs found and the image's check, and delete the image's pairs not found
    again (its stored pairs are among the candidates, so each was judged afresh); returns
    its earliest exact twin and the images whose pair with it went.

    While its own pHash is pending, pairs that pHash decided could not be judged again:
    they stay, for the late recheck (with the pHash) to judge. ``similar``: the image's
    similar pairs now (None: a check without the geometric check leaves them as they are).
    """
    async with conn.transaction():
        rows = await conn.fetch(
            """DELETE FROM duplicate_pairs
                WHERE (image_a = $1 OR image_b = $1)
                  AND NOT (CASE WHEN image_a = $1 THEN image_b ELSE image_a END
                           = ANY($2::uuid[]))
                  AND NOT ($3 AND method IN ('phash', 'cnn+phash'))
               RETURNING CASE WHEN image_a = $1 THEN image_b ELSE image_a END AS other""",
            subject.image_id,
            [c.image_id for c, _ in found],
            phash_pending,
        )
        lost = [r["other"] for r in rows]
        overlaps = [c.signals.overlap for c, _ in found]
        motion, second_motion = _motions(overlaps)
        await conn.execute(
            """INSERT INTO duplicate_pairs
                   (image_a, image_b, tenant_id, method, score, cosine, view_cosine,
                    phash_distance, inliers, iou, agreement, basis, motion, second_motion)
               SELECT LEAST($1::uuid, t.other), GREATEST($1::uuid, t.other), $2,
                      t.method, t.score, t.cosine, t.view_cosine, t.distance, t.inliers,
                      t.iou, t.agreement, t.basis, t.motion, t.second_motion
                 FROM unnest($3::uuid[], $4::text[], $5::real[], $6::real[], $7::smallint[],
                             $8::real[], $9::int[], $10::real[], $11::real[], $12::text[],
                             $13::real[], $14::int[])
                      AS t(other, method, score, cosine, distance, view_cosine, inliers, iou,
                           agreement, basis, motion, second_motion)
                -- the other image may have been deleted since the search
                WHERE EXISTS (SELECT 1 FROM images WHERE id = t.other)
               ON CONFLICT (image_a, image_b) DO UPDATE
                  SET method = EXCLUDED.method, score = EXCLUDED.score,
                      cosine = EXCLUDED.cosine, view_cosine = EXCLUDED.view_cosine,
                      phash_distance = EXCLUDED.phash_distance, inliers = EXCLUDED.inliers,
                      iou = EXCLUDED.iou, agreement = EXCLUDED.agreement,
                      basis = EXCLUDED.basis, motion = EXCLUDED.motion,
                      second_motion = EXCLUDED.second_motion, found_at = now()""",
            subject.image_id,
            subject.tenant_id,
            [c.image_id for c, _ in found],
            [_method(v) for _, v in found],
            [v.score for _, v in found],
            [c.signals.cosine for c, _ in found],
            [c.signals.phash_distance for c, _ in found],
            [c.signals.view_cosine for c, _ in found],
            [o.inliers if o else None for o in overlaps],
            [o.iou if o else None for o in overlaps],
            [_measured(o.agreement) if o else None for o in overlaps],
            [v.basis for _, v in found],
            motion,
            second_motion,
        )
        if similar is not None:
            await _record_similar(conn, subject, similar)
        twin = await conn.fetchval(
            """
            WITH twin AS (
                SELECT other.id
                  FROM images AS me
                  JOIN images AS other
                    ON other.sha256 = me.sha256 AND other.id <> me.id
                   AND other.tenant_id = me.tenant_id
                   AND (other.created_at, other.id) < (me.created_at, me.id)
                 WHERE me.id = $1
                 ORDER BY other.created_at, other.id
                 LIMIT 1
            )
            INSERT INTO duplicate_checks
                   (image_id, method, exact_duplicate_of, checked_at, phash_pending)
            VALUES ($1, $2, (SELECT id FROM twin), now(), $3)
            ON CONFLICT (image_id) DO UPDATE
               SET method = EXCLUDED.method, exact_duplicate_of = EXCLUDED.exact_duplicate_of,
                   checked_at = EXCLUDED.checked_at, phash_pending = EXCLUDED.phash_pending
            RETURNING exact_duplicate_of
            """,
            subject.image_id,
            method,
            phash_pending,
        )
    return twin, lost


async def phash_rechecks_due(conn: asyncpg.Connection, limit: int) -> list[UUID]:
    """Images checked before their pHash existed, whose pHash has arrived since."""
    rows = await conn.fetch(
        """SELECT d.image_id FROM duplicate_checks AS d JOIN images AS i ON i.id = d.image_id
            WHERE d.phash_pending AND i.phash IS NOT NULL
            ORDER BY d.checked_at LIMIT $1""",
        limit,
    )
    return [r["image_id"] for r in rows]


async def store_sharpness(conn: asyncpg.Connection, image_id: UUID, sharpness: float) -> None:
    """The image's sharpness (``sharpness.laplacian_variance``): a stack's pick uses it."""
    await conn.execute("UPDATE images SET sharpness = $2 WHERE id = $1", image_id, sharpness)
