"""The workers' one way to open an image: every format the API accepts, one error type.

Pillow 12+ reads AVIF itself; HEIC needs pillow-heif, registered here on import (its own
AVIF opener is left off: Pillow's plugin reads AVIF). Whatever Pillow or a plugin raises
for bytes that do not decode becomes ``UndecodableImage``, a ``PermanentError``: the stage
runner fails the stage at once, in every worker alike. Opening is lazy (header only); an
animated file is positioned on its first frame, which is the one every stage works on.

The EXIF orientation helpers live here too, since every stage that shows or compares
pixels must see them the way a viewer displays them.

Needs the ``imaging`` extra of imgflow-runtime (Pillow, pillow-heif).
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pillow_heif
from PIL import Image, UnidentifiedImageError

from imgflow_runtime.failures import PermanentError

pillow_heif.register_heif_opener()

ORIENTATION_TAG = 0x0112

# What each EXIF orientation needs to display upright (the table ImageOps.exif_transpose
# uses).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# What Pillow and its plugins raise for bytes that do not decode: truncated or corrupt
# data (OSError, which UnidentifiedImageError is; SyntaxError, EOFError, struct.error), bad
# values (ValueError, which is also what libheif's errors arrive as), too many pixels
# (DecompressionBombError), and the lookups and arithmetic a malformed header trips
# (TIFF's "Missing dimensions" is a TypeError). Work on bytes in memory is deterministic,
# so these are final. Not every Exception: a Celery soft time limit is one too, and is not
# the image's fault.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    EOFError,
    ValueError,
    struct.error,
    TypeError,
    LookupError,
    ArithmeticError,
    AttributeError,
    NotImplementedError,
    Image.DecompressionBombError,
)


class UndecodableImage(PermanentError):
    """The bytes are not an image this service can decode; retrying will not help, so the
    stage runner fails the stage at once with this reason."""


@contextmanager
def decode_errors() -> Iterator[None]:
    """Turn any decoding failure inside the block into ``UndecodableImage``.

    Everything done to the pixels of bytes already in memory is deterministic, so a
    block may hold conversions and resizes too: what fails there fails again.
    """
    try:
        yield
    except UndecodableImage:
        raise
    except DECODE_ERRORS as exc:
        raise UndecodableImage(describe(exc)) from exc


# Pillow names the stream it read in some messages: a Python repr, not a reason.
_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")
# Pillow's limits on PNG text and ICC chunks, enforced with a plain ValueError.
_METADATA_LIMITS = ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY")


def describe(exc: BaseException) -> str:
    """Why the image cannot be used, in words a person reads (no exception class names
    unless the parser gave no message at all). Always "cannot decode the image: ..."."""
    message = _REPR.sub("", str(exc)).strip()
    detail = f" ({message})" if message else ""
    if isinstance(exc, Image.DecompressionBombError):
        why = "it has too many pixels to decode safely" + detail
    elif any(limit in message for limit in _METADATA_LIMITS):
        why = "a text or ICC chunk in it is larger than allowed" + detail
    elif "truncated" in message or isinstance(exc, EOFError):
        why = "its data is cut short" + detail
    elif isinstance(exc, UnidentifiedImageError):
        why = "the bytes are not an image this service can read"
    else:
        why = message or type(exc).__name__
    return f"cannot decode the image: {why}"


def open_image(data: bytes) -> Image.Image:
    """Open lazily (header only); animated files are positioned on their first frame."""
    with decode_errors():
        return Image.open(io.BytesIO(data))


def has_alpha(image: Image.Image) -> bool:
    """An alpha channel, or a transparent colour key (PNG's ``tRNS`` on P, L or RGB)."""
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    )


def unpremultiplied(image: Image.Image) -> Image.Image:
    """LA or RGBA from premultiplied La or RGBa (which few of Pillow's conversions take)."""
    return image.convert(image.mode[:-1] + "A") if image.mode in ("La", "RGBa") else image


def is_deep_grey(mode: str) -> bool:
    """One channel of more than 8 bits: 16- and 32-bit integers (any byte order), floats."""
    return mode in ("I", "F") or mode.startswith("I;16")


def to_grey8(image: Image.Image) -> Image.Image:
    """8-bit ``L`` from a deep single-channel image, scaled rather than clipped.

    ``convert("L")`` clips at 255, which turns 16-bit scans white, and Pillow's ``point``
    refuses the big-endian 16-bit modes; going through 32-bit float works for them all.
    16-bit modes span 0-65535; 32-bit ``I`` declares no depth, so values past 255 are
    read as 16-bit data; floats in 0-1 are normalised data, others are taken as 0-255.
    """
    deep = image if image.mode == "F" else image.convert("F")
    low, high = deep.getextrema()
    if image.mode.startswith("I;16") or (image.mode == "I" and high > 255):
        scale = 255 / 65535
    elif image.mode == "F" and low >= 0 and high <= 1:
        scale = 255.0
    else:
        scale = 1.0
    if scale != 1.0:
        deep = deep.point(lambda v: v * scale)
    return deep.convert("L")  # rounds, and clips what lies outside 0-255


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) still to apply; 1 when absent or invalid.

    pillow-heif applies HEIF's own rotation while decoding and reports 1 here.
    """
    # Inside decode_errors: PNG and others decode the whole file to find their EXIF, and a
    # failure there must fail the image, not leave it half loaded. (Pillow itself shrugs
    # off malformed EXIF with a warning.)
    with decode_errors():
        value = image.getexif().get(ORIENTATION_TAG, 1)
    return value if value in TRANSPOSE else 1


def displayed_size(size: tuple[int, int], exif_orientation: int) -> tuple[int, int]:
    # Orientations 5-8 turn the image by 90 degrees, which swaps width and height.
    return (size[1], size[0]) if exif_orientation >= 5 else size


# Swapping is its own inverse: a displayed size in the stored frame's axes.
stored_size = displayed_size


def upright(image: Image.Image, exif_orientation: int) -> Image.Image:
    """``image`` as displayed: the transpose its EXIF orientation asks for, if any."""
    method = TRANSPOSE.get(exif_orientation)
    return image if method is None else image.transpose(method)
