"""Which candidates the geometric check runs on (``checks.judge``), and what it makes of
them: the eval's ``rules.probed`` and ``related`` are the same rule."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID, uuid4

from imgflow_deduper import repository as repo
from imgflow_deduper.alignment import Alignment
from imgflow_deduper.checks import CheckPolicy, judge
from imgflow_deduper.decision import GeometryThresholds, PairSignals, Relation, Thresholds
from imgflow_deduper.overlap import Overlap

POLICY = CheckPolicy(
    space=repo.EmbeddingSpace("m", 4),
    limits=repo.SearchLimits(candidates=20, phash_distance=22, ef_search=40),
    thresholds=Thresholds(0.91, 11, 0.82, 22),
    geometry=GeometryThresholds(10, 0.5, 0.7, 150),
)
# another shot that shares a quarter of the frame: plenty of matches, a low IoU
SHARED = Overlap(inliers=40, iou=0.25, agreement=1.0, mirrored=False, keypoints=300)


def candidate(cnn: float) -> repo.Candidate:
    return repo.Candidate(uuid4(), PairSignals(cosine=cnn, phash_distance=34))


def test_a_shot_that_embeds_apart_is_checked_from_the_probe_cosine_down() -> None:
    probed: list[UUID] = []

    def probe(subject: UUID, other: UUID) -> Overlap:
        probed.append(other)
        return SHARED

    apart, far = candidate(0.6), candidate(0.3)
    at_first = judge(uuid4(), [apart, far], replace(POLICY, probe_cosine=0.75), probe)
    assert probed == [] and at_first.similar == [] and at_first.duplicates == []

    lower = judge(uuid4(), [apart, far], replace(POLICY, probe_cosine=0.55), probe)
    assert probed == [apart.image_id]  # the unlike one is never fetched
    assert [(c.image_id, v.relation) for c, v in lower.similar] == [
        (apart.image_id, Relation.SIMILAR)
    ]
    assert "IoU < 0.5" in lower.similar[0][1].basis


def test_a_prefetching_probe_is_handed_every_image_to_compare_before_the_first_pair() -> None:
    events: list[object] = []

    class Probe:
        def prefetch(self, image_ids: list[UUID]) -> None:
            events.append(list(image_ids))

        def __call__(self, subject: UUID, other: UUID) -> Overlap:
            events.append(other)
            return SHARED

    subject, alike, other_alike, far = uuid4(), candidate(0.6), candidate(0.7), candidate(0.2)
    judge(subject, [alike, far, other_alike], POLICY, Probe())
    assert events == [[subject, alike.image_id, other_alike.image_id], alike.image_id,
                      other_alike.image_id]  # fmt: skip


def test_thumbnails_are_aligned_only_for_a_pair_nothing_else_relates() -> None:
    """A burst frame that shares a soft strip: no keypoint fit, not alike enough to the CNN
    to be a duplicate; its thumbnails line up on the strip, so it is similar. A copy (a fit
    over the frame) and a pair the CNN calls a copy are never aligned: nothing to gain."""
    aligned: list[UUID] = []
    nothing = Overlap(inliers=3, iou=0.01, agreement=float("nan"), mirrored=False, keypoints=300)
    copy = Overlap(inliers=90, iou=0.95, agreement=1.0, mirrored=False, keypoints=300)

    class Probe:
        def __call__(self, subject: UUID, other: UUID) -> Overlap:
            return copy if other == twin.image_id else nothing

        def align(self, subject: UUID, other: UUID) -> Alignment:
            aligned.append(other)
            return Alignment(agreement=0.85, cells=8, iou=0.2)

    strip, twin, looks = candidate(0.6), candidate(0.97), candidate(0.95)
    policy = replace(
        POLICY, geometry=replace(POLICY.geometry, similar_alignment=0.7, similar_alignment_cells=6)
    )
    judged = judge(uuid4(), [strip, twin, looks], policy, Probe())
    assert aligned == [strip.image_id]
    assert [c.image_id for c, _ in judged.similar] == [strip.image_id, looks.image_id]
    assert "thumbnails align over IoU 0.20, agreement 0.85 >= 0.7 on 8 cells" in (
        judged.similar[0][1].basis
    )
    assert [c.image_id for c, _ in judged.duplicates] == [twin.image_id]

    aligned.clear()
    off = judge(uuid4(), [strip], POLICY, Probe())  # the bar at 0: never measured
    assert aligned == [] and off.similar == []
