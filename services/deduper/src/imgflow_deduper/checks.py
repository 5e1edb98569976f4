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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable
from uuid import UUID

import asyncpg
import numpy as np

from imgflow_deduper import repository as repo
from imgflow_deduper.alignment import Alignment
from imgflow_deduper.decision import (
    Decision,
    GeometryThresholds,
    PairSignals,
    Relation,
    Thresholds,
    Verdict,
    decide,
    needs_alignment,
    relate,
)
from imgflow_deduper.overlap import Overlap
from imgflow_runtime.db.duplicate_groups import GroupChanges, regroup_around
from imgflow_runtime.db.similar_stacks import restack_around

log = logging.getLogger(__name__)


# The geometric check of one image (the one checked) against another, by id: None when it
# found no consistent match or an image's pixels are gone.
Probe = Callable[[UUID, UUID], Overlap | None]


@runtime_checkable
class Prefetching(Protocol):
    """A probe that can fetch the images a check will compare, all at once, before it
    compares them one by one (probe.StoreProbe: side by side, not forty GETs in a row)."""

    def prefetch(self, image_ids: Iterable[UUID]) -> object: ...


@runtime_checkable
class Aligning(Protocol):
    """A probe that can also align two images' thumbnails (alignment.align), for the pairs
    its check found nothing in common in; None where an image's pixels are gone."""

    def align(self, subject: UUID, other: UUID) -> Alignment | None: ...


@dataclass(frozen=True)
class CheckPolicy:
    space: repo.EmbeddingSpace
    limits: repo.SearchLimits
    thresholds: Thresholds
    geometry: GeometryThresholds | None = None  # None: no geometric check, no similar pairs
    probe_cosine: float = 0.5  # the check runs on candidates this alike, or duplicates


@dataclass(frozen=True)
class CheckResult:
    duplicates: list[tuple[repo.Candidate, Decision]]
    exact_twin: UUID | None
    phash_pending: bool
    groups: GroupChanges
    similar: list[tuple[repo.Candidate, Verdict]]


@dataclass(frozen=True)
class Judged:
    duplicates: list[tuple[repo.Candidate, Verdict]]
    similar: list[tuple[repo.Candidate, Verdict]]


def judge(
    subject: UUID, candidates: list[repo.Candidate], policy: CheckPolicy, probe: Probe | None
) -> Judged:
    """Each candidate's relation; the geometric check runs only on those that look alike:
    a CNN similarity of at least ``probe_cosine``, or a pHash within the combined rule's
    distance, or a CNN/pHash duplicate (the eval's ``rules.probed``). Below the CNN's own
    thresholds this finds shots that share part of a frame but embed apart; those are
    similar only on shared content (``relate``), never on looks."""
    out = Judged([], [])
    probed = (
        {c.image_id for c in candidates if _worth_probing(c.signals, policy)}
        if probe is not None and policy.geometry is not None
        else set()
    )
    if probed and isinstance(probe, Prefetching):
        probe.prefetch([subject, *(c.image_id for c in candidates if c.image_id in probed)])
    for c in candidates:
        if probe is not None and c.image_id in probed:
            overlap = probe(subject, c.image_id)
            c = replace(c, signals=replace(c.signals, overlap=overlap))
        verdict = relate(c.signals, policy.thresholds, policy.geometry)
        if isinstance(probe, Aligning) and needs_alignment(
            verdict, c.signals.overlap, policy.geometry
        ):
            c = replace(c, signals=replace(c.signals, alignment=probe.align(subject, c.image_id)))
            verdict = relate(c.signals, policy.thresholds, policy.geometry)
        if verdict.relation is Relation.DUPLICATE:
            out.duplicates.append((c, verdict))
        elif verdict.relation is Relation.SIMILAR:
            out.similar.append((c, verdict))
    return out


def _worth_probing(signals: PairSignals, policy: CheckPolicy) -> bool:
    cnn, distance = signals.cnn, signals.phash_distance
    alike = (cnn is not None and cnn >= policy.probe_cosine) or (
        distance is not None and distance <= policy.thresholds.combined_phash_distance
    )
    return alike or decide(signals, policy.thresholds) is not None


async def _search_and_record(
    conn: asyncpg.Connection,
    subject: repo.Subject,
    vector: np.ndarray,
    policy: CheckPolicy,
    with_phash: bool,
    probe: Probe | None,
) -> CheckResult:
    candidates = await repo.find_candidates(
        conn, subject, policy.space, vector, policy.limits, with_phash
    )
    judged = judge(subject.image_id, candidates, policy, probe)
    pending = with_phash and subject.phash is None
    signals = ["sha256", "cnn"] + (["phash"] if with_phash and not pending else [])
    if probe is not None and policy.geometry is not None:
        signals.append("geometry")
    # without the geometric check the similar pairs stay as they were found
    similar = judged.similar if probe is not None else None
    twin, lost = await repo.record_check(
        conn, subject, judged.duplicates, "+".join(signals), pending, similar
    )
    # the image's component, and the images it no longer pairs with (they may split off)
    groups = await regroup_around(conn, subject.tenant_id, [subject.image_id, *lost])

    # then its stacks, over the groups just stored (a stack holds whole groups)
    await restack_around(conn, subject.tenant_id, [subject.image_id, *lost])
    found = [(c, v.duplicate) for c, v in judged.duplicates if v.duplicate is not None]
    return CheckResult(found, twin, pending, groups, judged.similar)


async def check_image(
    conn: asyncpg.Connection,
    image_id: UUID,
    vector: np.ndarray,
    policy: CheckPolicy,
    views: np.ndarray | None = None,
    probe: Probe | None = None,
) -> CheckResult | None:
    """Store the embeddings (whole image, sub-views), find and record duplicates and
    similar images; None if the image is gone."""
    with_phash = await repo.has_phash_column(conn)
    subject = await repo.load_subject(conn, image_id, with_phash)
    if subject is None:
        return None
    if not await repo.store_embedding(conn, subject, policy.space, vector, views):
        return None
    return await _search_and_record(conn, subject, vector, policy, with_phash, probe)


async def recheck_late_phashes(
    conn: asyncpg.Connection, policy: CheckPolicy, limit: int, probe: Probe | None = None
) -> int:
    """Redo the search for images whose pHash arrived after their check; returns how many."""
    if not await repo.has_phash_column(conn):
        return 0
    done = 0
    for image_id in await repo.phash_rechecks_due(conn, limit):
        subject = await repo.load_subject(conn, image_id, with_phash=True)
        vector = await repo.stored_embedding(conn, image_id, policy.space)
        if subject is None or subject.phash is None or vector is None:
            continue
        result = await _search_and_record(conn, subject, vector, policy, True, probe)
        log.info("late pHash of %s: %d duplicate(s) now", image_id, len(result.duplicates))
        done += 1
    return done
