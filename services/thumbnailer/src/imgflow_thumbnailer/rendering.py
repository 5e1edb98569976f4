"""Renditions from an original: decode once, then make each size from the next larger one.

JPEG originals are decoded with DCT scaling (``Image.draft``) straight to the smallest
scale that still covers the largest rendition, which skips most of the entropy-decoded
pixels; each smaller size is then resized from the previous rendition, not the original.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageOps

CONTENT_TYPES = {"webp": "image/webp", "jpeg": "image/jpeg"}
_PIL_FORMATS = {"webp": "WEBP", "jpeg": "JPEG"}


@dataclass(frozen=True)
class Rendition:
    size: int
    width: int
    height: int
    format: str
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def fit_inside(width: int, height: int, size: int) -> tuple[int, int]:
    """Dimensions with the long side at ``size``, aspect kept, never upscaled."""
    long_side = max(width, height)
    if long_side <= size:
        return width, height
    scale = size / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    # EXIF orientations 5-8 rotate by 90 degrees, which swaps width and height.
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _normalise_mode(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    wanted = "RGBA" if has_alpha else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    if fmt == "jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    out = io.BytesIO()
    # No exif/icc arguments: renditions carry no EXIF, GPS or comments.
    image.save(out, _PIL_FORMATS[fmt], quality=quality, method=4 if fmt == "webp" else None)
    return out.getvalue()


def render_renditions(
    data: bytes, sizes: Sequence[int], *, fmt: str = "webp", quality: int = 82
) -> list[Rendition]:
    """Renditions for every size, largest first. Raises PIL errors for undecodable data."""
    with Image.open(io.BytesIO(data)) as original:
        full_width, full_height = _oriented_size(original)
        largest = fit_inside(full_width, full_height, max(sizes))
        # draft() works on the stored (unrotated) frame; a square request covers both.
        side = max(largest)
        original.draft("RGB", (side, side))
        source = _normalise_mode(ImageOps.exif_transpose(original))

    renditions: list[Rendition] = []
    for size in sorted(sizes, reverse=True):
        target = fit_inside(full_width, full_height, size)
        if source.size != target:
            source = source.resize(target, Image.Resampling.LANCZOS)
        renditions.append(Rendition(size, target[0], target[1], fmt, _encode(source, fmt, quality)))
    return renditions
