"""How much of one picture another shows, and whether it shows it unchanged.

The CNN and pHash say two images look alike; they cannot say whether one is a copy of the
other (re-encoded, resized, cropped a little, colour-edited) or another picture of the same
scene (a burst frame, a crop that shares a third of the frame, a stereo view). Local
features with a geometric check can: ORB keypoints of both images are matched, RANSAC
fits one similarity transform (shift, scale, rotation) to the matches, and then

- ``iou``: the two frames' intersection over union once one is mapped onto the other. A
  copy cropped by 20 % keeps 0.64; two crops sharing a third of their width, about 0.2.
- ``agreement``: the share of the shared area's textured cells whose pixels still
  correlate after the mapping. Edits of one picture keep it near 1 (a watermark or a
  caption costs a cell or two); a burst frame whose subject moved, or a second viewpoint
  (parallax), does not.
- ``spread``: the share of the shared area's grid cells that hold an inlier, the lower of
  the two frames'. A fit carried by one small overlay (the same watermark, caption or logo
  on two different photos) holds a few cells; shared scene content holds inliers across the
  shared area. Unlike the agreement it counts flat cells too, so a watermark on fog or sky
  still reads as small.
- ``keypoint_spread``: the same share, counted only over the shared cells that hold a
  keypoint of either image (matched or not). A flat copy's few corners are judged against
  where its corners are, not against its empty sky; a watermark fit on two photos rich in
  corners still holds only the mark's cells of the many that hold keypoints.
- ``common_keypoint_spread``: the same over the shared cells that hold a keypoint of each
  image, the only cells where a match can lie: a copy that lost most of its corners
  (heavily compressed, scaled down) is judged where both still have some.
- ``motion``: how far the shared area's textured cells move apart from one another. b
  mapped onto a by the fit, each cell's shift by phase correlation; what is left once one
  affine motion of all the cells (the fit's own error) is taken out, its 90th percentile
  in pixels of the 512-px analysis copy. A copy is one transform of the other, so its
  cells move together; a second viewpoint (keystone, parallax) or a burst frame moves
  some apart, even where they still correlate (issue 28's soft second views). Measured
  only on a fit over most of both frames (IoU >= MOTION_MIN_IOU), the only ones that can
  be copies, and between frames larger than MOTION_MIN_SIDE (a smaller one's cells are
  too blurred to move by anything but noise).
- ``second_motion``: of the matches the fit left out, how many agree on a second motion
  that puts them SECOND_MIN_APART to SECOND_MAX_APART pixels from where the fit does. A
  copy's left-out matches are mismatches, scattered; a second view's moved subject (a
  step to the side, a subject too flat at the thumbnail's size for the cells to see)
  moves its corners together. Measured on the same fits as ``motion`` (stacks11), and on
  pictures too small for it: a small copy's left-out matches stay scattered (stacks16).

A mirrored copy is matched through the mirror image's features. A transform that shrinks
or grows the frame more than threefold is no match (features are compared at about one
size: a copy is never that far off; such fits pair a logo or a caption with a detail).
Few consistent matches (``inliers``) say nothing when an image has few corners (a tiny
or flat picture), but two images rich in corners that match nowhere share no content.
Plain functions on pixels: no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# One thread: a pool process is sized to its CPU share (worker.py), and OpenCV's own pool
# would spread over every core of the node. The results do not depend on it.
cv2.setNumThreads(1)

FEATURE_SIDE = 512  # the analysis copy's long side: features at the size it is stored
MIN_SIDE = 256  # smaller images are scaled up first, or ORB finds too few corners
THUMB_SIDE = 128  # pixels compared for agreement: small enough to ignore JPEG noise
# A frame (and as many of its mirror image). stacks9's keypoint_choice picked 2,000 on the
# tuning split; not adopted: 2.7x the CPU a check, and worse precision on two unseen
# sets through the API (docs/duplicates/similar-log.md, "Keypoints on the shared strip").
KEYPOINTS = 400
# cells per side, each given an equal share of the keypoints (0: ORB's own pick over the
# frame, which puts them where the corners are strongest, often not on the strip that two
# shots of a scene share); the share a flat cell cannot use goes to the strongest left
KEYPOINT_GRID = 0
KEYPOINT_POOL = 3000  # corners ORB ranks before the grid picks (a 512 px photo has ~1,100)
RATIO = 0.8  # Lowe's ratio test
RANSAC_PIXELS = 4.0  # reprojection error, in feature-image pixels
GRID = 6  # agreement cells per side of the reference frame
CELL_COVER = 0.9  # a cell counts when the other image covers this share of it...
CELL_TEXTURE = 4.0  # ...and it is not flat (grey-level std)
CELL_CORRELATION = 0.6  # a cell agrees at or above this correlation
MAX_SCALE = 3.0  # a fit that scales the frame by more (or less than its inverse): no match
MOTION_MIN_IOU = 0.5  # narrower fits are no copy whatever moves: motion not measured
# A frame of at most this long side (a source of MIN_SIDE px or less, scaled up for ORB):
# its thumbnail's cells are the upscaling's and its compression's blur, their shifts noise.
# On the tuning split a copy a third the size at JPEG quality 12 moved 8-26 px against its
# original (44 copies called similar), another view's 13-16 px (stacks15): no evidence.
# The cells' motion only: the second motion's keypoints still tell (stacks16).
MOTION_MIN_SIDE = MIN_SIDE
MOTION_MIN_RESPONSE = 0.1  # a cell's phase-correlation peak below it: its shift is noise
MOTION_MIN_CELLS = 6  # fewer cells measured: no evidence (NaN); an affine fits 3 exactly
MOTION_PERCENTILE = 90
# A second motion nearer than twice the fit's tolerance could hold the fit's own matches;
# one farther than an eighth of the frame is a repeated pattern matching itself a period
# on (a copy of a tiled wallpaper, 87 px), not a subject moved by a step to the side.
SECOND_MIN_APART = 2 * RANSAC_PIXELS
SECOND_MAX_APART = FEATURE_SIDE / 8
NAN = float("nan")


@dataclass(frozen=True)
class Detector:
    """Which keypoints a frame keeps: ``keypoints`` of them, picked by ORB over the whole
    frame (``grid`` 0) or an equal share in each of ``grid`` x ``grid`` cells."""

    keypoints: int = KEYPOINTS
    grid: int = KEYPOINT_GRID


DETECTOR = Detector()


@dataclass(frozen=True)
class Side:
    """One orientation's keypoints (x, y in feature pixels) and ORB descriptors."""

    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8


@dataclass(frozen=True)
class Features:
    size: tuple[int, int]  # the feature image's width and height
    direct: Side
    mirrored: Side  # of the mirror image, points in its own coordinates
    thumb: np.ndarray  # grey, long side THUMB_SIDE


@dataclass(frozen=True)
class Overlap:
    """The geometric evidence for a pair: how much content they share, how unchanged."""

    inliers: int  # matches consistent with the one transform (0: no fit)
    iou: float
    agreement: float  # NaN when no cell was textured and covered
    mirrored: bool
    keypoints: int = 0  # the poorer image's keypoint count: few make a poor match no evidence
    spread: float = float("nan")  # share of the shared cells holding an inlier; NaN: none shared
    # the same share of the shared cells holding a keypoint of either image; NaN: none such
    keypoint_spread: float = float("nan")
    # ...and of those holding a keypoint of each image (stacks6, eval only)
    common_keypoint_spread: float = float("nan")
    # how far the shared cells move apart, 512-px units; NaN: not measured (stacks10)
    motion: float = float("nan")
    # matches on a second motion of the left-out ones; 0: none, or not measured (stacks11)
    second_motion: int = 0


def _per_cell(
    keypoints: Sequence[cv2.KeyPoint], count: int, grid: int, size: tuple[int, int]
) -> list[cv2.KeyPoint]:
    """``count`` of ``keypoints``: the strongest ``count // grid**2`` of each cell, then the
    strongest of the rest until ``count``."""
    if len(keypoints) <= count:
        return list(keypoints)
    w, h = size
    xy = np.float32([k.pt for k in keypoints])
    cell = (np.clip((xy[:, 1] * grid / h).astype(int), 0, grid - 1) * grid
            + np.clip((xy[:, 0] * grid / w).astype(int), 0, grid - 1))  # fmt: skip
    strength = np.float32([k.response for k in keypoints])
    order = np.lexsort((-strength, cell))  # by cell, the strongest first
    first = np.searchsorted(cell[order], cell[order])  # where each one's cell starts
    rank = np.empty(len(order), int)
    rank[order] = np.arange(len(order)) - first
    kept = rank < count // grid**2
    rest = np.flatnonzero(~kept)
    kept[rest[np.argsort(-strength[rest], kind="stable")[: count - int(kept.sum())]]] = True
    return [keypoints[k] for k in np.flatnonzero(kept)]


def _side(grey: np.ndarray, orb: cv2.ORB, detector: Detector) -> Side:
    if detector.grid:
        found = _per_cell(orb.detect(grey, None), detector.keypoints, detector.grid,
                          (grey.shape[1], grey.shape[0]))  # fmt: skip
        keypoints, descriptors = orb.compute(grey, found)
    else:
        keypoints, descriptors = orb.detectAndCompute(grey, None)
    if descriptors is None:
        return Side(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    return Side(np.float32([k.pt for k in keypoints]), descriptors)


def features(image: Image.Image, detector: Detector = DETECTOR) -> Features:
    """Features of an RGB or grey image (bars already trimmed)."""
    grey = image.convert("L")
    long_side = max(grey.size)
    target = min(max(long_side, MIN_SIDE), FEATURE_SIDE)
    if target != long_side:
        scale = target / long_side
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BILINEAR)
    pixels = np.asarray(grey)
    orb = cv2.ORB_create(nfeatures=KEYPOINT_POOL if detector.grid else detector.keypoints)
    thumb = grey.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX)
    return Features(
        size=grey.size,
        direct=_side(pixels, orb, detector),
        mirrored=_side(np.ascontiguousarray(pixels[:, ::-1]), orb, detector),
        thumb=np.asarray(thumb),
    )


@dataclass(frozen=True)
class _Fit:
    transform: np.ndarray  # b's points to a's
    a_points: np.ndarray  # the inliers in a's frame
    b_points: np.ndarray  # and in b's (of the side fitted)
    left_out: tuple[np.ndarray, np.ndarray]  # the good matches the fit left out: (b's, a's)

    @property
    def inliers(self) -> int:
        return len(self.a_points)


def _fit(a: Side, b: Side) -> _Fit | None:
    """The similarity transform from b's points to a's, with its inliers."""
    if len(a.points) < 2 or len(b.points) < 2:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(b.descriptors, a.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 3:
        return None
    src = b.points[[m.queryIdx for m in good]]
    dst = a.points[[m.trainIdx for m in good]]
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS
    )
    if transform is None:
        return None
    scale = abs(float(np.linalg.det(transform[:, :2]))) ** 0.5
    if not 1 / MAX_SCALE <= scale <= MAX_SCALE:
        return None
    kept = inliers.ravel().astype(bool)
    return _Fit(transform, dst[kept], src[kept], (src[~kept], dst[~kept]))


def _second_motion(fit: _Fit) -> int:
    """``Overlap.second_motion``: the left-out matches fitted again (the same model and
    tolerance); its inliers when the two motions put them SECOND_MIN_APART to
    SECOND_MAX_APART apart (median), else 0."""
    src, dst = fit.left_out
    if len(src) < 3:
        return 0
    transform, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PIXELS
    )
    if transform is None:
        return 0
    kept = src[inliers.ravel().astype(bool)][None]
    if kept.shape[1] == 0:
        return 0
    apart = np.linalg.norm(
        cv2.transform(kept, fit.transform) - cv2.transform(kept, transform), axis=2
    )
    return kept.shape[1] if SECOND_MIN_APART <= float(np.median(apart)) <= SECOND_MAX_APART else 0


def _corners(w: int, h: int) -> np.ndarray:
    return np.float32([[0, 0], [w, 0], [w, h], [0, h]])


def _iou(transform: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    mapped = cv2.transform(_corners(*b)[None], transform)[0]
    inter, _ = cv2.intersectConvexConvex(_corners(*a), mapped)
    area_b = b[0] * b[1] * abs(float(np.linalg.det(transform[:, :2])))
    union = a[0] * a[1] + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def _thumb_transform(
    a_thumb: np.ndarray, a_size: tuple[int, int], b_thumb: np.ndarray,
    transform: np.ndarray, b_size: tuple[int, int],
) -> np.ndarray:  # fmt: skip
    """``transform`` (b's feature pixels to a's) between the two thumbnails."""
    to_a = np.diag([a_thumb.shape[1] / a_size[0], a_thumb.shape[0] / a_size[1], 1.0])
    from_b = np.diag([b_size[0] / b_thumb.shape[1], b_size[1] / b_thumb.shape[0], 1.0])
    return (to_a @ np.vstack([transform, [0, 0, 1]]) @ from_b)[:2]


def _agreement(
    a_thumb: np.ndarray,
    a_size: tuple[int, int],
    b_thumb: np.ndarray,
    transform: np.ndarray,
    b_size: tuple[int, int],
) -> float:
    """Share of a's covered, textured cells whose pixels correlate with b's mapped there."""
    ta, tb = a_thumb, b_thumb
    m = _thumb_transform(ta, a_size, tb, transform, b_size)
    h, w = ta.shape
    warped = cv2.warpAffine(tb, m, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.full_like(tb, 255), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    # grey levels are integers: float64 sums of them and their products are exact
    return cells_agreeing(ta.astype(np.float64), warped.astype(np.float64), covered)


def _cells(pixels: np.ndarray, h: int, w: int) -> np.ndarray:
    """The GRID x GRID cells of ``h`` x ``w`` pixels each (any remainder strip left out),
    stacked in row order: (GRID**2, h, w)."""
    top = pixels[: h * GRID, : w * GRID].reshape(GRID, h, GRID, w)
    return top.swapaxes(1, 2).reshape(GRID * GRID, h, w)


def _cell_shifts(ref: np.ndarray, warped: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Each cell's shift between ``ref`` and ``warped`` by phase correlation, (dx, dy) in
    pixels, NaN where the cell is not wholly covered, flat in either image, or its peak
    under MOTION_MIN_RESPONSE. All cells in one batch of FFTs (OpenCV's phaseCorrelate one
    cell at a time was most of the measure's CPU); its peak and 3 x 3 centroid as there."""
    ch, cw = ref.shape[0] // GRID, ref.shape[1] // GRID
    a, b = _cells(ref, ch, cw), _cells(warped, ch, cw)
    usable = _cells(covered, ch, cw).all(axis=(1, 2))
    usable &= (a.std(axis=(1, 2)) >= CELL_TEXTURE) & (b.std(axis=(1, 2)) >= CELL_TEXTURE)
    window = np.outer(np.hanning(ch), np.hanning(cw))
    cross = np.fft.rfft2(a * window) * np.conj(np.fft.rfft2(b * window))
    cross /= np.maximum(np.abs(cross), 1e-12)
    surface = np.fft.irfft2(cross, s=(ch, cw))
    py, px = np.unravel_index(surface.reshape(len(surface), -1).argmax(axis=1), (ch, cw))
    oy, ox = np.mgrid[-1:2, -1:2]
    around = surface[np.arange(len(surface))[:, None, None],
                     (py[:, None, None] + oy) % ch, (px[:, None, None] + ox) % cw]  # fmt: skip
    response = around.sum(axis=(1, 2))
    safe = np.where(response == 0, 1.0, response)
    dy = py + (around * oy).sum(axis=(1, 2)) / safe
    dx = px + (around * ox).sum(axis=(1, 2)) / safe
    shifts = np.stack([(dx + cw / 2) % cw - cw / 2, (dy + ch / 2) % ch - ch / 2], axis=1)
    shifts[~(usable & (response >= MOTION_MIN_RESPONSE))] = np.nan
    return shifts


def _motion(
    a: Features, b_thumb: np.ndarray, b_size: tuple[int, int], transform: np.ndarray
) -> float:
    """``Overlap.motion``: b mapped onto a by the fit, each of a's cells' shift against it,
    and what is left once one affine motion of all the cells is taken out (the fit's own
    error is one; a copy has no other)."""
    ta, tb = a.thumb.astype(np.float64), b_thumb.astype(np.float64)
    m = _thumb_transform(ta, a.size, tb, transform, b_size)
    h, w = ta.shape
    warped = cv2.warpAffine(tb, m, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.full_like(b_thumb, 255), m, (w, h), flags=cv2.INTER_NEAREST)
    shifts = _cell_shifts(ta, warped, covered > 0)
    measured = np.flatnonzero(~np.isnan(shifts[:, 0]))
    if len(measured) < MOTION_MIN_CELLS:
        return NAN
    column, row = measured % GRID + 0.5, measured // GRID + 0.5
    centres = np.stack([column * (w // GRID), row * (h // GRID), np.ones(len(measured))], 1)
    moved = shifts[measured]
    affine, *_ = np.linalg.lstsq(centres, moved, rcond=None)
    left = np.linalg.norm(moved - centres @ affine, axis=1) * FEATURE_SIDE / max(w, h)
    return float(np.percentile(left, MOTION_PERCENTILE))


@functools.lru_cache(maxsize=64)
def cell_index(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's GRID x GRID cell of an h x w image, flat in row order, and each cell's
    pixel count (at least 1). A library's thumbnails come in a few shapes, so each is made
    once: the alignment asks for it up to 40 times a pair. Read-only, as it is shared;
    64 shapes at most are kept (128 kB each at most), whatever the aspect ratios seen."""
    rows = np.searchsorted(np.linspace(0, h, GRID + 1).astype(int), np.arange(h), "right") - 1
    cols = np.searchsorted(np.linspace(0, w, GRID + 1).astype(int), np.arange(w), "right") - 1
    cell = (rows[:, None] * GRID + cols[None, :]).ravel()
    size = np.maximum(np.bincount(cell, minlength=GRID * GRID), 1)
    cell.setflags(write=False)
    size.setflags(write=False)
    return cell, size


def cells_agreeing(ref: np.ndarray, warped: np.ndarray, covered: np.ndarray) -> float:
    """Of the GRID x GRID cells that ``covered`` fills to CELL_COVER and that are textured
    in both images, the share whose covered pixels correlate. Per-cell sums by bincount,
    not a loop of numpy calls per cell: that loop was half a check's CPU."""
    cell, size = cell_index(*ref.shape)
    inside = covered.ravel()
    n = np.bincount(cell[inside], minlength=GRID * GRID)
    p, q, at = ref.ravel()[inside], warped.ravel()[inside], cell[inside]

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(at, values, GRID * GRID) / np.maximum(n, 1)

    mp, mq = mean(p), mean(q)
    # population moments about each cell's mean (np.std's and np.corrcoef's)
    vp = np.maximum(mean(p * p) - mp * mp, 0.0)
    vq = np.maximum(mean(q * q) - mq * mq, 0.0)
    cov = mean(p * q) - mp * mq
    counted = (n > 0) & (n / size >= CELL_COVER)
    counted &= (np.sqrt(vp) >= CELL_TEXTURE) & (np.sqrt(vq) >= CELL_TEXTURE)
    if not counted.any():
        return float("nan")
    corr = cov[counted] / np.sqrt(vp[counted] * vq[counted])
    return float((corr >= CELL_CORRELATION).sum() / counted.sum())


def _shared_cells(
    size: tuple[int, int], to_other: np.ndarray, other: tuple[int, int]
) -> np.ndarray:
    """Which of this frame's GRID x GRID cells lie inside the other frame (mapped by
    ``to_other``, CELL_COVER of a cell), flat in row order."""
    w, h = size
    steps = (np.arange(8) + 0.5) / 8  # 8 x 8 samples a cell tell how much of it is covered
    cx, cy = np.meshgrid(np.arange(GRID), np.arange(GRID))
    sx, sy = np.meshgrid(steps, steps)
    xs = (cx.ravel()[:, None] + sx.ravel()[None]) * w / GRID
    ys = (cy.ravel()[:, None] + sy.ravel()[None]) * h / GRID
    mapped = cv2.transform(np.stack([xs, ys], -1).reshape(1, -1, 2), to_other)[0]
    inside = ((mapped[:, 0] >= 0) & (mapped[:, 0] < other[0])
              & (mapped[:, 1] >= 0) & (mapped[:, 1] < other[1]))  # fmt: skip
    return inside.reshape(GRID * GRID, -1).mean(axis=1) >= CELL_COVER


def _held_cells(size: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Which of this frame's cells hold at least one of ``points`` (those outside the
    frame, such as the other image's points mapped here, hold none)."""
    w, h = size
    points = points.reshape(-1, 2)
    inside = (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)
    points = points[inside]
    col = np.clip((points[:, 0] * GRID / w).astype(int), 0, GRID - 1)
    row = np.clip((points[:, 1] * GRID / h).astype(int), 0, GRID - 1)
    held = np.zeros(GRID * GRID, bool)
    held[row * GRID + col] = True
    return held


def _share(held: np.ndarray, among: np.ndarray) -> float:
    return float((held & among).sum() / among.sum()) if among.any() else float("nan")


def _spreads(
    size: tuple[int, int],
    inliers: np.ndarray,
    keypoints: np.ndarray,
    to_other: np.ndarray,
    other: tuple[int, int],
    other_keypoints: np.ndarray,
) -> tuple[float, float, float]:
    """In this frame: the share of the cells shared with the other frame that hold an
    inlier (the spread), and that share among the shared cells holding a keypoint of
    either image (the other's mapped here by the inverse of ``to_other``), and of each."""
    shared = _shared_cells(size, to_other, other)
    held = _held_cells(size, inliers)
    theirs = cv2.transform(other_keypoints.reshape(1, -1, 2), cv2.invertAffineTransform(to_other))
    mine, other_cells = _held_cells(size, keypoints), _held_cells(size, theirs)
    return (
        _share(held, shared),
        _share(held, shared & (mine | other_cells)),
        _share(held, shared & mine & other_cells),
    )


def overlap(a: Features, b: Features, min_inliers: int = 0, *, motion: bool = True) -> Overlap:
    """The pair's geometric evidence; 0 inliers with no consistent fit.

    The same whichever image comes first. The worker checks (image checked, candidate),
    the eval (earlier, later in its set), and measured one way their verdicts differed:
    so the fit is made in one order, chosen by content, and the agreement is the lower of
    the two frames' (each frame's cells against the other mapped onto it).

    A fit of fewer than ``min_inliers`` is no content in common whatever else it shows
    (``decision.shares_content``), so its agreement and spreads stay NaN: on look-alikes
    that share nothing, the usual candidates, they were most of a check's CPU. The eval
    passes 0 (everything, for its threshold sweeps); the worker its own threshold. Without
    ``motion`` (the worker, while its bars are off) the cells' motion stays NaN and the
    second motion 0."""
    if b.thumb.tobytes() < a.thumb.tobytes():
        a, b = b, a
    keypoints = min(len(a.direct.points), len(b.direct.points))
    best: tuple[_Fit, bool] | None = None
    for mirrored, side in ((False, b.direct), (True, b.mirrored)):
        fitted = _fit(a.direct, side)
        if fitted is not None and (best is None or fitted.inliers > best[0].inliers):
            best = (fitted, mirrored)
        if best is not None and best[0].inliers >= 30:  # plenty: the mirror cannot do better
            break
    if best is None:
        return Overlap(0, 0.0, float("nan"), mirrored=False, keypoints=keypoints)
    fit, mirrored = best
    transform, inverse = fit.transform, cv2.invertAffineTransform(fit.transform)
    if fit.inliers < min_inliers:
        return Overlap(
            fit.inliers,
            _iou(transform, a.size, b.size),
            float("nan"),
            mirrored=mirrored,
            keypoints=keypoints,
        )
    thumb = np.ascontiguousarray(b.thumb[:, ::-1]) if mirrored else b.thumb
    # in both frames: a copy shows the other unchanged in each; a moved subject shows in
    # at least one (one way only, a burst frame read 0.65 against 0.73 the other way)
    onto_a = _agreement(a.thumb, a.size, thumb, transform, b.size)
    onto_b = _agreement(thumb, b.size, a.thumb, inverse, a.size)
    fitted = b.mirrored if mirrored else b.direct
    in_a = _spreads(a.size, fit.a_points, a.direct.points, inverse, b.size, fitted.points)
    in_b = _spreads(b.size, fit.b_points, fitted.points, transform, a.size, a.direct.points)
    iou = _iou(transform, a.size, b.size)
    measured = motion and iou >= MOTION_MIN_IOU
    sharp = min(max(a.size), max(b.size)) > MOTION_MIN_SIDE
    moved = _motion(a, thumb, b.size, transform) if measured and sharp else NAN
    return Overlap(
        inliers=fit.inliers,
        iou=iou,
        agreement=float(np.fmin(onto_a, onto_b)),  # NaN only when neither has a cell
        mirrored=mirrored,
        keypoints=keypoints,
        spread=float(np.fmin(in_a[0], in_b[0])),
        keypoint_spread=float(np.fmin(in_a[1], in_b[1])),
        common_keypoint_spread=float(np.fmin(in_a[2], in_b[2])),
        motion=moved,
        second_motion=_second_motion(fit) if measured else 0,
    )
