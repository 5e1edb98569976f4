"""Colour: every mode and profile an upload may have ends up as the right sRGB colour."""

import io

import pytest
from PIL import Image, ImageStat

from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.rendering import render_renditions
from services.thumbnailer.tests.corpus import (
    RED,
    cmyk_with_profile,
    encode,
    grey16_png,
    halves,
    rgb16_png,
    tagged_p3,
)

WARM, COOL = (200, 80, 60), (60, 80, 200)


def left_and_right(data: bytes, options: EncodeOptions | None = None):
    (r,) = render_renditions(data, [64], options=options)
    image = Image.open(io.BytesIO(r.data))
    image.load()
    w, h = image.size

    def mean(box):
        return tuple(round(v) for v in ImageStat.Stat(image.crop(box)).mean)

    return (
        image,
        mean((w // 8, h // 4, 3 * w // 8, 3 * h // 4)),
        mean((5 * w // 8, h // 4, 7 * w // 8, 3 * h // 4)),
    )


def close(actual, expected, tolerance):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


SIZE = (128, 96)
CASES = {
    # name: (bytes, expected left colour, expected right colour, tolerance)
    "rgb-jpeg": (encode(halves(SIZE, WARM, COOL, "RGB"), "JPEG", quality=95), WARM, COOL, 6),
    "rgb-png": (encode(halves(SIZE, WARM, COOL, "RGB"), "PNG"), WARM, COOL, 6),
    "rgb-webp": (encode(halves(SIZE, WARM, COOL, "RGB"), "WEBP", lossless=True), WARM, COOL, 6),
    "rgb-tiff": (encode(halves(SIZE, WARM, COOL, "RGB"), "TIFF"), WARM, COOL, 6),
    "rgb-heif": (encode(halves(SIZE, WARM, COOL, "RGB"), "HEIF", quality=95), WARM, COOL, 8),
    "rgb-avif": (encode(halves(SIZE, WARM, COOL, "RGB"), "AVIF", quality=95), WARM, COOL, 8),
    "grey-jpeg": (encode(halves(SIZE, 90, 200, "L"), "JPEG", quality=95), (90,) * 3, (200,) * 3, 4),
    "bilevel-png": (encode(halves(SIZE, 0, 1, "1"), "PNG"), (0,) * 3, (255,) * 3, 4),
    "palette-png": (
        encode(halves(SIZE, WARM, COOL, "RGB").quantize(4), "PNG"),
        WARM,
        COOL,
        6,
    ),
    "palette-gif": (encode(halves(SIZE, WARM, COOL, "RGB"), "GIF"), WARM, COOL, 6),
    # 16-bit grey 0x5A00 is 8-bit 90: clipping instead of scaling would give white.
    "grey16-png": (grey16_png(0x5A00, SIZE), (90,) * 3, (90,) * 3, 3),
    "rgb16-png": (rgb16_png((0xC800, 0x5000, 0x3C00), SIZE), WARM, WARM, 4),
    # Naive CMYK without a profile: pure magenta + yellow is red.
    "cmyk-jpeg": (
        encode(halves(SIZE, (0, 255, 255, 0), (255, 255, 0, 0), "CMYK"), "JPEG", quality=95),
        RED,
        (0, 0, 255),
        8,
    ),
    # Through the embedded print profile: plain CMYK-to-RGB would be 20-45 levels off.
    "cmyk-jpeg-with-profile": (cmyk_with_profile(WARM), WARM, WARM, 8),
    "cmyk-tiff-with-profile": (
        cmyk_with_profile((100, 100, 140), "TIFF"),
        (100, 100, 140),
        None,
        8,
    ),
    # Display P3 (75, 159, 97) is sRGB (22, 161, 90), by the P3 and sRGB primaries (D65);
    # read as if sRGB, red would be 53 levels off.
    "display-p3-jpeg": (tagged_p3((75, 159, 97), SIZE), (22, 161, 90), (22, 161, 90), 6),
    # CIELAB L*=50, a*=b*=0 is sRGB grey 119.
    "lab-tiff": (encode(Image.new("LAB", SIZE, (128, 128, 128)), "TIFF"), (119,) * 3, None, 3),
}


@pytest.mark.parametrize("case", list(CASES))
def test_colour_is_converted_to_srgb(case):
    data, left, right, tolerance = CASES[case]

    image, got_left, got_right = left_and_right(data)

    assert image.mode == "RGB"
    assert close(got_left, left, tolerance), (got_left, left)
    if right is not None:
        assert close(got_right, right, tolerance), (got_right, right)


def test_a_profile_makes_the_difference():
    # The same pixel values without the profile are another colour: the case above tests
    # the conversion, not a coincidence.
    data = tagged_p3((75, 159, 97), SIZE)
    untagged = Image.open(io.BytesIO(data))
    untagged.info.pop("icc_profile")
    _, naive, _ = left_and_right(encode(untagged, "PNG"))
    assert abs(naive[0] - 22) > 40


def test_a_broken_profile_is_ignored():
    data = encode(Image.new("RGB", SIZE, WARM), "JPEG", quality=95, icc_profile=b"not a profile")
    _, left, _ = left_and_right(data)
    assert close(left, WARM, 6)


@pytest.mark.parametrize("fmt", [OutputFormat.WEBP, OutputFormat.AVIF])
@pytest.mark.parametrize("source_mode", ["RGBA", "LA", "PA"])
def test_alpha_is_kept_where_the_format_has_it(fmt, source_mode):
    opaque = {"RGBA": (*WARM, 255), "LA": (90, 255), "PA": None}[source_mode]
    if source_mode == "PA":
        rgba = halves(SIZE, (*WARM, 255), (0, 0, 0, 0), "RGBA")
        source = rgba.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        # P with a transparent index, as PNG's tRNS stores it.
        source.info["transparency"] = source.getpixel((SIZE[0] - 1, 0))
        data = encode(source, "PNG", transparency=source.info["transparency"])
    else:
        transparent = (0, 0, 0, 0) if source_mode == "RGBA" else (0, 0)
        data = encode(halves(SIZE, opaque, transparent, source_mode), "PNG")

    image, left, right = left_and_right(data, EncodeOptions(format=fmt, quality=90))

    assert image.mode == "RGBA"
    assert left[3] >= 250
    assert right[3] <= 5


def test_jpeg_renditions_put_transparency_on_white():
    data = encode(halves(SIZE, (*WARM, 255), (0, 0, 0, 0), "RGBA"), "PNG")
    image, left, right = left_and_right(data, EncodeOptions(format=OutputFormat.JPEG))
    assert image.mode == "RGB"
    assert close(left, WARM, 6)
    assert close(right, (255, 255, 255), 4)


def test_opaque_images_have_no_alpha_channel():
    image, _, _ = left_and_right(encode(halves(SIZE, WARM, COOL, "RGB"), "PNG"))
    assert image.mode == "RGB"
