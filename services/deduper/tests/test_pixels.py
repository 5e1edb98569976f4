"""Decoding and normalisation: orientation, transparency, the tensor the model gets."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgflow_deduper.pixels import Normalisation, bytes_to_tensor, decode, to_tensor, view_tensors

NORM = Normalisation.of(224, [0.498] * 3, [0.502] * 3)


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_tensor_shape_and_normalisation() -> None:
    white = _encoded(Image.new("RGB", (640, 480), "white"), "PNG")
    tensor = bytes_to_tensor(white, NORM)
    assert tensor.shape == (3, 224, 224)
    assert tensor.dtype == np.float32
    assert tensor.max() == pytest.approx((1 - 0.498) / 0.502, abs=1e-5)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (300, 100), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    decoded = decode(_encoded(image, "JPEG", exif=exif), 224)
    assert decoded.size[0] < decoded.size[1]


def test_large_jpegs_decode_at_a_reduced_scale() -> None:
    big = _encoded(Image.new("RGB", (4000, 3000), "blue"), "JPEG")
    assert max(decode(big, 224).size) <= 1000  # DCT scaling: never the full 4000 px


def test_a_12_megapixel_jpeg_decodes_at_an_eighth_for_a_96_px_model() -> None:
    big = _encoded(Image.new("RGB", (4000, 3000), "blue"), "JPEG")
    norm = Normalisation.of(96, [0.498] * 3, [0.502] * 3)
    assert decode(big, norm.source_size).size == (500, 375)
    # a low-pass below the input size decodes smaller still, never below twice its size
    soft = Normalisation.of(224, [0.498] * 3, [0.502] * 3, detail=112)
    assert soft.source_size == 112
    assert decode(big, soft.source_size).size == (500, 375)


def test_views_are_the_whole_frame_then_five_crops_of_one_decode() -> None:
    image = Image.radial_gradient("L").convert("RGB").resize((400, 300))
    data = _encoded(image, "PNG")
    norm = Normalisation.of(96, [0.498] * 3, [0.502] * 3)

    views = view_tensors(data, norm, with_sub_views=True)

    assert views.shape == (6, 3, 96, 96)
    assert views.dtype == np.float32
    assert np.allclose(views[0], bytes_to_tensor(data, norm), atol=1e-6)
    # the top-left corner crop is the top-left 80 % of the frame, resized
    corner = to_tensor(image.crop((0, 0, 320, 240)), norm)
    assert np.abs(views[2] - corner).max() < 0.05
    assert view_tensors(data, norm, with_sub_views=False).shape == (1, 3, 96, 96)


def test_transparent_pixels_are_shown_on_white() -> None:
    clear = Image.new("RGBA", (50, 50), (255, 0, 0, 0))
    decoded = decode(_encoded(clear, "PNG"), 224)
    assert decoded.mode == "RGB"
    assert decoded.getpixel((10, 10)) == (255, 255, 255)
