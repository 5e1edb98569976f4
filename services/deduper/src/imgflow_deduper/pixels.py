"""Image bytes to the model's input tensor: decode once, cheaply, and normalise.

The whole frame is resized to the square input (no centre crop), so a crop of an image
still shares most of its content with the original's input. JPEG decodes at a reduced
DCT scale first (``Image.draft``), which costs a fraction of a full decode.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

try:  # HEIF/HEIC uploads pass the API's door, so the deduper must read them too
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - a slim install without HEIF support
    pass


@dataclass(frozen=True)
class Normalisation:
    size: int
    mean: tuple[float, float, float]  # 0-1 scale, RGB
    std: tuple[float, float, float]
    # Shrink to this square first (0: don't): a low-pass filter, so a resized or heavily
    # re-encoded copy, which has lost its fine detail, looks like its original.
    detail: int = 0

    @classmethod
    def of(
        cls, size: int, mean: Sequence[float], std: Sequence[float], detail: int = 0
    ) -> Normalisation:
        return cls(size, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), detail)


def decode(data: bytes, size: int) -> Image.Image:
    """RGB image from encoded bytes, EXIF orientation applied. Raises PIL errors."""
    image = Image.open(io.BytesIO(data))
    # Reduced-size JPEG decode: no smaller than twice the target, for a clean resample.
    image.draft("RGB", (size * 2, size * 2))
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels hold arbitrary colours: show them on white, as a viewer would.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return image if image.mode == "RGB" else image.convert("RGB")


def to_tensor(image: Image.Image, norm: Normalisation) -> np.ndarray:
    """(3, size, size) float32, normalised as the model expects."""
    if norm.detail:
        image = image.resize(
            (norm.detail, norm.detail), Image.Resampling.BILINEAR, reducing_gap=2.0
        )
    resized = image.resize((norm.size, norm.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    array = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(norm.mean, np.float32)[:, None, None]
    std = np.asarray(norm.std, np.float32)[:, None, None]
    return (array - mean) / std


def bytes_to_tensor(data: bytes, norm: Normalisation) -> np.ndarray:
    return to_tensor(decode(data, norm.size), norm)


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


def sub_views(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    return [
        image.crop((round(a * w), round(b * h), round(c * w), round(d * h)))
        for a, b, c, d in VIEW_BOXES
    ]


def view_tensors(data: bytes, norm: Normalisation, with_sub_views: bool) -> np.ndarray:
    """(1 or 6, 3, size, size): the whole image first, then its sub-views if asked."""
    image = decode(data, norm.size)
    views = [image, *sub_views(image)] if with_sub_views else [image]
    return np.stack([to_tensor(v, norm) for v in views])
