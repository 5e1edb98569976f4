"""Shared content found without keypoints: the two stored thumbnails aligned by phase
correlation (issue 28, stacks13).

ORB finds no fit between shots that share a strip of a soft or noisy frame (a burst frame
against the half it overlaps: 0-6 inliers on 40 % of each frame), so such shots stayed
out of their scene's stack. Their 128-px grey thumbnails (``overlap.Features.thumb``) still
line up: one is shifted (and, as the thumbnails are scaled to a long side, scaled) onto
the other, and the check's own cell agreement says whether the shared area shows the same
content. Only a shift and a scale are searched: a burst frame or a pan keeps the camera's
scale and roll within a few degrees, and a copy is the keypoint check's business.

Each scale scores two shifts (stacks14): phase correlation of the thumbnails as they are,
and of the thumbnails with their edges faded into their mean. Whitened correlation makes
much of the edges where a frame meets the canvas, so its highest peak sometimes lines up
the two frames rather than their content; fading the edges removes that peak, but also
the content near the edges, which a strip shared along one side needs. Of the tuning
split's 17 shared strips with no fit, the plain shift finds 6 and the faded one 7; the
better of the two finds 9, with no pair of two scenes passing; its draws' stacks recall
0.830 -> 0.896 (docs/duplicates/similar-log.md, stacks14). It doubles the alignment's cost.

Plain functions of two thumbnails: no I/O.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from imgflow_deduper.overlap import CELL_COVER, GRID, cell_index, cells_agreeing

# Thumbnails are scaled to a long side, so two crops of one frame differ in scale by their
# shapes (a half against a burst frame 8 % shorter: 1.087); these cover up to 15 %.
SCALES = (1 / 1.15, 1 / 1.075, 1.0, 1.075, 1.15)
CANVAS = 256  # twice a thumbnail's side: a shift of up to a whole frame does not wrap
MIN_CELLS = 3  # fewer shared cells is no alignment at all
FADE = 0.5  # the share of each side of a thumbnail faded (a Tukey window's alpha)


@dataclass(frozen=True)
class Alignment:
    """The best alignment found: the lower of the two frames' cell agreement (NaN: none
    found), the fewer of their cells the other covers, and the frames' IoU under it."""

    agreement: float = math.nan
    cells: int = 0
    iou: float = 0.0


def _padded(thumb: np.ndarray, fade: bool = False) -> np.ndarray:
    """On the canvas, padded with its own mean (a zero border's edge would be the strongest
    common feature); faded: its deviations from the mean tapered to none at its edges."""
    mean = float(thumb.mean())
    canvas = np.full((CANVAS, CANVAS), mean, np.float32)
    h, w = thumb.shape
    if fade:
        taper = np.outer(_tukey(h), _tukey(w)).astype(np.float32)
        canvas[:h, :w] = mean + (thumb.astype(np.float32) - mean) * taper
    else:
        canvas[:h, :w] = thumb
    return canvas


@functools.cache
def _tukey(n: int) -> np.ndarray:
    """A Tukey window of ``n`` samples, FADE of it tapered (scipy.signal.windows.tukey's,
    written out: numpy and OpenCV are the deduper's only array libraries, and OpenCV has
    only the full Hann window, which fades the shared strip away with the edges)."""
    x = np.linspace(0.0, 1.0, n)
    edge = FADE / 2
    window = np.ones(n)
    low, high = x < edge, x > 1 - edge
    window[low] = 0.5 * (1 + np.cos(np.pi * (x[low] / edge - 1)))
    window[high] = 0.5 * (1 + np.cos(np.pi * ((x[high] - 1) / edge + 1)))
    return window


def _covered_cells(covered: np.ndarray) -> int:
    """The cells that ``covered`` fills to CELL_COVER."""
    cell, size = cell_index(*covered.shape)
    filled = np.bincount(cell[covered.ravel()], minlength=GRID * GRID)
    return int((filled / size >= CELL_COVER).sum())


def _onto(ref: np.ndarray, other: np.ndarray, m: np.ndarray) -> tuple[float, int]:
    """``other`` mapped onto ``ref`` by ``m``: ref's cell agreement and covered cells."""
    h, w = ref.shape
    warped = cv2.warpAffine(other, m, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.warpAffine(np.full_like(other, 255), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    agreement = cells_agreeing(ref.astype(np.float64), warped.astype(np.float64), covered)
    return agreement, _covered_cells(covered)


def _iou(a: tuple[int, int], b: tuple[int, int], scale: float, dx: float, dy: float) -> float:
    """Of a's frame (h, w) and b's scaled by ``scale`` and put at (dx, dy) in it."""
    (ha, wa), (hb, wb) = a, b
    w = min(wa, dx + scale * wb) - max(0.0, dx)
    h = min(ha, dy + scale * hb) - max(0.0, dy)
    inter = max(0.0, w) * max(0.0, h)
    return inter / (wa * ha + scale * scale * wb * hb - inter)


def align(a: np.ndarray, b: np.ndarray) -> Alignment:
    """The two grey thumbnails aligned: for each scale, the shifts by phase correlation of
    the thumbnails as they are and faded, each scored by the cells' agreement in both
    frames; the best agreement over at least MIN_CELLS cells kept (then the most cells).
    The same whichever comes first."""
    if b.tobytes() < a.tobytes():
        a, b = b, a
    best = Alignment()
    targets = {fade: _padded(a, fade) for fade in (False, True)}
    for scale in SCALES:
        scaled = cv2.resize(b, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for fade, target in targets.items():
            (sx, sy), _ = cv2.phaseCorrelate(target, _padded(scaled, fade))
            # phaseCorrelate's shift is the other way round: b's point x lands on a's x - shift
            best = _better(best, a, b, scale, -sx, -sy)
    return best


def _better(
    best: Alignment, a: np.ndarray, b: np.ndarray, scale: float, dx: float, dy: float
) -> Alignment:
    """``best``, or b scaled and put at (dx, dy) on a where that agrees better."""
    m = np.float32([[scale, 0, dx], [0, scale, dy]])
    on_a, cells_a = _onto(a, b, m)
    if on_a < best.agreement or cells_a < MIN_CELLS:
        return best  # the lower of the two frames' cannot do better (NaN: not known yet)
    on_b, cells_b = _onto(b, a, cv2.invertAffineTransform(m))
    agreement, cells = float(np.fmin(on_a, on_b)), min(cells_a, cells_b)
    if math.isnan(agreement) or cells < MIN_CELLS:
        return best
    if math.isnan(best.agreement) or (agreement, cells) > (best.agreement, best.cells):
        return Alignment(agreement, cells, _iou(a.shape, b.shape, scale, dx, dy))
    return best
