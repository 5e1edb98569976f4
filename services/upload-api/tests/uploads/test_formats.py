import io

import pytest
from PIL import Image

from imgflow_upload_api.uploads.formats import HEAD_BYTES, ImageFormat, sniff_format


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
def test_sniffs_real_encodings(pil_format, expected):
    assert sniff_format(_encode(pil_format)[:HEAD_BYTES]) is expected


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
