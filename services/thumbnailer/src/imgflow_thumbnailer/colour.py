"""Colour: from whatever mode and profile an original has to 8-bit sRGB, with alpha kept.

Two steps, so the expensive one runs on few pixels: ``to_resizable`` makes an 8-bit mode
that resampling handles well (alpha premultiplied by Pillow, palettes expanded, 16-bit
scaled) without leaving the original's colour space; ``to_srgb`` then converts the
already-reduced image through its embedded ICC profile with LittleCMS.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from PIL import Image, ImageCms

from imgflow_runtime.imaging import has_alpha, is_deep_grey, to_grey8

log = logging.getLogger(__name__)

# Modes that resampling handles and whose colour space an embedded profile describes.
_RESIZABLE = {"L", "LA", "RGB", "RGBA", "CMYK"}
# Same colour space, other layout: alpha premultiplied, padding, or YCbCr.
_DIRECT = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "YCbCr": "RGB", "PA": "RGBA"}

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_resizable(image: Image.Image) -> Image.Image:
    """An 8-bit L, LA, RGB, RGBA or CMYK image in the original's colour space."""
    mode = image.mode
    if mode in ("L", "RGB") and has_alpha(image):
        return image.convert(mode + "A")  # the tRNS colour key becomes alpha
    if mode in _RESIZABLE:
        return image
    if mode in _DIRECT:
        return image.convert(_DIRECT[mode])
    if mode == "P":
        return image.convert("RGBA" if has_alpha(image) else "RGB")
    if is_deep_grey(mode):
        return to_grey8(image)
    if mode == "LAB":
        return ImageCms.applyTransform(image, _lab_to_srgb())
    # HSV and anything newer: Pillow's own conversion is the best guess.
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """RGB or RGBA in sRGB: through the embedded profile when there is a usable one."""
    if icc_profile and image.mode in _RESIZABLE:
        try:
            return _through_profile(image, icc_profile)
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            # Browsers ignore a broken profile and show the pixels as sRGB; so do we.
            log.warning("ignoring an unusable ICC profile: %s", exc)
    if image.mode in ("RGB", "RGBA"):
        return image
    return image.convert("RGBA" if has_alpha(image) else "RGB")


def _through_profile(image: Image.Image, icc_profile: bytes) -> Image.Image:
    if image.mode == "LA":
        # LittleCMS has no grey-with-alpha layout: convert the grey, then put alpha back.
        grey, alpha = image.split()
        rgb = ImageCms.applyTransform(grey, _transform(icc_profile, "L", "RGB"))
        rgb.putalpha(alpha)
        return rgb
    out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    return ImageCms.applyTransform(image, _transform(icc_profile, image.mode, out_mode))


@lru_cache(maxsize=16)
def _transform(icc_profile: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    # Cached: a batch of photos from one camera shares a profile, and building a transform
    # costs more than applying it to a thumbnail. Relative colorimetric, as libvips does:
    # colours inside sRGB (most of a photo from P3 or a print profile) come out exact,
    # where a print profile's perceptual tables would shift them all.
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    return ImageCms.buildTransform(
        source, _SRGB, in_mode, out_mode, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
    )


@lru_cache(maxsize=1)
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    return ImageCms.buildTransform(lab, _SRGB, "LAB", "RGB")
