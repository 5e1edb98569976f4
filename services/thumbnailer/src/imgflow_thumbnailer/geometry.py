"""Rendition geometry: how big each rendition is, and which part of the original it shows.

Pure arithmetic on sizes, so every rule (aspect kept, never upscaled, centred crop) is
tested without decoding an image.
"""

from __future__ import annotations

from enum import StrEnum


class Fit(StrEnum):
    INSIDE = "inside"  # the whole image, long side at most the size
    COVER = "cover"  # a centred square crop, side at most the size


def fit_inside(width: int, height: int, size: int) -> tuple[int, int]:
    """Dimensions with the long side at ``size``, aspect kept, never upscaled."""
    long_side = max(width, height)
    if long_side <= size:
        return width, height
    scale = size / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def target_size(width: int, height: int, size: int, fit: Fit) -> tuple[int, int]:
    """The rendition's dimensions for an image displayed at ``width`` x ``height``."""
    if fit is Fit.COVER:
        # A square never larger than the short side: cropping is fine, upscaling is not.
        side = min(size, width, height)
        return side, side
    return fit_inside(width, height, size)


def crop_box(width: int, height: int, fit: Fit) -> tuple[int, int, int, int]:
    """The part of a ``width`` x ``height`` image a rendition shows (left, top, right, bottom)."""
    if fit is Fit.INSIDE or width == height:
        return 0, 0, width, height
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side
