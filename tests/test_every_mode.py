"""Every mode Pillow loads, in every container Pillow writes it to (and by hand where it
does not: 48/64-bit, premultiplied alpha), renders in the thumbnailer with the right
tones and is read by the hasher and the deduper: 16-bit and float scaled (not clipped to
white), palettes and colour keys expanded, premultiplied and padded layouts undone."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from imgflow_deduper.pixels import decode
from imgflow_hasher.analysis import analyse
from imgflow_hasher.perceptual import to_grey
from imgflow_runtime.imaging import is_deep_grey
from imgflow_thumbnailer.colour import to_resizable
from services.thumbnailer.tests.corpus import encode, halves
from services.thumbnailer.tests.test_colour import close, left_and_right

SIZE = (128, 96)
WARM, COOL = (200, 80, 60), (60, 80, 200)
DARK, LIGHT = 60, 200  # 8-bit grey levels
CONTAINERS = ("PNG", "TIFF", "WEBP", "GIF", "JPEG")


def _grey(mode: str, scale: float) -> Image.Image:
    """DARK | LIGHT in a deep grey mode, as ``scale`` times the 8-bit level."""
    return halves(SIZE, round(DARK * scale), round(LIGHT * scale), mode)


def _premultiplied(mode: str) -> Image.Image:
    return halves(SIZE, (*WARM, 255)[: len(mode)], (*COOL, 255)[: len(mode)], mode)


# name: (image, expected left, expected right); greys are expected as (v, v, v).
MODES: dict[str, tuple[Image.Image, tuple[int, ...], tuple[int, ...]]] = {
    "1": (halves(SIZE, 0, 1, "1"), (0,) * 3, (255,) * 3),
    "L": (halves(SIZE, DARK, LIGHT, "L"), (DARK,) * 3, (LIGHT,) * 3),
    "LA": (halves(SIZE, (DARK, 255), (LIGHT, 255), "LA"), (DARK,) * 3, (LIGHT,) * 3),
    "P": (halves(SIZE, WARM, COOL, "RGB").quantize(4), WARM, COOL),
    "PA": (halves(SIZE, WARM, COOL, "RGB").quantize(4).convert("PA"), WARM, COOL),
    "I": (_grey("I", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16": (_grey("I;16", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16B": (_grey("I;16B", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16L": (_grey("I;16L", 257), (DARK,) * 3, (LIGHT,) * 3),
    "I;16N": (_grey("I;16N", 257), (DARK,) * 3, (LIGHT,) * 3),
    "F": (halves(SIZE, DARK / 255, LIGHT / 255, "F"), (DARK,) * 3, (LIGHT,) * 3),
    "RGB": (halves(SIZE, WARM, COOL, "RGB"), WARM, COOL),
    "RGBA": (halves(SIZE, (*WARM, 255), (*COOL, 255), "RGBA"), WARM, COOL),
    "RGBa": (halves(SIZE, (*WARM, 255), (*COOL, 255), "RGBA").convert("RGBa"), WARM, COOL),
    "RGBX": (halves(SIZE, WARM, COOL, "RGB").convert("RGBX"), WARM, COOL),
    "CMYK": (halves(SIZE, WARM, COOL, "RGB").convert("CMYK"), WARM, COOL),
    "YCbCr": (halves(SIZE, WARM, COOL, "RGB").convert("YCbCr"), WARM, COOL),
    "LAB": (halves(SIZE, WARM, COOL, "RGB").convert("LAB"), WARM, COOL),
    "HSV": (halves(SIZE, WARM, COOL, "RGB").convert("HSV"), WARM, COOL),
}


def _written(image: Image.Image, container: str) -> bytes | None:
    """``image`` in ``container``, or None where Pillow does not write that mode there."""
    try:
        options = {"quality": 95} if container == "JPEG" else {}
        if container == "WEBP":
            options = {"lossless": True}
        return encode(image, container, **options)
    except (OSError, ValueError, KeyError):
        return None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def deep_png(channels: int, left: tuple[int, ...], right: tuple[int, ...]) -> bytes:
    """A 16-bit-per-channel PNG (48-bit RGB, 64-bit RGBA), written by hand: Pillow cannot."""
    width, height = SIZE
    colour_type = {3: 2, 4: 6}[channels]
    row = b"".join(
        struct.pack(f">{channels}H", *(v * 257 for v in (left if x < width // 2 else right)))
        for x in range(width)
    )
    raw = b"".join(b"\x00" + row for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def tiff_by_hand(
    photometric: int, bits: int, left: tuple[int, ...], right: tuple[int, ...], extra: int = -1
) -> bytes:
    """A little-endian, one-strip TIFF of any sample depth and alpha kind (``extra``: 1
    associated, 2 unassociated): the layouts Pillow reads but does not write."""
    width, height = SIZE
    channels, code = len(left), {8: "B", 16: "H"}[bits]
    row = b"".join(
        struct.pack(f"<{channels}{code}", *(left if x < width // 2 else right))
        for x in range(width)
    )
    pixels = row * height
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, channels, None),  # BitsPerSample, stored after the directory
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, photometric),
        (273, 4, 1, None),  # StripOffsets
        (277, 3, 1, channels),
        (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
    ] + ([(338, 3, 1, extra)] if extra >= 0 else [])
    bits_at = 8 + 2 + 12 * len(entries) + 4
    pixels_at = bits_at + 2 * channels
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at if channels > 2 else bits | (bits << 16 if channels == 2 else 0)
        if tag == 273:
            value = pixels_at
        packed = (
            struct.pack("<HH", value & 0xFFFF, value >> 16)
            if kind == 3
            else struct.pack("<I", value)
        )
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + struct.pack(f"<{channels}H", *[bits] * channels) + pixels
    return bytes(out)


def _deep(colour: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v * 257 for v in colour)


def transparent_key_png(mode: str) -> bytes:
    """L or RGB with a tRNS colour key on the right half: it shows white on a JPEG."""
    left, right = (DARK, LIGHT) if mode == "L" else (WARM, COOL)
    return encode(halves(SIZE, left, right, mode), "PNG", transparency=right)


SPECIMENS = {
    f"{mode}-{container.lower()}": (data, left, right)
    for mode, (image, left, right) in MODES.items()
    for container in CONTAINERS
    # Pillow writes a deep grey to 8-bit containers by clipping it: not a deep file.
    if not (is_deep_grey(image.mode) and container not in ("PNG", "TIFF"))
    and (data := _written(image, container)) is not None
}
SPECIMENS |= {
    "rgb48-png": (deep_png(3, WARM, COOL), WARM, COOL),
    "rgba64-png": (deep_png(4, (*WARM, 255), (*COOL, 255)), WARM, COOL),
    "rgb48-tiff": (tiff_by_hand(2, 16, _deep(WARM), _deep(COOL)), WARM, COOL),
    "rgba64-tiff": (tiff_by_hand(2, 16, _deep((*WARM, 255)), _deep((*COOL, 255)), 2), WARM, COOL),
    # Associated (premultiplied) alpha: Pillow reads these as La, and RGBA via RGBa.
    "La-tiff": (tiff_by_hand(1, 8, (DARK, 255), (LIGHT, 255), 1), (DARK,) * 3, (LIGHT,) * 3),
    "RGBa-tiff": (tiff_by_hand(2, 8, (*WARM, 255), (*COOL, 255), 1), WARM, COOL),
}
# Lossy or palette containers round a colour a little; a scaling bug is off by 100+.
TOLERANCE = 12


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
    from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat

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
