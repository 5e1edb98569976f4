"""One image's duplicate check against PostgreSQL: store, search, decide, record.

Late pHashes: the hasher and the deduper run side by side, so an image's own pHash may be
missing when its check runs. The check then records ``phash_pending``, and the pHash part
is redone for it once the hash exists, by whichever dedupe job runs next (each job first
takes a few such rechecks). A pair is therefore found by the later of the two images'
pHash searches, and that one sees both hashes: each search runs only when its own image's
hash exists, and the other's, written earlier, is never removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import numpy as np

from imgflow_deduper import repository as repo
from imgflow_deduper.decision import Decision, Thresholds, decide
from imgflow_runtime.db.duplicate_groups import GroupChanges, regroup_around

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckPolicy:
    space: repo.EmbeddingSpace
    limits: repo.SearchLimits
    thresholds: Thresholds


@dataclass(frozen=True)
class CheckResult:
    duplicates: list[tuple[repo.Candidate, Decision]]
    exact_twin: UUID | None
    phash_pending: bool
    groups: GroupChanges


def judge(candidates: list[repo.Candidate], t: Thresholds) -> list[tuple[repo.Candidate, Decision]]:
    judged = ((c, decide(c.signals, t)) for c in candidates)
    return [(c, d) for c, d in judged if d is not None]


async def _search_and_record(
    conn: asyncpg.Connection,
    subject: repo.Subject,
    vector: np.ndarray,
    policy: CheckPolicy,
    with_phash: bool,
) -> CheckResult:
    candidates = await repo.find_candidates(
        conn, subject, policy.space, vector, policy.limits, with_phash
    )
    found = judge(candidates, policy.thresholds)
    pending = with_phash and subject.phash is None
    signals = ["sha256", "cnn"] + (["phash"] if with_phash and not pending else [])
    twin, lost = await repo.record_check(conn, subject, found, "+".join(signals), pending)
    # the image's component, and the images it no longer pairs with (they may split off)
    groups = await regroup_around(conn, subject.tenant_id, [subject.image_id, *lost])
    return CheckResult(found, twin, pending, groups)


async def check_image(
    conn: asyncpg.Connection,
    image_id: UUID,
    vector: np.ndarray,
    policy: CheckPolicy,
    views: np.ndarray | None = None,
) -> CheckResult | None:
    """Store the embeddings (whole image, sub-views), find and record duplicates; None if
    the image is gone."""
    with_phash = await repo.has_phash_column(conn)
    subject = await repo.load_subject(conn, image_id, with_phash)
    if subject is None:
        return None
    if not await repo.store_embedding(conn, subject, policy.space, vector, views):
        return None
    return await _search_and_record(conn, subject, vector, policy, with_phash)


async def recheck_late_phashes(conn: asyncpg.Connection, policy: CheckPolicy, limit: int) -> int:
    """Redo the search for images whose pHash arrived after their check; returns how many."""
    if not await repo.has_phash_column(conn):
        return 0
    done = 0
    for image_id in await repo.phash_rechecks_due(conn, limit):
        subject = await repo.load_subject(conn, image_id, with_phash=True)
        vector = await repo.stored_embedding(conn, image_id, policy.space)
        if subject is None or subject.phash is None or vector is None:
            continue
        result = await _search_and_record(conn, subject, vector, policy, with_phash=True)
        log.info("late pHash of %s: %d duplicate(s) now", image_id, len(result.duplicates))
        done += 1
    return done
