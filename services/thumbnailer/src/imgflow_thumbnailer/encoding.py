"""Encoding a rendition: WebP, JPEG or AVIF, with no metadata at all.

Renditions are public: they carry no EXIF (GPS, camera serials), XMP, comments or ICC
profile. Pixels are already sRGB, which is what a viewer assumes without a profile.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
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
    # libwebp's effort, 0-6, libwebp's default 4; ``webp_method_by_size`` overrides it per
    # rendition size (long side, px). Measured (make bench ARGS="--only thumbnails", the
    # per-size WebP table): at 600 px method 4 costs ~15 ms more than 2 for ~6 % fewer
    # bytes; at 300 and 150 px ~4 ms and ~1 ms for 3-4 %. The small sizes fill the grids
    # every visitor loads, so their bytes are kept small; the 600 px detail view, fetched
    # far less often, is where the CPU goes, so it is encoded at 2.
    webp_method: int = 4
    webp_method_by_size: tuple[tuple[int, int], ...] = ((600, 2),)
    # libavif's speed, 0-10 (10 fastest); AVIF encoding costs far more than WebP.
    avif_speed: int = 8

    def for_size(self, size: int) -> EncodeOptions:
        """The options for the rendition of long side ``size``."""
        method = dict(self.webp_method_by_size).get(size, self.webp_method)
        return self if method == self.webp_method else replace(self, webp_method=method)


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
