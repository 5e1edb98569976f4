"""Edited copies: what people do to a photo before uploading it again.

Each edit maps the original shot to the bytes a client would upload. The first thirteen
were the set's from the start; the last six are the issue's (small rotation, letterbox,
corner watermark, hue shift, downscale with heavy JPEG, brightness with contrast).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps


def encode(image: Image.Image, fmt: str = "JPEG", **options: int) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))


def straighten(image: Image.Image, degrees: float) -> Image.Image:
    """Rotated, then cropped to the frame that has no filled corners, as a phone's
    straighten tool does (without scaling back up)."""
    w, h = image.size
    rotated = image.rotate(degrees, Image.Resampling.BICUBIC)
    sin = math.sin(math.radians(abs(degrees)))
    dx, dy = math.ceil(h * sin), math.ceil(w * sin)
    return rotated.crop((dx, dy, w - dx, h - dy))


def _overlay_text(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    size = max(10, h // 20)
    draw.text((w // 30, h - 2 * size), "(c) imgflow 2026", fill="white", font_size=size)
    return out


def _watermark(image: Image.Image) -> Image.Image:
    """A stock-photo style mark: a light box with a logo word in the bottom-right corner,
    a quarter of the width, 60 % opaque."""
    out = image.convert("RGBA")
    w, h = out.size
    mark = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    box = (round(w * 0.72), round(h * 0.86), round(w * 0.97), round(h * 0.97))
    draw.rectangle(box, fill=(255, 255, 255, 150))
    size = max(8, min((box[3] - box[1]) * 2 // 3, (box[2] - box[0]) // 4))  # the word fits
    draw.text((box[0] + size // 4, box[1] + size // 4), "PHOTO", fill=(20, 20, 20, 200),
              font_size=size)  # fmt: skip
    return Image.alpha_composite(out, mark).convert("RGB")


def _letterbox(image: Image.Image) -> Image.Image:
    """Padded to a square with black bars, as a square-feed app posts it."""
    side = max(image.size)
    return ImageOps.pad(image, (side, side), color="black")


def _hue_shift(image: Image.Image, degrees: float = 40) -> Image.Image:
    hsv = np.asarray(image.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(degrees / 360 * 256)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg-q15": lambda im: encode(im, "JPEG", quality=15),
    "quarter-size-png": lambda im: encode(im.reduce(4), "PNG", compress_level=1),
    "webp": lambda im: encode(im, "WEBP", quality=70),
    "crop-10-left": lambda im: encode(crop(im, 0.10, 0, 1, 1), quality=90),
    "crop-20-centre": lambda im: encode(crop(im, 0.10, 0.10, 0.90, 0.90), quality=90),
    "crop-20-corner": lambda im: encode(crop(im, 0, 0, 0.80, 0.80), quality=90),
    "brighter": lambda im: encode(ImageEnhance.Brightness(im).enhance(1.35), quality=90),
    "darker": lambda im: encode(ImageEnhance.Brightness(im).enhance(0.65), quality=90),
    "less-contrast": lambda im: encode(ImageEnhance.Contrast(im).enhance(0.6), quality=90),
    "mirrored": lambda im: encode(ImageOps.mirror(im), quality=90),
    "grey": lambda im: encode(ImageOps.grayscale(im), quality=90),
    "text-overlay": lambda im: encode(_overlay_text(im), quality=90),
    "crop-resize-jpeg": lambda im: encode(
        crop(im, 0.05, 0.05, 0.95, 0.95).reduce(2), "JPEG", quality=40
    ),
    # the issue's edits
    "rotate-3": lambda im: encode(straighten(im, 3.0), quality=90),
    "letterbox": lambda im: encode(_letterbox(im), quality=90),
    "watermark": lambda im: encode(_watermark(im), quality=90),
    "hue-shift": lambda im: encode(_hue_shift(im), quality=90),
    "small-heavy-jpeg": lambda im: encode(im.reduce(3), "JPEG", quality=12),
    "brightness-contrast": lambda im: encode(
        ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.15)).enhance(1.3), quality=90
    ),
}
ISSUE_EDITS = ("rotate-3", "letterbox", "watermark", "hue-shift", "small-heavy-jpeg",
               "brightness-contrast")  # fmt: skip
