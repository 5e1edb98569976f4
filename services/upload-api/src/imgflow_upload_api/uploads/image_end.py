"""Where an image's own data ends, found by walking its structure (never by looking for an
end marker near the end of the file).

Phones append things after the image: Google's and Samsung's motion photos put an MP4
after the JPEG's end, editors leave a newline after PNG's ``IEND``. Those bytes are not
part of the image and Pillow never reads them; a file whose structure stops before its
image does is cut short. Walking the structure tells the two apart:

- JPEG: marker segments by their lengths (so an EXIF thumbnail's EOI inside APP1 is
  skipped), entropy-coded data up to the next marker, until the EOI after the last scan.
  An MPO's further images, which follow that EOI, are added by the caller from the MPF
  index Pillow has parsed.
- PNG: chunks by their lengths up to ``IEND``.
- GIF: blocks and their sub-blocks up to the trailer (``;``).
- WebP: the RIFF container's declared size.
- HEIF/AVIF: top-level ISO BMFF boxes by their sizes, until the bytes stop being boxes.
- TIFF has no end: its directories and strips may lie anywhere, so ``None``; the caller
  checks that the first directory's strips lie inside the file instead.

Reads by seeking, so a body in memory, a temporary file or an S3 object read by ranges
all serve; the JPEG scan is a compiled regular expression over large reads.
"""

from __future__ import annotations

import re
import struct
from typing import BinaryIO

from imgflow_upload_api.uploads.formats import ImageFormat


class CutShort(Exception):
    """The file ends before its image data does."""


# In entropy-coded data 0xFF is followed by 0x00 (a stuffed byte), 0xD0-0xD7 (a restart
# marker) or another 0xFF (fill); anything else starts a marker segment.
_JPEG_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_SCAN_CHUNK = 1024 * 1024
_PNG_SIGNATURE = 8
_GIF_TRAILER = 0x3B


def image_end(fmt: ImageFormat, stream: BinaryIO, size: int) -> int | None:
    """The offset just past the image data (``size`` when nothing follows it), or None
    for a format without an end (TIFF). Raises ``CutShort``."""
    walker = _WALKERS.get(fmt)
    if walker is None:
        return None
    end = walker(_Reader(stream, size))
    if end > size:
        raise CutShort(f"the {fmt.value} data needs {end} bytes; the file has {size}")
    return end


class _Reader:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.size = size

    def read(self, position: int, length: int, what: str) -> bytes:
        if position + length > self.size:
            raise CutShort(f"the file ends inside {what} at byte {position}")
        self.stream.seek(position)
        data = self.stream.read(length)
        if len(data) != length:
            raise CutShort(f"the file ends inside {what} at byte {position}")
        return data

    def find(self, pattern: re.Pattern[bytes], position: int, what: str) -> int:
        """The offset of the first match at or after ``position``."""
        while position < self.size:
            self.stream.seek(position)
            # One byte of overlap, so a match split between two reads is seen.
            chunk = self.stream.read(_SCAN_CHUNK + 1)
            if not chunk:
                break
            match = pattern.search(chunk)
            if match is not None:
                return position + match.start()
            if len(chunk) <= _SCAN_CHUNK:
                break
            position += _SCAN_CHUNK
        raise CutShort(f"the file ends inside {what}")


def jpeg_end(stream: BinaryIO, size: int, start: int = 0) -> int:
    """The offset just past the JPEG that starts at ``start``. Raises ``CutShort``."""
    return _jpeg_end(_Reader(stream, size), start)


def _jpeg_end(reader: _Reader, start: int = 0) -> int:
    position = start + 2  # after SOI
    while True:
        prefix = reader.read(position, 2, "a JPEG marker")
        if prefix[0] != 0xFF or prefix[1] in (0x00, 0xFF):
            # Stray bytes or fill before a marker: libjpeg skips to the next marker too.
            position = reader.find(_JPEG_MARKER, position, "JPEG data")
            continue
        marker = prefix[1]
        if marker == 0xD9:  # EOI
            return position + 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # segments without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", reader.read(position + 2, 2, "a JPEG segment length"))
        position += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data runs to the next marker
            position = reader.find(_JPEG_MARKER, position, "the JPEG's compressed data")


def _png_end(reader: _Reader) -> int:
    position = _PNG_SIGNATURE
    while True:
        length, kind = struct.unpack(">I4s", reader.read(position, 8, "a PNG chunk header"))
        position += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return position


def _gif_end(reader: _Reader) -> int:
    (flags,) = reader.read(10, 1, "the GIF screen descriptor")
    position = 13 + _colour_table_bytes(flags)
    while True:
        (introducer,) = reader.read(position, 1, "a GIF block")
        if introducer == _GIF_TRAILER:
            return position + 1
        if introducer == 0x21:  # extension: label, then sub-blocks
            position = _skip_sub_blocks(reader, position + 2)
        elif introducer == 0x2C:  # image: descriptor, colour table, LZW code size, data
            (flags,) = reader.read(position + 9, 1, "a GIF image descriptor")
            position = _skip_sub_blocks(reader, position + 11 + _colour_table_bytes(flags))
        else:
            # Not a block: the image data ended here (Pillow stops reading frames too).
            return position


def _colour_table_bytes(flags: int) -> int:
    return 3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(reader: _Reader, position: int) -> int:
    while True:
        (length,) = reader.read(position, 1, "GIF image data")
        position += 1 + length
        if length == 0:
            return position


def _webp_end(reader: _Reader) -> int:
    (declared,) = struct.unpack("<I", reader.read(4, 4, "the RIFF header"))
    return 8 + declared + (declared & 1)  # RIFF pads odd chunks with a byte


_BOX_TYPE = re.compile(rb"[\x20-\x7e]{4}")


def _iso_media_end(reader: _Reader) -> int:
    position = 0
    while reader.size - position >= 8:
        size, kind = struct.unpack(">I4s", reader.read(position, 8, "a box header"))
        if not _BOX_TYPE.fullmatch(kind) or (position == 0 and kind != b"ftyp"):
            break  # not a box: what follows is not part of the image
        if size == 0:  # the box runs to the end of the file
            return reader.size
        if size == 1:
            (size,) = struct.unpack(">Q", reader.read(position + 8, 8, "a box size"))
        if size < 8:
            break
        position += size
    return position


_WALKERS = {
    ImageFormat.JPEG: _jpeg_end,
    ImageFormat.PNG: _png_end,
    ImageFormat.GIF: _gif_end,
    ImageFormat.WEBP: _webp_end,
    ImageFormat.HEIF: _iso_media_end,
    ImageFormat.AVIF: _iso_media_end,
}
