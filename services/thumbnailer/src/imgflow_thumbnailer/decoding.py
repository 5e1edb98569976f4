"""Opening an original: every format the API accepts, first frame only, at the least scale.

Pillow 12+ reads AVIF natively; HEIC needs pillow-heif, registered here. Decoding errors
from any of them become ``UndecodableImage``, the one error the worker maps to a failed
stage.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pillow_heif
from PIL import Image

# pillow-heif also offers AVIF; Pillow's own plugin reads it, so leave that one alone.
pillow_heif.register_heif_opener()

ORIENTATION_TAG = 0x0112

# What each EXIF orientation needs to display upright (the table ImageOps.exif_transpose
# uses); applied to the small rendition rather than the decoded original.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# What Pillow and its plugins raise for bytes that do not decode: truncated or corrupt
# data (OSError, SyntaxError, EOFError, struct.error), bad values (ValueError, which is
# also what libheif's errors arrive as), and too many pixels (DecompressionBombError).
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    struct.error,
    Image.DecompressionBombError,
)


class UndecodableImage(Exception):
    """The bytes are not an image this service can decode; retrying will not help."""


@contextmanager
def decode_errors() -> Iterator[None]:
    try:
        yield
    except DECODE_ERRORS as exc:
        raise UndecodableImage(f"{type(exc).__name__}: {exc}") from exc


def open_image(data: bytes) -> Image.Image:
    """Open lazily (header only); animated files are positioned on their first frame."""
    with decode_errors():
        return Image.open(io.BytesIO(data))


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) still to apply; 1 when absent or invalid.

    pillow-heif applies HEIF's own rotation while decoding and reports 1 here.
    """
    # Inside decode_errors: PNG and others decode the whole file to find their EXIF, and a
    # failure there must fail the image, not leave it half loaded. (Pillow itself shrugs
    # off malformed EXIF with a warning.)
    with decode_errors():
        value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if value in _TRANSPOSE else 1


def displayed_size(size: tuple[int, int], exif_orientation: int) -> tuple[int, int]:
    # Orientations 5-8 turn the image by 90 degrees, which swaps width and height.
    return (size[1], size[0]) if exif_orientation >= 5 else size


# Swapping is its own inverse: a displayed size in the stored frame's axes.
stored_size = displayed_size


def upright(image: Image.Image, exif_orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(exif_orientation)
    return image if method is None else image.transpose(method)


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
