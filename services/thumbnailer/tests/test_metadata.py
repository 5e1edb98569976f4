"""Renditions are public: no EXIF, GPS, serial numbers, comments, XMP or ICC profile."""

import io

import pytest
from PIL import Image

from imgflow_thumbnailer.encoding import EncodeOptions, OutputFormat
from imgflow_thumbnailer.rendering import render_renditions
from services.thumbnailer.tests.corpus import PRIVATE_STRINGS, with_private_metadata


@pytest.mark.parametrize("source", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_renditions_carry_no_metadata(source, fmt):
    original = with_private_metadata(source)
    # The corpus really carries what must be dropped.
    assert any(secret in original for secret in PRIVATE_STRINGS)
    with Image.open(io.BytesIO(original)) as opened:
        assert opened.getexif().get_ifd(0x8825)  # GPS

    renditions = render_renditions(original, [300, 150], options=EncodeOptions(format=fmt))

    for r in renditions:
        for secret in PRIVATE_STRINGS:
            assert secret not in r.data, (secret, r.size)
        with Image.open(io.BytesIO(r.data)) as image:
            assert not image.getexif(), r.size
            assert not {"exif", "icc_profile", "xmp", "comment"} & set(image.info), image.info
