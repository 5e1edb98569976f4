"""Letterbox and pillarbox bars come off before embedding; a photo's own content stays."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageOps

from imgflow_deduper.borders import trim_bars
from imgflow_deduper.pixels import Normalisation, view_tensors

NORM = Normalisation.of(96, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502))


def photo() -> Image.Image:
    return Image.fromarray(skimage.data.chelsea())  # 451 x 300, a cat on a rug


def jpeg(image: Image.Image) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


@pytest.mark.parametrize("colour", ["black", "white"])
def test_bars_of_a_square_feed_come_off(colour: str) -> None:
    original = photo()
    padded = jpeg(ImageOps.pad(original, (451, 451), color=colour))  # bars above and below
    trimmed = trim_bars(padded)
    assert abs(trimmed.width - 451) <= 1
    assert abs(trimmed.height - 300) <= 3  # JPEG blurs the bar's last line into the photo


def test_pillarbox_bars_come_off() -> None:
    tall = photo().rotate(90, expand=True)  # 300 x 451
    trimmed = trim_bars(jpeg(ImageOps.pad(tall, (700, 451), color="black")))
    assert abs(trimmed.width - 300) <= 3
    assert abs(trimmed.height - 451) <= 1


@pytest.mark.parametrize(
    "name", ["astronaut", "camera", "chelsea", "coffee", "rocket", "hubble_deep_field"]
)
def test_photos_without_bars_keep_their_frame(name: str) -> None:
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    assert trim_bars(jpeg(image)).size == image.size


def test_a_thin_frame_line_and_a_flat_image_stay() -> None:
    framed = ImageOps.expand(photo(), border=2, fill="black")
    assert trim_bars(framed).size == framed.size
    white = Image.new("RGB", (64, 64), "white")
    assert trim_bars(white).size == white.size


def test_a_letterboxed_copy_embeds_like_its_original() -> None:
    """What the deduper's input sees: the same pixels, bars or no bars."""
    original = photo()
    letterboxed = ImageOps.pad(original, (451, 451), color="black")

    def tensors(image: Image.Image) -> np.ndarray:
        out = io.BytesIO()
        image.save(out, "PNG")
        return view_tensors(out.getvalue(), NORM, with_sub_views=False)

    assert np.abs(tensors(original) - tensors(letterboxed)).mean() < 0.02
