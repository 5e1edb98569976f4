"""Checks an upload must pass before anything is stored: format, header, completeness.

Every exception raised while parsing the client's bytes becomes a 4xx problem: the
parser's known complaints by their kind, anything else as ``corrupt-image`` with the
parser's own message (logged with the bytes' digest, so the file can be found again).
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, MpoImagePlugin, TiffImagePlugin, UnidentifiedImageError

from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.formats import ImageFormat, sniff_format
from imgflow_upload_api.uploads.image_end import CutShort, image_end, jpeg_end

log = logging.getLogger(__name__)

# Formats Pillow can read the header of without plugins; HEIF/AVIF get a structure check only.
_PILLOW_READABLE = {
    ImageFormat.JPEG,
    ImageFormat.PNG,
    ImageFormat.GIF,
    ImageFormat.WEBP,
    ImageFormat.TIFF,
}
# What Pillow raises for bytes it cannot parse (a malformed TIFF directory trips lookups
# and type errors); anything else is unexpected but still the bytes' fault (and logged).
_PARSE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    TypeError,
    LookupError,
    ArithmeticError,
)
# Pillow's limits on PNG text and ICC chunks, which it enforces with a plain ValueError.
_METADATA_LIMITS = ("MAX_TEXT_CHUNK", "MAX_TEXT_MEMORY")
_TIFF_STRIPS = ((273, 279), (324, 325))  # (offsets, byte counts) of strips, of tiles


@dataclass(frozen=True)
class Inspection:
    """What the door learnt: the header's size (None where it does not parse HEIF/AVIF)
    and how many bytes follow the image data (a motion photo's video, padding)."""

    width: int | None
    height: int | None
    trailing_bytes: int


def check_format(size: int, head: bytes) -> ImageFormat:
    """The format from the first bytes; raises Problem for none or an unsupported one."""
    if size == 0:
        raise Problem(400, "empty-body", "Empty body", "the request has no image bytes")
    fmt = sniff_format(head)
    if fmt is None:
        raise Problem(
            415,
            "unsupported-format",
            "Unsupported image format",
            "the bytes are not a JPEG, PNG, GIF, WebP, TIFF, HEIF or AVIF image",
        )
    return fmt


def inspect(
    fmt: ImageFormat,
    stream: BinaryIO,
    size: int,
    max_pixels: int,
    digest: str,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Inspection:
    """Parse the header (no pixel decoding), then find where the image data ends.

    Blocking: run it in a thread for large bodies. ``digest`` names the bytes in logs;
    ``passthrough``: errors of the stream itself (an S3 read), re-raised as they are.
    """
    try:
        return _inspect(fmt, stream, size, max_pixels)
    except (Problem, *passthrough):
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(str(exc), max_pixels) from exc
    except CutShort as exc:
        raise Problem(
            422,
            "truncated-image",
            "Truncated image",
            f"the {fmt.value} data ends before the image does: {exc}",
        ) from exc
    except ValueError as exc:
        if any(limit in str(exc) for limit in _METADATA_LIMITS):
            raise Problem(
                422,
                "metadata-too-large",
                "Metadata too large",
                f"a text or ICC chunk is larger than allowed: {exc}",
            ) from exc
        raise _corrupt(fmt, exc) from exc
    except _PARSE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc
    except Exception as exc:
        # A parser bug or a case nobody foresaw: still the bytes' doing, never a 500.
        log.warning("unexpected error parsing %s upload %s", fmt.value, digest, exc_info=True)
        raise _corrupt(fmt, exc) from exc


def _inspect(fmt: ImageFormat, stream: BinaryIO, size: int, max_pixels: int) -> Inspection:
    if fmt not in _PILLOW_READABLE:
        end = image_end(fmt, stream, size)
        return Inspection(None, None, 0 if end is None else size - end)
    if fmt is ImageFormat.WEBP:
        # libwebp parses the whole container to read the header: a cut one is found
        # first by its RIFF size, so it is called what it is.
        image_end(fmt, stream, size)
    with Image.open(stream, formats=[_PILLOW_FORMATS[fmt]]) as image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise Problem(422, "corrupt-image", "Corrupt image", "the image has no pixels")
        if width * height > max_pixels:
            raise _too_many_pixels(
                f"{width}x{height} is {width * height} pixels; the limit is {max_pixels}",
                max_pixels,
            )
        if isinstance(image, TiffImagePlugin.TiffImageFile):
            _check_pages(image, size)
        further = _further_images(image)
    end = image_end(fmt, stream, size)
    for start in further:
        # An MPO's other images follow the first one's EOI: each ends with its own.
        end = max(end or 0, jpeg_end(stream, size, start))
    return Inspection(width, height, 0 if end is None else size - end)


_PILLOW_FORMATS = {
    ImageFormat.JPEG: "JPEG",
    ImageFormat.PNG: "PNG",
    ImageFormat.GIF: "GIF",
    ImageFormat.WEBP: "WEBP",
    ImageFormat.TIFF: "TIFF",
}


def _check_pages(image: TiffImagePlugin.TiffImageFile, size: int) -> None:
    """TIFF has no end marker: every page's strips (or tiles) must lie in the file.
    (Reading the directories is cheap; no pixels are decoded.)"""
    for page in range(image.n_frames):
        image.seek(page)
        _check_strips(image, size)
    image.seek(0)


def _check_strips(image: TiffImagePlugin.TiffImageFile, size: int) -> None:
    for offsets_tag, counts_tag in _TIFF_STRIPS:
        offsets, counts = image.tag_v2.get(offsets_tag), image.tag_v2.get(counts_tag)
        if not offsets or not counts:
            continue
        needed = max(int(o) + int(c) for o, c in zip(offsets, counts, strict=False))
        if needed > size:
            raise CutShort(f"its pixel data needs {needed} bytes; the file has {size}")


def _further_images(image: Image.Image) -> list[int]:
    """Where an MPO's images after the first start (Pillow parses its MPF index)."""
    if not isinstance(image, MpoImagePlugin.MpoImageFile):
        return []
    starts = []
    for frame in range(1, image.n_frames):
        image.seek(frame)  # parses that image's header: raises if it is not there
        starts.append(image.offset)
    return starts


def _too_many_pixels(detail: str, max_pixels: int) -> Problem:
    return Problem(422, "image-too-large", "Image too large", detail, max_pixels=max_pixels)


# Pillow names the stream it read in some messages ("cannot identify image file
# <tempfile.SpooledTemporaryFile object at 0x...>"): a Python repr, not a reason.
_REPR = re.compile(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _corrupt(fmt: ImageFormat, exc: BaseException) -> Problem:
    if isinstance(exc, UnidentifiedImageError):
        message = "Pillow cannot identify it as an image"
    else:
        message = _REPR.sub("", str(exc)).strip() or type(exc).__name__
    return Problem(
        422, "corrupt-image", "Corrupt image", f"the {fmt.value} file does not parse: {message}"
    )
