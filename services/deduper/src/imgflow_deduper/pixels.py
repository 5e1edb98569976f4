"""Image bytes to the model's input tensors: decode once, small, and share the pixels.

The whole frame is resized to the square input (no centre crop), so a crop of an image
still shares most of its content with the original's input. A JPEG decodes at the
smallest DCT scale (``Image.draft``: 1/2, 1/4 or 1/8) that still leaves twice the input
size, so a 12 MP photo for a 96 px model never exists at more than 500 x 375 pixels; the
whole frame and every sub-view are cut from that one decoded image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from imgflow_deduper.borders import trim_bars
from imgflow_runtime.imaging import (
    decode_errors,
    is_deep_grey,
    open_image,
    to_grey8,
    unpremultiplied,
)


@dataclass(frozen=True)
class Normalisation:
    size: int
    mean: tuple[float, float, float]  # 0-1 scale, RGB
    std: tuple[float, float, float]
    # Shrink to this square first (0: don't; only below ``size`` does it do anything): a
    # low-pass filter, so a resized or heavily re-encoded copy, which has lost its fine
    # detail, looks like its original to a model with a large input.
    detail: int = 0

    @classmethod
    def of(
        cls, size: int, mean: Sequence[float], std: Sequence[float], detail: int = 0
    ) -> Normalisation:
        return cls(size, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), detail)

    @property
    def source_size(self) -> int:
        """The fewest pixels per side any view is built from: what decoding must keep."""
        return min(self.size, self.detail) if self.detail else self.size


def decode(data: bytes, size: int) -> Image.Image:
    """RGB image from encoded bytes, EXIF orientation applied. Raises ``UndecodableImage``."""
    image = open_image(data)
    with decode_errors():
        # Reduced-size JPEG decode: no smaller than twice the target, for a clean resample.
        image.draft("RGB", (size * 2, size * 2))
        image = ImageOps.exif_transpose(image)
        if is_deep_grey(image.mode):  # 16-bit and float: scaled, not clipped to white
            image = to_grey8(image)
        image = unpremultiplied(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent pixels hold arbitrary colours: show them on white, as a viewer would.
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        return image if image.mode == "RGB" else image.convert("RGB")


Box = tuple[float, float, float, float]


def _square(image: Image.Image, norm: Normalisation, box: Box | None = None) -> Image.Image:
    """The model's square input from ``box`` of the image (all of it by default); resizing
    straight from the box spares a copy of the crop."""
    if norm.detail and norm.detail < norm.size:
        image = image.resize(
            (norm.detail, norm.detail), Image.Resampling.BILINEAR, box, reducing_gap=2.0
        )
        box = None
    return image.resize((norm.size, norm.size), Image.Resampling.BILINEAR, box, reducing_gap=2.0)


def _normalised(squares: list[Image.Image], norm: Normalisation) -> np.ndarray:
    """(N, 3, size, size) float32 from N RGB squares, in one pass over the pixels."""
    pixels = np.stack([np.asarray(s) for s in squares]).transpose(0, 3, 1, 2)
    scale = 1 / (255 * np.asarray(norm.std, np.float32))[:, None, None]
    offset = (np.asarray(norm.mean, np.float32) / np.asarray(norm.std, np.float32))[:, None, None]
    return pixels.astype(np.float32) * scale - offset


def to_tensor(image: Image.Image, norm: Normalisation) -> np.ndarray:
    """(3, size, size) float32, normalised as the model expects."""
    return _normalised([_square(image, norm)], norm)[0]


def bytes_to_tensor(data: bytes, norm: Normalisation) -> np.ndarray:
    return to_tensor(trim_bars(decode(data, norm.source_size)), norm)


# Sub-views: the centre and the four corners, each 80 % of the width and height. A copy
# cropped by up to 20 % is close to one of them, where its whole-frame embedding is not;
# the set is closed under mirroring (corners swap), so it works with mirror invariance.
VIEW_BOXES = (
    (0.1, 0.1, 0.9, 0.9),
    (0.0, 0.0, 0.8, 0.8),
    (0.2, 0.0, 1.0, 0.8),
    (0.0, 0.2, 0.8, 1.0),
    (0.2, 0.2, 1.0, 1.0),
)


def view_boxes(width: int, height: int) -> list[Box]:
    return [
        (round(a * width), round(b * height), round(c * width), round(d * height))
        for a, b, c, d in VIEW_BOXES
    ]


def view_tensors(data: bytes, norm: Normalisation, with_sub_views: bool) -> np.ndarray:
    """(1 or 6, 3, size, size): the whole image first, then its sub-views if asked."""
    image = trim_bars(decode(data, norm.source_size))
    boxes = [None, *view_boxes(*image.size)] if with_sub_views else [None]
    return _normalised([_square(image, norm, box) for box in boxes], norm)
