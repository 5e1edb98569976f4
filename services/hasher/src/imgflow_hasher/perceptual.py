"""Perceptual hashes (imagehash's pHash and dHash) as signed 64-bit integers.

PostgreSQL stores them in ``bigint`` columns: the 64 bits in imagehash's order (row-major,
most significant first, the order of ``str(hash)``) read as two's complement, so
``bit_count((a # b)::bit(64))`` is their Hamming distance.

pHash looks at 32x32 pixels and dHash at 9x8, so the source is made small before they
see it: a JPEG decodes its luma alone at 1/8 scale (``draft``), anything else is box
reduced; hashing never touches a full-size 12-megapixel decode.
"""

from __future__ import annotations

import imagehash
from PIL import Image

from imgflow_runtime.imaging import has_alpha, is_deep_grey, to_grey8, unpremultiplied

# The short side the hashes start from: twice pHash's 32 pixels, so its own Lanczos
# resize still averages over several source pixels.
HASH_SOURCE_SIDE = 64
_INT64_WRAP = 1 << 64
_INT64_TOP_BIT = 1 << 63
_WHITE = 255


def hash_source(image: Image.Image) -> Image.Image:
    """A small greyscale version of a lazily opened ``image`` (decodes it)."""
    image.draft("L", (HASH_SOURCE_SIDE, HASH_SOURCE_SIDE))
    grey = to_grey(image)
    factor = min(grey.size) // HASH_SOURCE_SIDE
    return grey.reduce(factor) if factor > 1 else grey


def to_grey(image: Image.Image) -> Image.Image:
    """8-bit luminance; transparent areas on white, as they are usually shown."""
    if is_deep_grey(image.mode):
        return to_grey8(image)
    image = unpremultiplied(image)
    if has_alpha(image):
        rgba = image.convert("RGBA")
        matte = Image.new("L", rgba.size, _WHITE)
        matte.paste(rgba.convert("L"), mask=rgba.getchannel("A"))
        return matte
    if image.mode == "LAB":
        return image.getchannel("L")
    return image.convert("L")


def phash(grey: Image.Image) -> int:
    return to_int64(imagehash.phash(grey))


def dhash(grey: Image.Image) -> int:
    return to_int64(imagehash.dhash(grey))


def to_int64(value: imagehash.ImageHash) -> int:
    unsigned = int(str(value), 16)
    return unsigned - _INT64_WRAP if unsigned & _INT64_TOP_BIT else unsigned


def to_hex(value: int) -> str:
    """The inverse of ``to_int64``: imagehash's own 16-digit form."""
    return f"{value % _INT64_WRAP:016x}"


def hamming(a: int, b: int) -> int:
    return ((a ^ b) % _INT64_WRAP).bit_count()
