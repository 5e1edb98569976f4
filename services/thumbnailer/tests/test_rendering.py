import io

import pytest
from PIL import Image

from imgflow_thumbnailer.rendering import fit_inside, render_renditions


def _jpeg(width: int, height: int, **save: object) -> bytes:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, **save)
    return out.getvalue()


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((4000, 3000), 600, (600, 450)),
        ((3000, 4000), 150, (112, 150)),
        ((100, 80), 600, (100, 80)),
        ((10000, 10), 300, (300, 1)),
    ],
)
def test_fit_inside_keeps_aspect_and_never_upscales(size, box, expected):
    assert fit_inside(*size, box) == expected


def test_renditions_have_the_long_side_of_each_size_largest_first():
    renditions = render_renditions(_jpeg(2000, 1500), [150, 300, 600])
    assert [(r.size, r.width, r.height) for r in renditions] == [
        (600, 600, 450),
        (300, 300, 225),
        (150, 150, 112),
    ]
    for r in renditions:
        with Image.open(io.BytesIO(r.data)) as decoded:
            assert decoded.format == "WEBP"
            assert decoded.size == (r.width, r.height)


def test_small_images_are_not_upscaled():
    renditions = render_renditions(_jpeg(200, 100), [150, 300])
    assert [(r.width, r.height) for r in renditions] == [(200, 100), (150, 75)]


def test_exif_orientation_is_applied_and_not_copied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "TestCam"
    renditions = render_renditions(_jpeg(800, 400, exif=exif), [300], fmt="jpeg")
    (r,) = renditions
    assert (r.width, r.height) == (150, 300)
    with Image.open(io.BytesIO(r.data)) as decoded:
        assert decoded.size == (150, 300)
        assert not decoded.getexif()


def test_alpha_is_kept_in_webp():
    image = Image.new("RGBA", (400, 400), (255, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    (r,) = render_renditions(out.getvalue(), [100])
    with Image.open(io.BytesIO(r.data)) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.getpixel((50, 50))[3] == 0


def test_undecodable_bytes_raise():
    with pytest.raises(Exception):  # noqa: B017 - any PIL error; the worker maps them all
        render_renditions(b"not an image at all", [150])
