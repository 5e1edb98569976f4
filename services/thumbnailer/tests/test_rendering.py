"""Renditions: sizes, fit, orientation, animation, output formats and undecodable input."""

import io

import pytest
from PIL import Image, ImageStat

from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.geometry import Fit
from imgflow_thumbnailer.rendering import (
    Rendition,
    UndecodableImage,
    render_renditions,
    render_with_analysis,
)
from services.thumbnailer.tests.corpus import (
    BLUE,
    CORNERS,
    GREEN,
    RED,
    animated,
    displayed,
    encode,
    marked,
    with_orientation,
)

SIZES = [150, 300, 600]


def decoded(rendition: Rendition) -> Image.Image:
    image = Image.open(io.BytesIO(rendition.data))
    image.load()
    return image


def colour_at(image: Image.Image, fx: float, fy: float) -> tuple[int, ...]:
    """Mean colour of a small patch centred at a fraction of the width and height."""
    rgb = image.convert("RGB")
    x, y = round(fx * rgb.width), round(fy * rgb.height)
    r = max(1, min(rgb.size) // 20)
    return tuple(round(v) for v in ImageStat.Stat(rgb.crop((x - r, y - r, x + r, y + r))).mean)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# Fractions that fall inside each corner block of corpus.marked (a quarter of each side).
CORNER_POINTS = {
    "top-left": (0.1, 0.1),
    "top-right": (0.9, 0.1),
    "bottom-left": (0.1, 0.9),
    "bottom-right": (0.9, 0.9),
}


def corner_colours(image: Image.Image) -> dict[str, tuple[int, ...]]:
    return {name: colour_at(image, *point) for name, point in CORNER_POINTS.items()}


def test_renditions_have_the_long_side_of_each_size_largest_first():
    renditions = render_renditions(encode(marked(2000, 1500), "JPEG"), SIZES)
    assert [(r.size, r.width, r.height) for r in renditions] == [
        (600, 600, 450),
        (300, 300, 225),
        (150, 150, 112),
    ]
    for r in renditions:
        image = decoded(r)
        assert (image.format, image.size) == ("WEBP", (r.width, r.height))
        assert r.content_type == "image/webp"


def test_sizes_may_come_unsorted_and_repeated():
    renditions = render_renditions(encode(marked(800, 600), "PNG"), [300, 150, 300])
    assert [r.size for r in renditions] == [300, 150]


def test_small_images_are_never_upscaled():
    renditions = render_renditions(encode(marked(200, 100), "PNG"), SIZES)
    assert [(r.width, r.height) for r in renditions] == [(200, 100), (200, 100), (150, 75)]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((6000, 20), [(600, 2), (300, 1), (150, 1)]),
        ((20, 6000), [(2, 600), (1, 300), (1, 150)]),
    ],
)
def test_very_wide_and_very_tall_images_keep_at_least_one_pixel(size, expected):
    renditions = render_renditions(encode(Image.new("RGB", size, RED), "PNG"), SIZES)
    assert [(r.width, r.height) for r in renditions] == expected
    assert [decoded(r).size for r in renditions] == expected


def test_cover_makes_centred_squares():
    thirds = Image.new("RGB", (900, 300), RED)
    thirds.paste(GREEN, (300, 0, 600, 300))
    thirds.paste(BLUE, (600, 0, 900, 300))
    renditions = render_renditions(encode(thirds, "PNG"), [600, 100], fit=Fit.COVER)
    # The square is the middle 300 x 300: all green, never upscaled past it.
    assert [(r.width, r.height) for r in renditions] == [(300, 300), (100, 100)]
    for r in renditions:
        image = decoded(r)
        for point in ((0.05, 0.5), (0.5, 0.5), (0.95, 0.5)):
            assert close(colour_at(image, *point), GREEN, 12)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_shown_upright(orientation):
    stored = marked(240, 160)
    expected = displayed(stored, orientation)

    (r,) = render_renditions(with_orientation(stored, orientation), [120])

    image = decoded(r)
    assert image.size == (expected.width // 2, expected.height // 2)
    for corner, colour in corner_colours(expected).items():
        assert close(corner_colours(image)[corner], colour, 40), (corner, orientation)


def test_orientation_6_puts_the_stored_top_left_at_the_top_right():
    # EXIF 6: the camera was turned clockwise; the stored top-left shows at the top right.
    (r,) = render_renditions(with_orientation(marked(240, 160), 6), [120])
    image = decoded(r)
    assert image.size == (80, 120)
    assert close(corner_colours(image)["top-right"], CORNERS["top-left"], 40)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_orientation_is_applied_in_every_format(fmt):
    stored = marked(240, 160)
    expected = corner_colours(displayed(stored, 8))

    (r,) = render_renditions(with_orientation(stored, 8, fmt), [120])

    image = decoded(r)
    assert image.size == (80, 120)
    for corner, colour in expected.items():
        assert close(corner_colours(image)[corner], colour, 40), (corner, fmt)


def test_a_large_rotated_jpeg_decoded_at_a_quarter_scale_keeps_exact_sizes():
    stored = marked(2400, 1600)
    renditions = render_renditions(with_orientation(stored, 6), SIZES)
    assert [(r.width, r.height) for r in renditions] == [(400, 600), (200, 300), (100, 150)]
    expected = corner_colours(displayed(stored, 6))
    for r in renditions:
        for corner, colour in expected.items():
            assert close(corner_colours(decoded(r))[corner], colour, 40), (corner, r.size)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_use_their_first_frame(fmt):
    data = animated(fmt, [RED, GREEN, BLUE])
    assert Image.open(io.BytesIO(data)).n_frames == 3
    (r,) = render_renditions(data, [60])
    assert close(colour_at(decoded(r), 0.5, 0.5), RED, 12)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "content_type"),
    [
        (OutputFormat.WEBP, "WEBP", "image/webp"),
        (OutputFormat.JPEG, "JPEG", "image/jpeg"),
        (OutputFormat.AVIF, "AVIF", "image/avif"),
    ],
)
def test_output_formats(fmt, pil_format, content_type):
    options = EncodeOptions(format=fmt, quality=70)
    renditions = render_renditions(encode(marked(800, 600), "JPEG"), [300, 150], options=options)
    for r in renditions:
        image = decoded(r)
        assert (image.format, image.size, r.content_type) == (
            pil_format,
            (r.width, r.height),
            content_type,
        )
        assert close(corner_colours(image)["top-left"], RED, 40)


def test_webp_method_trades_time_for_bytes_not_pixels():
    data = encode(marked(800, 600), "PNG")
    fast = render_renditions(data, [300], options=EncodeOptions(webp_method=0))[0]
    slow = render_renditions(data, [300], options=EncodeOptions(webp_method=6))[0]
    assert decoded(fast).size == decoded(slow).size == (300, 225)
    assert fast.data != slow.data


def _truncated(fmt: str) -> bytes:
    data = encode(Image.effect_noise((300, 200), 60).convert("RGB"), fmt)
    return data[: len(data) * 2 // 3]


def _noisy_png_pixels() -> bytes:
    png = encode(marked(300, 200), "PNG")
    idat = png.index(b"IDAT") + 4
    return png[:idat] + bytes(b ^ 0x5A for b in png[idat : idat + 400]) + png[idat + 400 :]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_truncated("JPEG"), id="truncated-jpeg"),
        pytest.param(_truncated("PNG"), id="truncated-png"),
        pytest.param(_truncated("WEBP"), id="truncated-webp"),
        pytest.param(_truncated("HEIF"), id="truncated-heif"),
        pytest.param(_truncated("AVIF"), id="truncated-avif"),
        pytest.param(_noisy_png_pixels(), id="png-with-noise-for-pixels"),
        pytest.param(b"not an image at all", id="garbage"),
        pytest.param(b"", id="empty"),
    ],
)
def test_undecodable_input_raises_undecodable_image(data):
    with pytest.raises(UndecodableImage):
        render_renditions(data, SIZES)


# The analysis copy: what the hasher and the deduper decode instead of the original.


# COVER: made from the decoded original (the renditions are crops); INSIDE: from the
# largest rendition, which shows the whole frame at more than 512 px.
@pytest.mark.parametrize(("fit", "largest"), [(Fit.COVER, (600, 600)), (Fit.INSIDE, (400, 600))])
def test_the_analysis_copy_is_the_whole_frame_upright_at_the_asked_long_side(fit, largest):
    stored = marked(2400, 1600)
    expected = corner_colours(displayed(stored, 6))

    rendered = render_with_analysis(with_orientation(stored, 6), SIZES, fit=fit, analysis_side=512)

    copy = Image.open(io.BytesIO(rendered.analysis or b""))
    assert copy.format == "JPEG"
    # Whole frame and upright, whatever the renditions show.
    assert copy.size == (341, 512)
    assert (rendered.renditions[0].width, rendered.renditions[0].height) == largest
    for corner, colour in expected.items():
        assert close(corner_colours(copy)[corner], colour, 40), corner
    assert not copy.getexif() and "icc_profile" not in copy.info


def test_the_analysis_copy_does_not_change_the_renditions():
    data = encode(marked(2000, 1500), "JPEG")
    rendered = render_with_analysis(data, SIZES, analysis_side=512)
    assert [r.data for r in rendered.renditions] == [r.data for r in render_renditions(data, SIZES)]


def test_an_analysis_copy_of_a_small_image_is_not_enlarged_and_is_matted_on_white():
    rgba = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    rgba.paste((*RED, 255), (0, 0, 100, 100))
    rendered = render_with_analysis(encode(rgba, "PNG"), [], analysis_side=512)
    copy = Image.open(io.BytesIO(rendered.analysis or b""))
    assert rendered.renditions == [] and copy.size == (200, 100)
    assert close(colour_at(copy, 0.25, 0.5), RED, 12)
    assert close(colour_at(copy, 0.75, 0.5), (255, 255, 255), 12)


def test_without_an_analysis_side_there_is_no_copy():
    assert render_with_analysis(encode(marked(300, 200), "PNG"), [100]).analysis is None


def test_each_size_is_encoded_with_its_own_webp_effort():
    data = encode(marked(800, 600), "PNG")
    per_size = EncodeOptions(webp_method=6, webp_method_by_size=((300, 0),))
    mixed = render_renditions(data, [300, 150], options=per_size)
    fast = render_renditions(data, [300, 150], options=EncodeOptions(webp_method=0))
    slow = render_renditions(data, [300, 150], options=EncodeOptions(webp_method=6))
    assert [r.data for r in mixed] == [fast[0].data, slow[1].data]
