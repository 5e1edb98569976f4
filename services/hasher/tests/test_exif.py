"""EXIF fields people search by, and GPS only when the deployment keeps it."""

import io
from datetime import datetime

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from imgflow_hasher.analysis import analyse
from imgflow_hasher.exif import ExifFacts, GpsPosition

AMSTERDAM = ((52.0, 22.0, 12.0), (4.0, 53.0, 24.0))


def photo(exif: Image.Exif, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 120, 150)).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def camera_exif(**gps_overrides) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon\x00\x00"  # Make, NUL-padded as firmware writes it
    exif[0x0110] = "  Canon EOS R6  "  # Model
    exif[0x0112] = 1  # Orientation
    exif[0x0132] = "2024:05:01 09:00:00"  # DateTime: when software last saved it
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2023:07:14 18:42:05"  # DateTimeOriginal
    sub[0x9011] = "+02:00"  # OffsetTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", AMSTERDAM[0]  # southern, to check the sign
    gps[3], gps[4] = "W", AMSTERDAM[1]
    gps[5], gps[6] = b"\x00", 12.5  # above sea level
    for tag, value in gps_overrides.items():
        gps[int(tag.removeprefix("tag"))] = value
    return exif


def test_capture_time_camera_and_orientation():
    facts = analyse(photo(camera_exif())).exif
    assert facts.captured_at == datetime(2023, 7, 14, 18, 42, 5)  # the shutter, not DateTime
    assert facts.captured_offset == "+02:00"
    assert (facts.camera_make, facts.camera_model) == ("Canon", "Canon EOS R6")
    assert facts.orientation == 1


def test_gps_is_dropped_unless_kept():
    assert analyse(photo(camera_exif())).exif.gps is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_gps_is_read_as_signed_decimal_degrees_when_kept(fmt):
    gps = analyse(photo(camera_exif(), fmt), keep_gps=True).exif.gps
    assert gps is not None
    assert gps.latitude == pytest.approx(-(52 + 22 / 60 + 12 / 3600))
    assert gps.longitude == pytest.approx(-(4 + 53 / 60 + 24 / 3600))
    assert gps.altitude_m == pytest.approx(12.5)


def test_below_sea_level_is_negative():
    gps = analyse(photo(camera_exif(tag5=b"\x01")), keep_gps=True).exif.gps
    assert gps == GpsPosition(pytest.approx(-52.37), pytest.approx(-4.89), -12.5)


def test_a_division_by_zero_in_gps_drops_the_position_not_the_image():
    minutes_over_zero = IFDRational(22, 0)
    gps = analyse(photo(camera_exif(tag2=(52.0, minutes_over_zero, 0.0))), keep_gps=True).exif.gps
    assert gps is None


def test_malformed_dates_fall_back_then_give_up():
    exif = camera_exif()
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    assert analyse(photo(exif)).exif.captured_at == datetime(2024, 5, 1, 9, 0, 0)

    exif[0x0132] = "    "
    facts = analyse(photo(exif)).exif
    assert (facts.captured_at, facts.captured_offset) == (None, None)


def test_no_exif_at_all():
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    assert analyse(out.getvalue()).exif == ExifFacts()
