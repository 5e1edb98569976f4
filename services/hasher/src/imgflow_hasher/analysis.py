"""Facts about an image read from its stored bytes: checksum, format, geometry, EXIF and
perceptual hashes. Plain functions: the worker only moves bytes and rows around them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from imgflow_hasher.exif import ExifFacts, read_exif
from imgflow_hasher.perceptual import dhash, hash_source, phash
from imgflow_runtime.imaging import (
    UndecodableImage,
    decode_errors,
    displayed_size,
    open_image,
    orientation,
    upright,
)

__all__ = [
    "ImageFacts",
    "UndecodableImage",
    "analyse",
    "integrity_problem",
    "is_jpeg",
    "sha256_hex",
]


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    byte_size: int
    format: str
    mode: str
    # As displayed, after the EXIF orientation: the renditions' aspect, not the stored one.
    width: int
    height: int
    frames: int
    exif: ExifFacts
    # 64-bit hashes as signed integers (see perceptual.py), of the upright image.
    phash: int
    dhash: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def integrity_problem(
    actual_sha256: str,
    actual_size: int,
    expected_sha256: str,
    expected_size: int,
    source: str = "",
) -> str | None:
    """Why the stored bytes are not the ones accepted at upload, or None when they are.
    ``source``: where ``actual_sha256`` came from, when not from hashing the bytes here."""
    if actual_sha256 == expected_sha256:
        return None
    return (
        f"stored object is corrupt: SHA-256 {actual_sha256} ({actual_size} bytes{source}) "
        f"differs from {expected_sha256} ({expected_size} bytes) at upload"
    )


def analyse(
    data: bytes,
    *,
    keep_gps: bool = False,
    sha256: str | None = None,
    upright_copy: bytes | None = None,
    byte_size: int | None = None,
) -> ImageFacts:
    """Raises ``UndecodableImage`` when the bytes are not a decodable image.

    ``sha256``: the bytes' digest when the caller has computed it already (5 MB cost ~10 ms).
    ``upright_copy``: the thumbnailer's analysis copy (keys.analysis_key): the perceptual
    hashes are taken from it, and the original is only parsed (format, size, EXIF), not
    decoded, which is most of what this costs for a large JPEG.
    ``byte_size``: the whole file's size when ``data`` is only its first bytes (a JPEG's
    header, with ``upright_copy`` given: nothing past the header is read then).
    """
    with decode_errors(), open_image(data) as image:
        fmt, mode, frames = image.format, image.mode, getattr(image, "n_frames", 1)
        full_size = image.size
        # Read before decoding: Pillow's TIFF reader drops the orientation tag as it turns
        # the pixels upright. Inside decode_errors: PNG decodes the whole file to find its
        # EXIF, and a failure there must fail the image rather than leave it half loaded.
        exif = read_exif(image.getexif(), keep_gps=keep_gps)
        grey = hash_source(image) if upright_copy is None else None
        # What decoding left to do: JPEG, PNG, WebP, AVIF keep the tag; TIFF and HEIF
        # readers have applied it already. Pillow's TIFF reader reports the upright size
        # from the start and turns the pixels (dropping the tag) only when they load.
        undecoded_tiff = grey is None and fmt == "TIFF"
        left = 1 if undecoded_tiff else orientation(image)
        # pillow-heif applies HEIF's own rotation, resets the tag to 1, and keeps the EXIF
        # value it found here: that is the one to report.
        found = image.info.get("original_orientation")
    if found is not None:
        exif = replace(exif, orientation=found if found in range(1, 9) else None)
    if grey is None:
        with decode_errors(), open_image(upright_copy or b"") as copy:
            grey = hash_source(copy)
    else:
        grey = upright(grey, left)
    width, height = displayed_size(full_size, left)
    return ImageFacts(
        sha256=sha256 or sha256_hex(data),
        byte_size=len(data) if byte_size is None else byte_size,
        format=(fmt or "unknown").lower(),
        mode=mode,
        width=width,
        height=height,
        frames=frames,
        exif=exif,
        phash=phash(grey),
        dhash=dhash(grey),
    )
