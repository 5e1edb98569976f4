"""Bars added around a photo (letterbox, pillarbox, a plain frame) are not its content.

A copy padded to a square for a feed shows the same photo smaller, off-centre in the
model's square input: the CNN's similarity to the original fell below any threshold in
the eval (letterboxed halves were most of the pairs missed). Trimming near-black or
near-white lines of one flat colour from each edge gives back the photo's own frame.
Only such extreme, flat lines are trimmed, so a clear sky or a dark backdrop stays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

FLAT = 10  # a bar's line spans at most this many grey levels (JPEG noise included)
DARK, LIGHT = 24, 231  # a bar is about black or about white
MIN_SHARE = 0.02  # thinner than this is a frame line or noise, not a bar: keep it
MAX_SHARE = 0.45  # never trim more than this of a side's length from one edge


def _bar(lines: np.ndarray) -> int:
    """How many of the leading lines (rows of ``lines``) are one flat extreme colour."""
    low, high = lines.min(axis=1), lines.max(axis=1)
    flat = (high - low) <= FLAT
    extreme = (high <= DARK) | (low >= LIGHT)
    ok = flat & extreme
    # the same colour as the outermost line: a black bar does not continue into white
    ok &= np.abs(lines.mean(axis=1) - lines[0].mean()) <= FLAT
    if ok.all():  # one flat colour throughout: no photo inside to trim down to
        return 0
    run = int(np.argmin(ok))
    limit = int(MAX_SHARE * len(lines))
    return min(run, limit) if run >= MIN_SHARE * len(lines) else 0


def trim_bars(image: Image.Image) -> Image.Image:
    """The image without uniform black or white bars at its edges."""
    grey = np.asarray(image.convert("L"), dtype=np.int16)
    top, bottom = _bar(grey), _bar(grey[::-1])
    left, right = _bar(grey.T), _bar(grey.T[::-1])
    if not (top or bottom or left or right):
        return image
    w, h = image.size
    return image.crop((left, top, w - right, h - bottom))
