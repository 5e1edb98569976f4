"""One duplicate decision from every signal a pair of images has.

Signals: equal SHA-256 (the same bytes), the cosine similarity of the CNN embeddings (of
the whole images, or of one's whole frame and a crop of the other), and the Hamming
distance of the 64-bit perceptual hashes. Any one can be missing (the hasher's
pHash may not have arrived yet). Thresholds come from settings; ``make eval-dedupe``
measures them. Plain functions: no I/O, no Celery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from imgflow_deduper.alignment import Alignment
from imgflow_deduper.overlap import Overlap

PHASH_BITS = 64


class Method(StrEnum):
    SHA256 = "sha256"
    CNN = "cnn"
    PHASH = "phash"
    COMBINED = "cnn+phash"
    GEOMETRY = "geometry"  # the CNN and pHash missed it; the features' match is exact


@dataclass(frozen=True)
class PairSignals:
    same_sha256: bool = False
    cosine: float | None = None  # whole image against whole image
    phash_distance: int | None = None
    # best of one image's whole frame against the other's 80 % sub-views, both ways
    view_cosine: float | None = None
    # the geometric check (overlap.py); None where it found no consistent match or did not run
    overlap: Overlap | None = None
    # the thumbnails aligned without keypoints (alignment.py); None where not measured: it is
    # measured only where the check found nothing in common and nothing else relates them
    alignment: Alignment | None = None

    @property
    def cnn(self) -> float | None:
        """The CNN's similarity: the whole frames', or a sub-view's if that is closer."""
        known = [c for c in (self.cosine, self.view_cosine) if c is not None]
        return max(known) if known else None


@dataclass(frozen=True)
class Thresholds:
    cosine: float  # CNN alone: duplicate at or above
    phash_distance: int  # pHash alone: duplicate at or below
    combined_cosine: float  # both weaker signals together...
    combined_phash_distance: int  # ...also make a duplicate


@dataclass(frozen=True)
class Decision:
    method: Method
    # Similarity in [0, 1]: 1.0 for equal bytes, the cosine when the CNN decided or
    # agreed, otherwise 1 - distance / 64 for pHash.
    score: float


def phash_distance(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes stored as signed int64."""
    return ((a ^ b) & (2**PHASH_BITS - 1)).bit_count()


def decide(signals: PairSignals, t: Thresholds) -> Decision | None:
    """The pair's duplicate decision, or None when it is not a duplicate."""
    if signals.same_sha256:
        return Decision(Method.SHA256, 1.0)
    cos, dist = signals.cnn, signals.phash_distance
    if cos is not None and cos >= t.cosine:
        return Decision(Method.CNN, cos)
    both = cos is not None and dist is not None
    if both and cos >= t.combined_cosine and dist <= t.combined_phash_distance:
        return Decision(Method.COMBINED, cos)
    if dist is not None and dist <= t.phash_distance:
        return Decision(Method.PHASH, 1.0 - dist / PHASH_BITS)
    return None


class Relation(StrEnum):
    DUPLICATE = "duplicate"  # one picture: a copy, however edited
    SIMILAR = "similar"  # the same scene, another picture: a burst frame, another crop
    NEITHER = "neither"


@dataclass(frozen=True)
class GeometryThresholds:
    """When the geometric check decides (``make eval-dedupe`` measures them)."""

    min_inliers: int  # fewer consistent matches: no content in common found
    duplicate_iou: float  # a copy shows at least this much of the other's frame...
    duplicate_agreement: float  # ...and this share of the shared cells unchanged
    # Both images have at least this many keypoints, yet no content in common was found:
    # they are not copies (a copy of a picture rich in corners always matches). Fewer: a
    # tiny or flat picture, the check cannot tell and the CNN and pHash decide.
    rich_keypoints: int = 10**9
    # Shared content whose shared area agrees on less than this is no shared scene: two
    # different photos carrying the same watermark, caption or frame match on the overlay
    # alone (the identity fit), and the rest of the frame disagrees. 0: off.
    similar_agreement: float = 0.0
    # A fit between two images rich in corners (rich_keypoints) whose inliers hold less than
    # this share of the shared area's grid cells is carried by one small overlay (a
    # watermark, a caption, a logo on two different photos): the pair is neither, whatever
    # the CNN says. 0: off.
    similar_spread: float = 0.0
    # The same for the keypoint spread (Overlap.keypoint_spread: the inliers' share of the
    # shared cells that hold a keypoint of either image), between images with at least
    # ``keypoint_spread_keypoints`` keypoints each (0: any; the keypoint spread judges a
    # flat copy's few corners where its corners are). 0: off; the deduper's setting
    # IMGFLOW_DEDUPE_SIMILAR_KEYPOINT_SPREAD sets 0.2, any count (stacks7).
    similar_keypoint_spread: float = 0.0
    keypoint_spread_keypoints: int = 0
    # Checked, no content in common found, and the CNN and pHash call no duplicate: still
    # similar when the CNN is at least this alike and the poorer image has at least
    # ``similar_cosine_keypoints`` keypoints (stacks8: a shot sharing a strip of its scene
    # often fits on < 10 inliers). 0: off (tried, not chosen).
    similar_cosine: float = 0.0
    similar_cosine_keypoints: int = 0
    # A fit that could be a copy (IoU, agreement) whose cells move apart by at least this
    # many pixels of the 512-px analysis copy (Overlap.motion): another view or frame of
    # the scene, similar. 0: off (stacks10).
    duplicate_motion: float = 0.0
    # The same when at least this many of the matches the fit left out move together on
    # a second motion (Overlap.second_motion: a moved subject's corners). 0: off (stacks11).
    duplicate_second_motion: int = 0
    # Checked, no content in common found by keypoints, and the CNN and pHash call no
    # duplicate: still similar when the two thumbnails align (alignment.align) with at
    # least this cell agreement over ``similar_alignment_cells`` shared cells, over less of
    # the frames than a copy's IoU (stacks13: soft shots sharing a strip, where ORB finds no
    # fit). A wider alignment could be a copy, which only the keypoint check may call. 0: off.
    similar_alignment: float = 0.0
    similar_alignment_cells: int = 0

    @property
    def measures_motion(self) -> bool:
        """Whether a bar reads the overlap's motion (``overlap.overlap``'s ``motion``: not
        paid for while both are off)."""
        return self.duplicate_motion > 0 or self.duplicate_second_motion > 0


# A fit whose frames share less than this is no evidence of common content.
MIN_SHARED_IOU = 0.05
# The spread speaks only where the frames share most of their area (an overlay fits near
# the identity): a narrow shared strip has a few whole cells, and its inliers sit on the
# cells it covers in part (a burst frame's 10-15 inliers read 0.00 at IoU 0.2-0.3).
SPREAD_MIN_IOU = 0.5


@dataclass(frozen=True)
class Verdict:
    """A pair's relation and the evidence that decided it, to keep and to show."""

    relation: Relation
    basis: str  # which signals and thresholds decided, in words
    duplicate: Decision | None  # the CNN/pHash decision, when they call it a duplicate

    @property
    def score(self) -> float:
        return self.duplicate.score if self.duplicate else 0.0


def _without_geometry(looks: Decision | None, why: str) -> Verdict:
    if looks is None:
        return Verdict(Relation.NEITHER, "no signal", None)
    return Verdict(Relation.DUPLICATE, f"{looks.method}; {why}", looks)


def overlay_only(o: Overlap, g: GeometryThresholds) -> bool:
    """The match covers an overlay, not the scene: the shared area barely agrees. NaN
    agreement (nothing textured in common) is no such evidence."""
    return o.agreement < g.similar_agreement


def overlay_fit(o: Overlap, g: GeometryThresholds) -> bool:
    """A consistent fit over most of both frames whose inliers sit in a few of the shared
    area's cells, between two images rich in corners: all they have in common is an
    overlay. Few keypoints cover few cells whatever the fit (a flat copy's inliers sit
    where its texture is), so the plain spread needs rich images; the keypoint spread
    counts only the cells that hold keypoints. NaN (no such cell shared) is no evidence."""
    wide = o.iou >= SPREAD_MIN_IOU and o.inliers >= g.min_inliers
    by_cells = o.keypoints >= g.rich_keypoints and o.spread < g.similar_spread
    by_corners = (
        o.keypoints >= g.keypoint_spread_keypoints and o.keypoint_spread < g.similar_keypoint_spread
    )
    return wide and (by_cells or by_corners)


def _overlay_fit(o: Overlap, g: GeometryThresholds) -> str:
    """Which spread marked the overlay, in words."""
    if o.keypoints >= g.rich_keypoints and o.spread < g.similar_spread:
        return f"inliers in {o.spread:.2f} of the shared cells < {g.similar_spread}"
    return (
        f"inliers in {o.keypoint_spread:.2f} of the shared cells with keypoints"
        f" < {g.similar_keypoint_spread}"
    )


def alike_scene(signals: PairSignals, o: Overlap, g: GeometryThresholds) -> bool:
    """The CNN alone finds the scene alike (``similar_cosine``; off at 0)."""
    cnn = signals.cnn
    return (
        g.similar_cosine > 0
        and cnn is not None
        and cnn >= g.similar_cosine
        and o.keypoints >= g.similar_cosine_keypoints
    )


def aligned_scene(a: Alignment | None, g: GeometryThresholds) -> bool:
    """The thumbnails align on a shared strip of the scene (``similar_alignment``; off at 0)."""
    return (
        g.similar_alignment > 0
        and a is not None
        and a.agreement >= g.similar_alignment
        and a.cells >= g.similar_alignment_cells
        and MIN_SHARED_IOU <= a.iou < g.duplicate_iou
    )


def needs_alignment(verdict: Verdict, o: Overlap | None, g: GeometryThresholds | None) -> bool:
    """Whether the thumbnails' alignment could change ``verdict``: it was checked, found
    nothing in common, and nothing else relates the pair (what ``relate`` reads it for)."""
    return (
        g is not None
        and g.similar_alignment > 0
        and o is not None
        and verdict.relation is Relation.NEITHER
        and not shares_content(o, g)
    )


def shares_content(o: Overlap, g: GeometryThresholds) -> bool:
    """Enough consistent matches over enough of the frame, and not only an overlay."""
    return o.inliers >= g.min_inliers and o.iou >= MIN_SHARED_IOU and not overlay_only(o, g)


def _overlay_only(o: Overlap, g: GeometryThresholds) -> str:
    """Said of a fit good enough to judge: the agreement of fewer inliers is noise (and
    the worker does not measure it, overlap.overlap's ``min_inliers``)."""
    judged = o.inliers >= g.min_inliers and overlay_only(o, g)
    return f" < {g.similar_agreement}: an overlay only" if judged else ""


def relate(signals: PairSignals, t: Thresholds, g: GeometryThresholds | None) -> Verdict:
    """Duplicate, similar or neither. The CNN and pHash decide whether two images look
    alike; where the geometric check found enough matches, it decides which relation:
    a copy shows (nearly) all of the other's frame, unchanged; another picture of the
    scene shows part of it, or shows it changed (motion, parallax)."""
    looks = decide(signals, t)
    if signals.same_sha256:
        return Verdict(Relation.DUPLICATE, "same bytes", looks)
    o = signals.overlap
    if g is None or o is None:
        return _without_geometry(looks, "no geometric check")
    evidence = f"{o.inliers} inliers, IoU {o.iou:.2f}"
    if o.inliers >= g.min_inliers:  # a poorer fit's agreement is noise, and not measured
        evidence += f", agreement {o.agreement:.2f}"
    if overlay_fit(o, g):
        return Verdict(
            Relation.NEITHER,
            f"{evidence}; {_overlay_fit(o, g)}: only an overlay in common",
            None,
        )
    if not shares_content(o, g):
        if looks is None and alike_scene(signals, o, g):
            return Verdict(
                Relation.SIMILAR,
                f"CNN {signals.cnn:.2f} >= {g.similar_cosine}, no content in common "
                f"({evidence}; {o.keypoints} keypoints)",
                None,
            )
        a = signals.alignment
        if looks is None and a is not None and aligned_scene(a, g):
            return Verdict(
                Relation.SIMILAR,
                f"no content in common by keypoints ({evidence}); the thumbnails align over "
                f"IoU {a.iou:.2f}, agreement {a.agreement:.2f} >= {g.similar_alignment} "
                f"on {a.cells} cells",
                None,
            )
        if o.keypoints < g.rich_keypoints:
            return _without_geometry(
                looks, f"geometry inconclusive: {o.inliers} inliers{_overlay_only(o, g)}"
            )
        if looks is None:
            return Verdict(Relation.NEITHER, f"no signal; {evidence}{_overlay_only(o, g)}", None)
        # alike to the CNN or pHash, but no content in common: another view or frame
        return Verdict(
            Relation.SIMILAR,
            f"{looks.method}, but no content in common ({evidence}{_overlay_only(o, g)}; "
            f"{o.keypoints} keypoints)",
            looks,
        )
    # NaN agreement (nothing textured in common) counts as unchanged: IoU alone decides
    unchanged = not o.agreement < g.duplicate_agreement
    if o.iou >= g.duplicate_iou and unchanged and not moved(o, g):
        looks = looks or Decision(Method.GEOMETRY, o.iou)
        return Verdict(Relation.DUPLICATE, f"{looks.method}; {evidence}", looks)
    if o.iou < g.duplicate_iou:
        why = f"IoU < {g.duplicate_iou}"
    elif not unchanged:
        why = f"agreement < {g.duplicate_agreement}"
    elif _cells_moved(o, g):
        why = f"cells move apart {o.motion:.1f} px >= {g.duplicate_motion}"
    else:
        why = f"{o.second_motion} matches on a second motion >= {g.duplicate_second_motion}"
    return Verdict(Relation.SIMILAR, f"{evidence}: {why}", looks)


def _cells_moved(o: Overlap, g: GeometryThresholds) -> bool:
    return g.duplicate_motion > 0 and o.motion >= g.duplicate_motion


def moved(o: Overlap, g: GeometryThresholds) -> bool:
    """Whether the shared area still moves as another view's does: its cells apart (NaN:
    not measured, no evidence), or a second set of matches on a motion of its own."""
    second = g.duplicate_second_motion > 0 and o.second_motion >= g.duplicate_second_motion
    return _cells_moved(o, g) or second
