"""Decoding an original for its renditions: at the least scale JPEG allows.

Opening, decoding errors and EXIF orientation are the workers' shared ones
(``imgflow_runtime.imaging``); what is the thumbnailer's own is how far decoding may
shrink the pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from imgflow_runtime.imaging import decode_errors, displayed_size, orientation, stored_size


@dataclass(frozen=True)
class Loaded:
    """What decoding left to do: the orientation still to apply, and the full size shown."""

    orientation: int
    displayed: tuple[int, int]


def load_scaled(image: Image.Image, wanted: Callable[[int, int], tuple[int, int]]) -> Loaded:
    """Decode the pixels in place, letting JPEG skip what the renditions do not need.

    ``wanted(width, height)`` is the largest rendition's size for an image shown at that
    size. ``draft`` then picks the largest DCT scale (1/2, 1/4 or 1/8) that keeps both
    sides at least that big, so libjpeg-turbo runs its inverse DCT on a fraction of the
    pixels; other formats decode at full size and ignore it.
    """
    full_size = image.size
    pending = orientation(image)
    with decode_errors():
        image.draft(None, stored_size(wanted(*displayed_size(full_size, pending)), pending))
        image.load()
    # Some readers (Pillow's TIFF) turn the image upright while loading, report the upright
    # size from the start and drop the tag: what is left after loading is what counts.
    left = orientation(image)
    return Loaded(left, displayed_size(full_size, left))
