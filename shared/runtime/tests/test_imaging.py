"""The workers' reasons for an image that cannot be used: words, not Python."""

from __future__ import annotations

import io

import pytest
from PIL import Image, UnidentifiedImageError

from imgflow_runtime.imaging import UndecodableImage, decode_errors, describe


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (Image.DecompressionBombError("Image size (2 pixels) exceeds limit"), "too many pixels"),
        (OSError("image file is truncated (3 bytes not processed)"), "its data is cut short"),
        (ValueError("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"), "ICC"),
        (
            UnidentifiedImageError(f"cannot identify image file {io.BytesIO()!r}"),
            "not an image this service can read",
        ),
        (SyntaxError("broken PNG file"), "broken PNG file"),
        (EOFError(), "cut short"),
    ],
)
def test_reasons_are_words(exc: BaseException, words: str) -> None:
    reason = describe(exc)
    assert reason.startswith("cannot decode the image: ")
    assert words in reason
    assert " object at 0x" not in reason and "Error" not in reason


def test_a_malformed_header_is_final_but_a_time_limit_is_not() -> None:
    with pytest.raises(UndecodableImage), decode_errors():
        raise TypeError("Missing dimensions")  # Pillow's TIFF reader, for a bad directory

    class SoftTimeLimitExceeded(Exception):  # what Celery raises: not the image's fault
        pass

    with pytest.raises(SoftTimeLimitExceeded), decode_errors():
        raise SoftTimeLimitExceeded
