"""Image formats recognised from their magic bytes, never from a client's Content-Type.

Also a cheap completeness check from the file's last bytes, so a truncated upload is
refused at the door without decoding any pixels.
"""

from __future__ import annotations

from enum import StrEnum

# Bytes of the head and tail a caller must keep to use this module.
HEAD_BYTES = 32
TAIL_BYTES = 16


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    TIFF = "tiff"
    HEIF = "heif"
    AVIF = "avif"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.GIF: "image/gif",
    ImageFormat.WEBP: "image/webp",
    ImageFormat.TIFF: "image/tiff",
    ImageFormat.HEIF: "image/heif",
    ImageFormat.AVIF: "image/avif",
}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def sniff_format(head: bytes) -> ImageFormat | None:
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ImageFormat.TIFF
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return ImageFormat.AVIF
        if brand in _HEIF_BRANDS:
            return ImageFormat.HEIF
    return None


def looks_truncated(fmt: ImageFormat, head: bytes, tail: bytes, size: int) -> bool:
    """True when the file's own framing says bytes are missing at the end."""
    if fmt is ImageFormat.JPEG:
        # EOI marker; some encoders pad after it, so look within the tail.
        return b"\xff\xd9" not in tail
    if fmt is ImageFormat.PNG:
        # The IEND chunk: zero length, type, fixed CRC.
        return not tail.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")
    if fmt is ImageFormat.GIF:
        return not tail.rstrip(b"\x00").endswith(b"\x3b")
    if fmt is ImageFormat.WEBP:
        declared = int.from_bytes(head[4:8], "little") + 8
        return size < declared
    return False
