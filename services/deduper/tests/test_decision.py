"""The duplicate decision as a plain function: each rule, and which signal wins."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imgflow_deduper.decision import (
    GeometryThresholds,
    Method,
    PairSignals,
    Relation,
    Thresholds,
    decide,
    phash_distance,
    relate,
)
from imgflow_deduper.overlap import Overlap

T = Thresholds(cosine=0.94, phash_distance=8, combined_cosine=0.80, combined_phash_distance=20)


@pytest.mark.parametrize(
    ("signals", "method"),
    [
        (PairSignals(same_sha256=True), Method.SHA256),
        (PairSignals(same_sha256=True, cosine=0.1, phash_distance=40), Method.SHA256),
        (PairSignals(cosine=0.94), Method.CNN),
        (PairSignals(cosine=0.97, phash_distance=2), Method.CNN),
        (PairSignals(cosine=0.85, phash_distance=20), Method.COMBINED),
        (PairSignals(phash_distance=8), Method.PHASH),
        (PairSignals(cosine=0.5, phash_distance=3), Method.PHASH),
    ],
)
def test_duplicates_and_the_deciding_signal(signals: PairSignals, method: Method) -> None:
    decision = decide(signals, T)
    assert decision is not None
    assert decision.method is method
    assert 0.0 <= decision.score <= 1.0


@pytest.mark.parametrize(
    "signals",
    [
        PairSignals(),
        PairSignals(cosine=0.939),
        PairSignals(phash_distance=9),
        PairSignals(cosine=0.85, phash_distance=21),
        PairSignals(cosine=0.79, phash_distance=10),
        # a missing pHash cannot make the combined rule fire
        PairSignals(cosine=0.9, phash_distance=None),
    ],
)
def test_not_duplicates(signals: PairSignals) -> None:
    assert decide(signals, T) is None


def test_scores() -> None:
    assert decide(PairSignals(cosine=0.96), T).score == pytest.approx(0.96)  # type: ignore[union-attr]
    assert decide(PairSignals(phash_distance=4), T).score == pytest.approx(1 - 4 / 64)  # type: ignore[union-attr]


def test_phash_distance_of_signed_int64s() -> None:
    # The hasher stores 64-bit hashes as signed bigints: the top bit is the sign.
    assert phash_distance(-1, 0) == 64
    assert phash_distance(-(2**63), 2**63 - 1) == 64
    assert phash_distance(0b1011, 0b0001) == 2
    assert phash_distance(-5, -5) == 0


def test_a_close_sub_view_makes_a_cropped_copy_a_cnn_duplicate() -> None:
    cropped = PairSignals(cosine=0.86, view_cosine=0.97)
    assert PairSignals(cosine=0.86, view_cosine=0.97).cnn == 0.97
    decision = decide(cropped, T)
    assert decision is not None
    assert (decision.method, decision.score) == (Method.CNN, 0.97)
    assert decide(PairSignals(cosine=0.86, view_cosine=0.90), T) is None
    assert PairSignals().cnn is None


G = GeometryThresholds(
    min_inliers=12, duplicate_iou=0.5, duplicate_agreement=0.7, rich_keypoints=200
)


def seen(inliers: int, iou: float, agreement: float, keypoints: int = 400) -> Overlap:
    return Overlap(inliers, iou, agreement, mirrored=False, keypoints=keypoints)


@pytest.mark.parametrize(
    ("signals", "relation"),
    [
        # the crops sharing a third of the width: the CNN is sure, the frames aren't
        (PairSignals(cosine=0.94, phash_distance=27, overlap=seen(60, 0.2, 1.0)), Relation.SIMILAR),
        # its stereo pair: pHash close, the frames overlap, but parallax changed the pixels
        (PairSignals(cosine=0.96, phash_distance=6, overlap=seen(80, 0.9, 0.4)), Relation.SIMILAR),
        # a 20 % crop of one picture, recompressed
        (
            PairSignals(cosine=0.97, phash_distance=4, overlap=seen(90, 0.64, 1.0)),
            Relation.DUPLICATE,
        ),
        # the features cannot tell (a tiny, flat picture): the CNN's word stands
        (PairSignals(cosine=0.95, overlap=seen(5, 0.1, 0.0, keypoints=80)), Relation.DUPLICATE),
        # two halves of a photo of coins: alike to the CNN, rich in corners, nothing shared
        (PairSignals(cosine=0.95, overlap=seen(5, 0.5, 0.0)), Relation.SIMILAR),
        (PairSignals(cosine=0.3, overlap=seen(5, 0.5, 0.0)), Relation.NEITHER),
        # a fit that shares (almost) nothing is no evidence either (a logo matched a detail)
        (PairSignals(cosine=0.3, overlap=seen(40, 0.01, 0.0)), Relation.NEITHER),
        (PairSignals(cosine=0.95), Relation.DUPLICATE),
        # an exact copy the CNN and pHash missed (hue shift): the geometry finds it
        (
            PairSignals(cosine=0.7, phash_distance=30, overlap=seen(200, 1.0, 0.98)),
            Relation.DUPLICATE,
        ),
        (PairSignals(cosine=0.5, phash_distance=30), Relation.NEITHER),
        (PairSignals(same_sha256=True, overlap=seen(300, 0.2, 0.1)), Relation.DUPLICATE),
    ],
)
def test_relations_and_their_evidence(signals: PairSignals, relation: Relation) -> None:
    verdict = relate(signals, T, G)
    assert verdict.relation is relation
    assert verdict.basis
    if relation is Relation.SIMILAR:
        reasons = ("IoU <", "agreement <", "no content in common")
        assert sum(r in verdict.basis for r in reasons) == 1


def test_a_geometric_duplicate_names_its_method_and_score() -> None:
    verdict = relate(PairSignals(cosine=0.6, overlap=seen(100, 0.93, 1.0)), T, G)
    assert verdict.duplicate is not None and verdict.duplicate.method is Method.GEOMETRY
    assert verdict.score == pytest.approx(0.93)


FLOORED = GeometryThresholds(12, 0.5, 0.7, 200, similar_agreement=0.3)


@pytest.mark.parametrize(
    ("signals", "unfloored", "floored"),
    [
        # two different photos with the same watermark: the identity fit on the mark alone,
        # the rest of the shared area disagrees (stacks3's unseen set: median 0.07)
        (PairSignals(cosine=0.4, overlap=seen(24, 0.89, 0.07)), Relation.SIMILAR, Relation.NEITHER),
        # the same, but alike to the CNN too: rich in corners, so no longer shared content,
        # yet still similar by looks (as two halves of one photo)
        (
            PairSignals(cosine=0.95, overlap=seen(24, 0.89, 0.07)),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
        # ... and where the features cannot tell, the CNN's word stands, as before
        (
            PairSignals(cosine=0.95, overlap=seen(24, 0.89, 0.07, keypoints=80)),
            Relation.SIMILAR,
            Relation.DUPLICATE,
        ),
        # a burst frame whose subject moved: part of the shared area agrees, still similar
        (PairSignals(cosine=0.4, overlap=seen(60, 0.8, 0.45)), Relation.SIMILAR, Relation.SIMILAR),
        # a crop across the cut: little shared, but what is shared agrees
        (PairSignals(cosine=0.6, overlap=seen(40, 0.3, 1.0)), Relation.SIMILAR, Relation.SIMILAR),
        # nothing textured in common (NaN) is no evidence of an overlay
        (
            PairSignals(cosine=0.6, overlap=seen(40, 0.3, float("nan"))),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
    ],
)
def test_an_overlay_alone_is_no_shared_scene(
    signals: PairSignals, unfloored: Relation, floored: Relation
) -> None:
    assert relate(signals, T, G).relation is unfloored
    verdict = relate(signals, T, FLOORED)
    assert verdict.relation is floored
    if floored is not unfloored:
        assert "an overlay only" in verdict.basis


SPREAD = GeometryThresholds(12, 0.5, 0.7, 200, similar_spread=0.15)


def spread(
    inliers: int, iou: float, agreement: float, cells: float, keypoints: int = 400
) -> Overlap:
    return Overlap(inliers, iou, agreement, mirrored=False, keypoints=keypoints, spread=cells)


@pytest.mark.parametrize(
    ("signals", "off", "on"),
    [
        # the same watermark on two textured photos: the identity fit on the mark, 1 of 36
        # cells; the rest disagrees, which passed for a burst
        (
            PairSignals(cosine=0.4, overlap=spread(24, 0.95, 0.05, 1 / 36)),
            Relation.SIMILAR,
            Relation.NEITHER,
        ),
        # the mark's cells the only textured ones shared (agreement 1.0), the CNN sure: the
        # pair passed for a copy; the inliers hold 2 of 36 cells, so the overlay decides
        (
            PairSignals(cosine=0.97, overlap=spread(40, 0.98, 1.0, 2 / 36)),
            Relation.DUPLICATE,
            Relation.NEITHER,
        ),
        # a flat copy (few keypoints): its inliers sit where its texture is, no evidence of
        # an overlay, so the CNN's word stands
        (
            PairSignals(cosine=0.97, overlap=spread(15, 0.98, 1.0, 2 / 36, keypoints=60)),
            Relation.DUPLICATE,
            Relation.DUPLICATE,
        ),
        # too few inliers for a fit: no evidence of an overlay, decided as before
        (
            PairSignals(cosine=0.97, overlap=spread(6, 0.98, 1.0, 1 / 36)),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
        # a burst frame: the inliers spread over the shared frame, still similar
        (
            PairSignals(cosine=0.4, overlap=spread(60, 0.8, 0.45, 0.5)),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
        # a crop across the cut: little shared, inliers across what is
        (
            PairSignals(cosine=0.6, overlap=spread(40, 0.3, 1.0, 0.6)),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
        # an edited copy stays a copy
        (
            PairSignals(cosine=0.9, overlap=spread(130, 0.98, 1.0, 0.4)),
            Relation.DUPLICATE,
            Relation.DUPLICATE,
        ),
        # no cell of the shared area is whole (NaN): no evidence of an overlay
        (
            PairSignals(cosine=0.6, overlap=spread(40, 0.1, 1.0, float("nan"))),
            Relation.SIMILAR,
            Relation.SIMILAR,
        ),
    ],
)
def test_a_fit_held_by_a_few_cells_is_an_overlay(
    signals: PairSignals, off: Relation, on: Relation
) -> None:
    assert relate(signals, T, G).relation is off
    verdict = relate(signals, T, SPREAD)
    assert verdict.relation is on
    assert ("of the shared cells" in verdict.basis) is (on is not off)


CORNERS = GeometryThresholds(12, 0.5, 0.7, 200, similar_keypoint_spread=0.2)


def corners(
    inliers: int, iou: float, cells: float, corner_cells: float, keypoints: int = 400
) -> Overlap:
    return Overlap(inliers, iou, 1.0, False, keypoints, spread=cells, keypoint_spread=corner_cells)


@pytest.mark.parametrize(
    ("overlap", "keypoints_needed", "on"),
    [
        # a mark on two photos rich in corners: 3 of the ~30 cells holding keypoints
        (corners(40, 0.98, 2 / 36, 3 / 30), 0, Relation.NEITHER),
        # a flat copy: its inliers hold few cells, but most of those with its corners
        (corners(15, 0.98, 2 / 36, 2 / 3, keypoints=20), 0, Relation.DUPLICATE),
        # a flat pair that reads low where its corners are: K2 (any count) marks it...
        (corners(15, 0.98, 1 / 36, 1 / 8, keypoints=20), 0, Relation.NEITHER),
        # ...K1 (rich only) leaves it to the CNN
        (corners(15, 0.98, 1 / 36, 1 / 8, keypoints=20), 200, Relation.DUPLICATE),
        # a narrow overlap: the spread speaks only on wide fits
        (corners(40, 0.3, 0.0, 0.0), 0, Relation.SIMILAR),
        # NaN (no shared cell with keypoints): no evidence
        (corners(40, 0.98, float("nan"), float("nan")), 0, Relation.DUPLICATE),
    ],
)
def test_a_fit_held_by_few_of_the_cells_with_keypoints_is_an_overlay(
    overlap: Overlap, keypoints_needed: int, on: Relation
) -> None:
    signals = PairSignals(cosine=0.97, overlap=overlap)
    assert relate(signals, T, G).relation is not Relation.NEITHER  # off: as before
    g = replace(CORNERS, keypoint_spread_keypoints=keypoints_needed)
    verdict = relate(signals, T, g)
    assert verdict.relation is on
    assert ("of the shared cells with keypoints" in verdict.basis) is (on is Relation.NEITHER)


@pytest.mark.parametrize(
    ("signals", "keypoints_needed", "on"),
    [
        # a shot sharing a strip of its scene: 4 inliers, the CNN 0.8 (under the duplicate bar)
        (
            PairSignals(cosine=0.8, phash_distance=30, overlap=seen(4, 0.2, 0.0)),
            0,
            Relation.SIMILAR,
        ),
        # less alike than the bar: neither, as before
        (
            PairSignals(cosine=0.7, phash_distance=30, overlap=seen(4, 0.2, 0.0)),
            0,
            Relation.NEITHER,
        ),
        # a flat pair (80 keypoints): only when the bar holds for any keypoint count
        (
            PairSignals(cosine=0.8, overlap=seen(4, 0.2, 0.0, keypoints=80)),
            200,
            Relation.NEITHER,
        ),
        (PairSignals(cosine=0.8, overlap=seen(4, 0.2, 0.0, keypoints=80)), 0, Relation.SIMILAR),
        # shared content decides as before: a copy stays a duplicate
        (PairSignals(cosine=0.8, overlap=seen(90, 0.9, 1.0)), 0, Relation.DUPLICATE),
    ],
)
def test_the_cnn_alone_makes_a_pair_with_nothing_in_common_similar_when_on(
    signals: PairSignals, keypoints_needed: int, on: Relation
) -> None:
    before = relate(signals, T, G).relation
    assert before is (Relation.DUPLICATE if on is Relation.DUPLICATE else Relation.NEITHER)
    g = replace(G, similar_cosine=0.75, similar_cosine_keypoints=keypoints_needed)
    verdict = relate(signals, T, g)
    assert verdict.relation is on
    assert ("CNN 0.80 >= 0.75" in verdict.basis) is (on is Relation.SIMILAR)


@pytest.mark.parametrize(
    ("motion", "second", "basis"),
    [
        (1.2, 0, None),  # a copy: its cells and its matches move as one
        (9.3, 0, "cells move apart 9.3 px >= 8.0"),
        (2.5, 20, "20 matches on a second motion >= 10"),  # a flat subject, moved corners
        (2.5, 9, None),  # too few to be more than mismatches
        (float("nan"), 0, None),  # not measured: no evidence
    ],
)
def test_a_copy_that_moves_is_another_view_and_says_which_way(
    motion: float, second: int, basis: str | None
) -> None:
    g = replace(G, duplicate_motion=8.0, duplicate_second_motion=10)
    fit = replace(seen(80, 0.92, 0.95), motion=motion, second_motion=second)
    verdict = relate(PairSignals(cosine=0.97, overlap=fit), T, g)
    assert verdict.relation is (Relation.DUPLICATE if basis is None else Relation.SIMILAR)
    assert basis is None or verdict.basis.endswith(basis)
    # off, neither moves a copy
    assert relate(PairSignals(cosine=0.97, overlap=fit), T, G).relation is Relation.DUPLICATE


def test_the_motion_is_measured_only_while_a_bar_reads_it() -> None:
    assert not G.measures_motion
    assert replace(G, duplicate_motion=8.0).measures_motion
    assert replace(G, duplicate_second_motion=15).measures_motion
