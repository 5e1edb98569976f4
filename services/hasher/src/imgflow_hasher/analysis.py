"""Facts about an image read from its stored bytes: checksum, format and geometry."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    byte_size: int
    format: str
    mode: str
    width: int
    height: int
    frames: int


def analyse(data: bytes) -> ImageFacts:
    """Raises PIL errors when the bytes are not a decodable image."""
    with Image.open(io.BytesIO(data)) as image:
        # verify() walks the whole file, so a truncated image fails here, not later.
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        return ImageFacts(
            sha256=hashlib.sha256(data).hexdigest(),
            byte_size=len(data),
            format=(image.format or "unknown").lower(),
            mode=image.mode,
            width=image.width,
            height=image.height,
            frames=getattr(image, "n_frames", 1),
        )
