"""Checks an upload must pass before anything is stored: format, completeness, pixels."""

from __future__ import annotations

from typing import BinaryIO, Protocol

from PIL import Image, UnidentifiedImageError

from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.formats import ImageFormat, looks_truncated, sniff_format


class Framed(Protocol):
    """What the framing check needs: a body's size and its first and last bytes
    (a SpooledBody, or the ends of an object already in S3)."""

    size: int
    head: bytes
    tail: bytes


# Formats Pillow can read the header of without plugins; HEIF/AVIF get a framing check only.
_PILLOW_READABLE = {
    ImageFormat.JPEG,
    ImageFormat.PNG,
    ImageFormat.GIF,
    ImageFormat.WEBP,
    ImageFormat.TIFF,
}


def check_framing(body: Framed) -> ImageFormat:
    """Cheap checks on the head and tail bytes; raises Problem on failure."""
    if body.size == 0:
        raise Problem(400, "empty-body", "Empty body", "the request has no image bytes")
    fmt = sniff_format(body.head)
    if fmt is None:
        raise Problem(
            415,
            "unsupported-format",
            "Unsupported image format",
            "the bytes are not a JPEG, PNG, GIF, WebP, TIFF, HEIF or AVIF image",
        )
    if looks_truncated(fmt, body.head, body.tail, body.size):
        raise Problem(
            422,
            "truncated-image",
            "Truncated image",
            f"the {fmt.value} data ends before the image does",
        )
    return fmt


def check_header(fmt: ImageFormat, stream: BinaryIO, max_pixels: int) -> tuple[int, int] | None:
    """Parse only the image header (no pixel decoding); blocking, run it in a thread."""
    if fmt not in _PILLOW_READABLE:
        return None
    try:
        with Image.open(stream) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise Problem(
            422, "image-too-large", "Image too large", str(exc), max_pixels=max_pixels
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise Problem(
            422, "corrupt-image", "Corrupt image", f"the {fmt.value} header does not parse: {exc}"
        ) from exc
    if width <= 0 or height <= 0:
        raise Problem(422, "corrupt-image", "Corrupt image", "the image has no pixels")
    if width * height > max_pixels:
        raise Problem(
            422,
            "image-too-large",
            "Image too large",
            f"{width}x{height} is {width * height} pixels; the limit is {max_pixels}",
            max_pixels=max_pixels,
        )
    return width, height
