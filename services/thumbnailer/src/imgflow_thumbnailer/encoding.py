"""Encoding a rendition: WebP, JPEG or AVIF, with no metadata at all.

Renditions are public: they carry no EXIF (GPS, camera serials), XMP, comments or ICC
profile. Pixels are already sRGB, which is what a viewer assumes without a profile.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image


class OutputFormat(StrEnum):
    WEBP = "webp"
    JPEG = "jpeg"
    AVIF = "avif"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def keeps_alpha(self) -> bool:
        return self is not OutputFormat.JPEG


@dataclass(frozen=True)
class EncodeOptions:
    format: OutputFormat = OutputFormat.WEBP
    quality: int = 82
    # libwebp's effort, 0-6. Measured on 12 MP photos (make bench): 4 costs ~20 ms more
    # per image than 2 for 5% fewer bytes at the same quality. A rendition is encoded once
    # and downloaded on every view, so from about two views on the bytes cost more than
    # the CPU: keep libwebp's default, and lower it only to drain a backlog.
    webp_method: int = 4
    # libavif's speed, 0-10 (10 fastest); AVIF encoding costs far more than WebP.
    avif_speed: int = 8


# JPEG has no alpha: transparent areas become white, as on a typical page, not black.
_MATTE = (255, 255, 255)


def encode(image: Image.Image, options: EncodeOptions) -> bytes:
    """``image`` is RGB or RGBA; the result holds only the pixels. Clears ``image.info``."""
    if options.format is OutputFormat.JPEG and image.mode == "RGBA":
        matte = Image.new("RGB", image.size, _MATTE)
        matte.paste(image, mask=image.getchannel("A"))
        image = matte
    # Pillow carries the original's info (exif, icc_profile, xmp, comment) through every
    # resize, and some encoders write what they find there: start from none of it.
    image.info = {}
    out = io.BytesIO()
    if options.format is OutputFormat.WEBP:
        image.save(out, "WEBP", quality=options.quality, method=options.webp_method)
    elif options.format is OutputFormat.AVIF:
        image.save(out, "AVIF", quality=options.quality, speed=options.avif_speed)
    else:
        image.save(out, "JPEG", quality=options.quality, optimize=True)
    return out.getvalue()
