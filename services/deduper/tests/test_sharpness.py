from __future__ import annotations

import io

import numpy as np
import skimage.data
from PIL import Image, ImageFilter

from imgflow_deduper.sharpness import laplacian_variance


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_a_blurred_frame_is_less_sharp_than_the_frame() -> None:
    photo = Image.fromarray(skimage.data.astronaut())
    sharp = laplacian_variance(_jpeg(photo))
    blurred = laplacian_variance(_jpeg(photo.filter(ImageFilter.GaussianBlur(2))))
    assert sharp is not None and blurred is not None
    assert blurred < sharp / 2


def test_sharpness_is_measured_at_one_size() -> None:
    # the same picture at twice the analysis size scores about as it does at that size
    photo = Image.fromarray(skimage.data.astronaut()).resize((512, 512))
    big = photo.resize((1024, 1024), Image.Resampling.LANCZOS)
    at_size, scaled = laplacian_variance(_jpeg(photo)), laplacian_variance(_jpeg(big))
    assert at_size is not None and scaled is not None
    assert 0.5 < scaled / at_size < 2


def test_bytes_that_do_not_decode_have_no_sharpness() -> None:
    assert laplacian_variance(b"not an image") is None
    flat = Image.fromarray(np.full((64, 64, 3), 128, np.uint8))
    assert laplacian_variance(_jpeg(flat)) == 0.0
