"""Renditions from an original: decode once, at the least scale, then cascade down.

The order of the steps is the speed: a JPEG is decoded with DCT scaling (``draft``) to
the smallest scale that still covers the largest rendition, so the inverse DCT runs on a
sixteenth of a 12-megapixel photo's pixels; that is resized once to the largest
rendition, and only then colour-converted and turned upright, on few pixels; each smaller
rendition is resized from the one before it, never from the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from imgflow_thumbnailer.colour import to_resizable, to_srgb
from imgflow_thumbnailer.decoding import (
    UndecodableImage,
    load_scaled,
    open_image,
    stored_size,
    upright,
)
from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat, encode
from imgflow_thumbnailer.geometry import Fit, crop_box, target_size

__all__ = ["Rendition", "UndecodableImage", "render_renditions"]

_LANCZOS = Image.Resampling.LANCZOS
# Past this ratio a resize first box-reduces by a whole factor: Pillow's documented point
# where the result is indistinguishable from a full Lanczos, for a fraction of the work
# (matters for PNG, WebP and the like, which decode at full size).
_REDUCING_GAP = 3.0


@dataclass(frozen=True)
class Rendition:
    size: int
    width: int
    height: int
    format: OutputFormat
    data: bytes

    @property
    def content_type(self) -> str:
        return self.format.content_type


def render_renditions(
    data: bytes,
    sizes: Sequence[int],
    *,
    fit: Fit = Fit.INSIDE,
    options: EncodeOptions | None = None,
) -> list[Rendition]:
    """One rendition per size, largest first. Raises ``UndecodableImage``."""
    options = options or EncodeOptions()
    if not sizes:
        return []
    largest_size = max(sizes)
    with open_image(data) as original:
        loaded = load_scaled(original, lambda w, h: target_size(w, h, largest_size, fit))
        shown, turn = loaded.displayed, loaded.orientation
        largest = stored_size(target_size(*shown, largest_size, fit), turn)
        icc_profile = original.info.get("icc_profile")
        current = _reduce(to_resizable(original), largest, fit)
    current = upright(to_srgb(current, icc_profile), turn)

    renditions = []
    for size in sorted(set(sizes), reverse=True):
        width, height = target_size(*shown, size, fit)
        if current.size != (width, height):
            current = current.resize((width, height), _LANCZOS)
        renditions.append(Rendition(size, width, height, options.format, encode(current, options)))
    return renditions


def _reduce(image: Image.Image, size: tuple[int, int], fit: Fit) -> Image.Image:
    """The decoded image at the largest rendition's size (stored axes), cropped if covering.

    Always a new image: the original is closed, and with it its pixels, when this returns.
    """
    box = crop_box(*image.size, fit)
    if image.size == size and box == (0, 0, *image.size):
        return image.copy()
    return image.resize(size, _LANCZOS, box=box, reducing_gap=_REDUCING_GAP)
