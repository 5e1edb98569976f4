"""Every mode Pillow loads, in every container Pillow writes it to (and by hand where it
does not: 48/64-bit, premultiplied alpha), renders in the thumbnailer with the right
tones and is read by the hasher and the deduper: 16-bit and float scaled (not clipped to
white), palettes and colour keys expanded, premultiplied and padded layouts undone."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imgflow_deduper.pixels import decode
from imgflow_hasher.analysis import analyse
from imgflow_hasher.perceptual import to_grey
from imgflow_runtime.imaging import is_deep_grey
from imgflow_thumbnailer.colour import to_resizable
from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from services.thumbnailer.tests.test_colour import close, left_and_right
from tests.format_zoo import (
    DARK,
    LIGHT,
    MODES,
    SIZE,
    SPECIMENS,
    TOLERANCE,
    WARM,
    transparent_key_png,
)


def test_the_matrix_covers_every_mode_of_the_issue():
    written = {name.rsplit("-", 1)[0] for name in SPECIMENS}
    # I;16N is native byte order: a file is one or the other, read as I;16 or I;16B.
    assert set(MODES) - {"I;16N"} | {"La"} <= written
    assert {"I;16B-tiff", "I;16-png", "F-tiff", "LAB-tiff", "CMYK-jpeg"} <= set(SPECIMENS)
    with Image.open(io.BytesIO(SPECIMENS["La-tiff"][0])) as image:
        assert image.mode == "La"


@pytest.mark.parametrize("name", list(SPECIMENS))
def test_every_mode_renders_with_the_right_tones(name):
    data, left, right = SPECIMENS[name]
    _, got_left, got_right = left_and_right(data)
    assert close(got_left, left, TOLERANCE), (got_left, left)
    assert close(got_right, right, TOLERANCE), (got_right, right)


@pytest.mark.parametrize("name", list(SPECIMENS))
def test_every_mode_is_analysed(name):
    data, _, _ = SPECIMENS[name]
    facts = analyse(data)
    assert (facts.width, facts.height) == SIZE


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_transparent_colour_key_becomes_alpha(mode):
    data = transparent_key_png(mode)
    _, left, right = left_and_right(data, EncodeOptions(format=OutputFormat.JPEG))
    expected_left = (DARK,) * 3 if mode == "L" else WARM
    assert close(left, expected_left, TOLERANCE)
    assert close(right, (255, 255, 255), TOLERANCE)  # the keyed colour, on white


def test_big_endian_16_bit_grey_is_what_pillow_decodes():
    data = SPECIMENS["I;16B-tiff"][0]
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "I;16B"


@pytest.mark.parametrize("name", list(SPECIMENS))
def test_every_mode_reaches_the_deduper(name):
    data, _, _ = SPECIMENS[name]
    assert decode(data, 64).mode == "RGB"


@pytest.mark.parametrize("mode", [*MODES, "La"])
def test_every_mode_in_memory_becomes_8_bit(mode):
    """The converters see every mode, native byte order included."""
    image = MODES[mode][0] if mode in MODES else MODES["LA"][0].convert("La")
    assert to_resizable(image).mode in ("L", "LA", "RGB", "RGBA", "CMYK")
    grey = to_grey(image)
    assert grey.mode == "L"
    if is_deep_grey(mode):  # scaled, not clipped
        assert grey.getextrema() == (DARK, LIGHT)
