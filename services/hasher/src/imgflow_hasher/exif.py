"""The EXIF fields people search by: when, with which camera, which way up, and where.

Camera firmware writes all sorts: blank or zeroed dates, NUL-padded strings, rationals
over zero. Each field is read on its own and a malformed one becomes None, so bad
metadata never fails an image whose pixels are fine.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image

_DATETIME_FORMAT = "%Y:%m:%d %H:%M:%S"
_OFFSET = re.compile(r"^[+-](?:0\d|1[0-4]):[0-5]\d$")
_MAX_TEXT = 255


@dataclass(frozen=True)
class GpsPosition:
    latitude: float
    longitude: float
    altitude_m: float | None


@dataclass(frozen=True)
class ExifFacts:
    # The camera's wall-clock time: EXIF records no time zone, only (since 2.31) an offset.
    captured_at: datetime | None = None
    captured_offset: str | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    orientation: int | None = None
    # Only when the hasher is told to keep it (IMGFLOW_HASHER_KEEP_GPS).
    gps: GpsPosition | None = None


def read_exif(exif: Image.Exif, *, keep_gps: bool) -> ExifFacts:
    sub = _ifd(exif, ExifTags.IFD.Exif)
    captured_at, captured_offset = None, None
    # The shutter's time first: the file's own DateTime changes when software edits it.
    # The offsets (EXIF 2.31) all live in the Exif sub-IFD, DateTime itself in IFD0.
    for source, time_tag, offset_tag in (
        (sub, ExifTags.Base.DateTimeOriginal, ExifTags.Base.OffsetTimeOriginal),
        (sub, ExifTags.Base.DateTimeDigitized, ExifTags.Base.OffsetTimeDigitized),
        (exif, ExifTags.Base.DateTime, ExifTags.Base.OffsetTime),
    ):
        captured_at = _datetime(source.get(time_tag))
        if captured_at is not None:
            captured_offset = _offset(sub.get(offset_tag))
            break
    orientation = exif.get(ExifTags.Base.Orientation)
    return ExifFacts(
        captured_at=captured_at,
        captured_offset=captured_offset,
        camera_make=_text(exif.get(ExifTags.Base.Make)),
        camera_model=_text(exif.get(ExifTags.Base.Model)),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        gps=_gps(_ifd(exif, ExifTags.IFD.GPSInfo)) if keep_gps else None,
    )


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    """A sub-directory, or none when its offset or entries are garbage."""
    try:
        return exif.get_ifd(tag)
    except (KeyError, ValueError, TypeError, OSError, struct.error):
        return {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value[:_MAX_TEXT] or None


def _datetime(value: Any) -> datetime | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.strptime(text[:19], _DATETIME_FORMAT)
    except ValueError:  # "0000:00:00 00:00:00", blanks, other layouts
        return None


def _offset(value: Any) -> str | None:
    text = _text(value)
    return text if text and _OFFSET.match(text) else None


def _gps(gps: dict[int, Any]) -> GpsPosition | None:
    latitude = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    longitude = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if latitude is None or longitude is None or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    return GpsPosition(latitude, longitude, _altitude(gps))


def _degrees(dms: Any, ref: Any) -> float | None:
    """Degrees, minutes, seconds as EXIF rationals to signed decimal degrees."""
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(value):  # Pillow reads n/0 as nan
        return None
    return -value if _text(ref) in ("S", "W") else value


def _altitude(gps: dict[int, Any]) -> float | None:
    try:
        altitude = float(gps[ExifTags.GPS.GPSAltitude])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(altitude):
        return None
    ref = gps.get(ExifTags.GPS.GPSAltitudeRef)
    below_sea_level = ref in (1, b"\x01")
    return -altitude if below_sea_level else altitude
