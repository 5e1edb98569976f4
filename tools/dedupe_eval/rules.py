"""Pairs to groups for the eval: the deduper's decision and grouping, on the pair table.

``decided`` is ``decide()`` vectorised (with ``is_strong`` and the decision's score);
``check_against_decide`` proves it agrees with the deduper's own functions pair by pair.
The groups come from ``imgflow_runtime.grouping.group`` itself, the function the deduper
and the API call, so the eval measures the code that runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from imgflow_deduper.alignment import Alignment
from imgflow_deduper.decision import (
    MIN_SHARED_IOU,
    PHASH_BITS,
    SPREAD_MIN_IOU,
    GeometryThresholds,
    PairSignals,
    Relation,
    Thresholds,
    relate,
)
from imgflow_deduper.overlap import Overlap
from imgflow_deduper.strength import StrongThresholds, is_strong
from imgflow_runtime.grouping import Pair, Rule, group
from tools.dedupe_eval.geometry import NEAR_COSINE, NEAR_PHASH
from tools.dedupe_eval.metrics import Score, best, score
from tools.dedupe_eval.signals import PairTable


@dataclass(frozen=True)
class Setting:
    """Everything that turns signals into groups."""

    rule: Rule
    thresholds: Thresholds
    strong: StrongThresholds | None = None  # STRONG_LINK only
    min_density: Fraction = field(default=Fraction(1, 2))  # AVERAGE_LINK only
    # the geometric check: None groups every pair that looks alike, as before it
    geometry: GeometryThresholds | None = None
    # the check runs on pairs at least this alike to the CNN (or pHash-near, or duplicates):
    # the deduper's IMGFLOW_DEDUPE_PROBE_COSINE
    probe_cosine: float = NEAR_COSINE

    def describe(self) -> str:
        t = self.thresholds
        text = (f"cos>={t.cosine:.3g} | pHash<={t.phash_distance} | cos>={t.combined_cosine:.3g}"
                f" & pHash<={t.combined_phash_distance}")  # fmt: skip
        if self.rule is Rule.STRONG_LINK and self.strong:
            text += f"; strong: cos>={self.strong.cosine:.3g} | pHash<={self.strong.phash_distance}"
        if self.rule is Rule.AVERAGE_LINK:
            text += f"; density>={self.min_density}"
        if (g := self.geometry) is not None:
            text += (
                f"; geometry: shared content at >= {g.min_inliers} inliers, a copy at IoU"
                f" >= {g.duplicate_iou:.3g} & agreement >= {g.duplicate_agreement:.3g}, "
                f"no content in common when both have >= {g.rich_keypoints} keypoints"
                f" or the shared area agrees < {g.similar_agreement:.3g}; "
                f"neither when both are that rich and the inliers hold < {g.similar_spread:.3g}"
                " of its cells; "
                f"neither when both have >= {g.keypoint_spread_keypoints} keypoints and the"
                f" inliers hold < {g.similar_keypoint_spread:.3g} of its cells with keypoints; "
                f"checked from CNN >= {self.probe_cosine:.3g}"
            )
            if g.duplicate_motion > 0:
                text += f"; similar when a copy's cells move >= {g.duplicate_motion:.3g} px"
            if g.duplicate_second_motion > 0:
                text += (f"; similar when >= {g.duplicate_second_motion} left-out matches "
                         "move on a second motion")  # fmt: skip
            if g.similar_alignment > 0:
                text += (f"; similar when no content in common and the thumbnails align with"
                         f" agreement >= {g.similar_alignment:.3g} on >="
                         f" {g.similar_alignment_cells} cells")  # fmt: skip
        return text


def predicted(t: PairTable, th: Thresholds) -> np.ndarray:
    return (
        t.same_sha256
        | (t.cnn >= th.cosine)
        | ((t.cnn >= th.combined_cosine) & (t.phash_distance <= th.combined_phash_distance))
        | (t.phash_distance <= th.phash_distance)
    )


@dataclass(frozen=True)
class Related:
    """``relate()`` on every pair: the duplicate and the similar ones."""

    duplicate: np.ndarray
    similar: np.ndarray


def probed(t: PairTable, th: Thresholds, probe_cosine: float) -> np.ndarray:
    """The pairs the deduper's ``checks.judge`` runs the geometric check on: at least
    ``probe_cosine`` alike to the CNN, pHash-near, or duplicates by the CNN and pHash
    (where the table has the check's result: it ran on every pair that near or nearer)."""
    near = (t.cnn >= probe_cosine) | (t.phash_distance <= NEAR_PHASH) | predicted(t, th)
    return (t.inliers >= 0) & near


def related(
    t: PairTable, th: Thresholds, g: GeometryThresholds | None, probe_cosine: float = NEAR_COSINE
) -> Related:
    looks = predicted(t, th)
    if g is None:
        return Related(looks, np.zeros(len(looks), bool))
    checked = probed(t, th, probe_cosine)
    overlay = t.agreement < g.similar_agreement  # NaN: no such evidence (decision.overlay_only)
    # decision.overlay_fit: only an overlay in common, neither whatever the CNN says
    by_cells = (t.keypoints >= g.rich_keypoints) & (t.spread < g.similar_spread)
    by_corners = ((t.keypoints >= g.keypoint_spread_keypoints)
                  & (t.keypoint_spread < g.similar_keypoint_spread))  # fmt: skip
    marked = (checked & (t.iou >= SPREAD_MIN_IOU) & (t.inliers >= g.min_inliers)
              & (by_cells | by_corners))  # fmt: skip
    shared = checked & (t.inliers >= g.min_inliers) & (t.iou >= MIN_SHARED_IOU) & ~overlay
    unchanged = ~(t.agreement < g.duplicate_agreement)  # NaN: nothing to compare, unchanged
    moved = (g.duplicate_motion > 0) & (t.motion >= g.duplicate_motion)  # decision.moved
    moved |= (g.duplicate_second_motion > 0) & (t.second_motion >= g.duplicate_second_motion)
    copy = shared & (t.iou >= g.duplicate_iou) & unchanged & ~moved
    apart = checked & ~shared & (t.keypoints >= g.rich_keypoints)  # rich, nothing in common
    undecided = ~shared & ~apart  # no check, or one that cannot tell: CNN and pHash decide
    duplicate = t.same_sha256 | ((copy | (undecided & looks)) & ~marked)
    # decision.alike_scene: the CNN alone, where the check found nothing in common (stacks8)
    alike = (checked & ~shared & ~looks & (g.similar_cosine > 0) & (t.cnn >= g.similar_cosine)
             & (t.keypoints >= g.similar_cosine_keypoints))  # fmt: skip
    # decision.aligned_scene: the thumbnails align on a strip, where keypoints found nothing
    aligned = (checked & ~shared & ~looks & (g.similar_alignment > 0)
               & (t.aligned_agreement >= g.similar_alignment)
               & (t.aligned_cells >= g.similar_alignment_cells)
               & (t.aligned_iou >= MIN_SHARED_IOU) & (t.aligned_iou < g.duplicate_iou))  # fmt: skip
    similar = ~duplicate & ~marked & ((shared & ~copy) | (apart & looks) | alike | aligned)
    return Related(duplicate, similar)


@dataclass(frozen=True)
class Decided:
    """The duplicate pairs of a table: indices into it, their scores and strength."""

    rows: np.ndarray
    scores: np.ndarray
    strong: np.ndarray


def decided(
    t: PairTable,
    th: Thresholds,
    strong: StrongThresholds | None,
    geometry: GeometryThresholds | None = None,
    probe_cosine: float = NEAR_COSINE,
) -> Decided:
    rows = np.flatnonzero(related(t, th, geometry, probe_cosine).duplicate)
    cnn, dist, sha = t.cnn[rows], t.phash_distance[rows], t.same_sha256[rows]
    by_cnn = (cnn >= th.cosine) | ((cnn >= th.combined_cosine)
                                   & (dist <= th.combined_phash_distance))  # fmt: skip
    by_phash = dist <= th.phash_distance
    by_geometry = np.where(by_phash, 1.0 - dist / PHASH_BITS, t.iou[rows])
    scores = np.where(sha, 1.0, np.where(by_cnn, cnn, by_geometry))
    if strong is None:
        is_strong_ = np.ones(len(rows), bool)
    else:
        is_strong_ = sha | (cnn >= strong.cosine) | (dist <= strong.phash_distance)
    return Decided(rows, scores, is_strong_)


def pair_signals(t: PairTable, k: int, checked: bool = True) -> PairSignals:
    """The pair's signals as the deduper has them (``checked``: the check ran on it)."""
    view = None if np.isnan(t.view_cosine[k]) else float(t.view_cosine[k])
    found = None
    if checked and t.inliers[k] >= 0:
        found = Overlap(int(t.inliers[k]), float(t.iou[k]), float(t.agreement[k]), False,
                        int(t.keypoints[k]), float(t.spread[k]),
                        float(t.keypoint_spread[k]), float(t.common_keypoint_spread[k]),
                        float(t.motion[k]), max(0, int(t.second_motion[k])))  # fmt: skip
    aligned = None
    if found is not None and t.aligned_cells[k] >= 0:
        aligned = Alignment(float(t.aligned_agreement[k]), int(t.aligned_cells[k]),
                            float(t.aligned_iou[k]))  # fmt: skip
    return PairSignals(bool(t.same_sha256[k]), float(t.cosine[k]), int(t.phash_distance[k]),
                       view, found, aligned)  # fmt: skip


def check_against_decide(t: PairTable, setting: Setting) -> None:
    """The vectorised relations, score and strength equal the deduper's, pair by pair."""
    d = decided(t, setting.thresholds, setting.strong, setting.geometry, setting.probe_cosine)
    similar = related(t, setting.thresholds, setting.geometry, setting.probe_cosine).similar
    checked = probed(t, setting.thresholds, setting.probe_cosine)
    expected, expected_similar = [], []
    for k in range(len(t.i)):
        signals = pair_signals(t, k, bool(checked[k]))
        verdict = relate(signals, setting.thresholds, setting.geometry)
        expected_similar.append(verdict.relation is Relation.SIMILAR)
        if verdict.relation is Relation.DUPLICATE:
            decision = verdict.duplicate
            assert decision is not None
            strong = setting.strong is None or is_strong(decision, signals, setting.strong)
            expected.append((k, decision.score, strong))
    assert expected_similar == similar.tolist(), "vectorised relate() disagrees on similar"
    assert [k for k, _, _ in expected] == d.rows.tolist(), "vectorised relate() disagrees"
    assert np.allclose([s for _, s, _ in expected], d.scores, atol=1e-6), "scores disagree"
    assert [s for _, _, s in expected] == d.strong.tolist(), "strength disagrees"


def groups_of(t: PairTable, setting: Setting) -> list[frozenset[int]]:
    """The rule's groups of the table's images (indices as in the table)."""
    d = decided(t, setting.thresholds, setting.strong, setting.geometry, setting.probe_cosine)
    pairs = [
        Pair(int(t.i[k]), int(t.j[k]), float(s), bool(st))
        for k, s, st in zip(d.rows, d.scores, d.strong, strict=True)
    ]
    return list(group(pairs, setting.rule, min_density=setting.min_density).groups)


# Thresholds searched for the pair decision; wide enough for any cosine-scaled model.
GRID = {
    "cosine": np.round(np.arange(0.50, 0.99, 0.01), 3),
    "phash_distance": range(0, 17, 2),
    "combined_cosine": np.round(np.arange(0.40, 0.95, 0.02), 3),
    "combined_phash_distance": range(12, 27, 2),
}


def pair_sweep(t: PairTable) -> list[tuple[Thresholds, Score]]:
    """Pair P/R/F1 of every grid point (combined cosine below the CNN's own threshold)."""
    # Pairs no grid point can call duplicates are negatives throughout: score only the
    # rest, and add their positives as false negatives.
    near = (
        t.same_sha256
        | (t.cnn >= min(GRID["cosine"]))
        | (t.phash_distance <= max(GRID["phash_distance"]))
        | ((t.cnn >= min(GRID["combined_cosine"]))
           & (t.phash_distance <= max(GRID["combined_phash_distance"])))
    )  # fmt: skip
    far_fn = int(np.count_nonzero(~near & t.duplicate))
    sub = t.where(near)
    out = []
    for c, p, cc, cp in itertools.product(*GRID.values()):
        if cc >= c:
            continue
        th = Thresholds(float(c), int(p), float(cc), int(cp))
        s = score(predicted(sub, th), sub.duplicate)
        fn = s.false_negatives + far_fn
        recall = s.true_positives / (s.true_positives + fn) if s.true_positives + fn else 1.0
        f1 = 2 * s.precision * recall / (s.precision + recall) if s.precision + recall else 0.0
        out.append((th, Score(0, s.precision, recall, f1, s.true_positives,
                              s.false_positives, fn)))  # fmt: skip
    return out


def ladder(
    sweep: list[tuple[Thresholds, Score]], floors: tuple[float, ...]
) -> Iterator[tuple[float, Thresholds]]:
    """From tight to loose: the best pair thresholds at each pair-precision floor."""
    for floor in floors:
        chosen = best((s for _, s in sweep), floor)
        yield floor, next(th for th, s in sweep if s is chosen)
