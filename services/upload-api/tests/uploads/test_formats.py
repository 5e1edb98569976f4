import io

import pytest
from PIL import Image

from imgflow_upload_api.uploads.formats import (
    HEAD_BYTES,
    TAIL_BYTES,
    ImageFormat,
    looks_truncated,
    sniff_format,
)


def _encode(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("pil_format", "expected"),
    [
        ("JPEG", ImageFormat.JPEG),
        ("PNG", ImageFormat.PNG),
        ("GIF", ImageFormat.GIF),
        ("WEBP", ImageFormat.WEBP),
        ("TIFF", ImageFormat.TIFF),
    ],
)
def test_sniffs_real_encodings_and_sees_them_complete(pil_format, expected):
    data = _encode(pil_format)
    fmt = sniff_format(data[:HEAD_BYTES])
    assert fmt is expected
    assert not looks_truncated(fmt, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))


@pytest.mark.parametrize("pil_format", ["JPEG", "PNG", "GIF", "WEBP"])
def test_cut_files_look_truncated(pil_format):
    data = _encode(pil_format)[:-20]
    fmt = sniff_format(data[:HEAD_BYTES])
    assert fmt is not None
    assert looks_truncated(fmt, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00", ImageFormat.HEIF),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", ImageFormat.AVIF),
        (b"\x00\x00\x00\x1cftypisom\x00\x00\x00\x00", None),
        (b"%PDF-1.7", None),
        (b"<svg xmlns=", None),
        (b"", None),
    ],
)
def test_sniffs_iso_media_brands_and_refuses_the_rest(head, expected):
    assert sniff_format(head) == expected
