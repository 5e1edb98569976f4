"""The door's inspection: real end of image data, trailing bytes, what is cut short, and
every parser complaint as a 4xx problem."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.formats import sniff_format
from imgflow_upload_api.uploads.image_end import CutShort, image_end
from imgflow_upload_api.uploads.validation import check_format, inspect

MAX_PIXELS = 50_000_000
# Something like a motion photo's video: an MP4's ftyp box and more.
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40


def _noisy(mode: str = "RGB", size: tuple[int, int] = (96, 64)) -> Image.Image:
    # Noise, so the JPEG's entropy-coded data holds 0xFF bytes (stuffed as FF 00).
    return Image.frombytes(
        "RGB", size, bytes((i * 7919) % 251 for i in range(size[0] * size[1] * 3))
    ).convert(mode)


def _encode(fmt: str, image: Image.Image | None = None, **options: object) -> bytes:
    out = io.BytesIO()
    (image or _noisy()).save(out, fmt, **options)
    return out.getvalue()


def _with_exif_thumbnail() -> bytes:
    """A JPEG whose APP1 holds an EXIF thumbnail: a whole JPEG, EOI and all, before the
    main image's scan. A search for FF D9 finds the thumbnail's end."""
    exif = Image.Exif()
    exif[0x0112] = 1
    # After the TIFF structure, as cameras store it: the walk skips APP1 by its length.
    data = exif.tobytes() + _encode("JPEG", _noisy(size=(16, 16)))
    return _encode("JPEG", exif=data)


def _inspect(data: bytes):
    fmt = check_format(len(data), data[:32])
    return inspect(fmt, io.BytesIO(data), len(data), MAX_PIXELS, "digest")


COMPLETE = {
    "jpeg": _encode("JPEG"),
    "progressive-jpeg": _encode("JPEG", progressive=True),
    "jpeg-restart-markers": _encode("JPEG", restart_marker_blocks=1),
    "jpeg-exif-thumbnail": _with_exif_thumbnail(),
    "png": _encode("PNG"),
    "gif": _encode("GIF"),
    "animated-gif": _encode(
        "GIF", _noisy(), save_all=True, append_images=[_noisy().rotate(90)], duration=50
    ),
    "webp": _encode("WEBP"),
    "tiff": _encode("TIFF"),
    "mpo": _encode("MPO", _noisy(), save_all=True, append_images=[_noisy().rotate(180)]),
}


@pytest.mark.parametrize("name", list(COMPLETE))
def test_a_complete_file_has_no_trailing_bytes(name):
    data = COMPLETE[name]
    inspection = _inspect(data)
    assert inspection.trailing_bytes == 0
    assert (inspection.width, inspection.height) == (96, 64)


@pytest.mark.parametrize("name", [n for n in COMPLETE if n != "tiff"])
@pytest.mark.parametrize("trailer", [b"\n", MP4, b"\xff\xd9\x00\x00", b"IEND" * 3])
def test_bytes_after_the_image_are_measured_not_refused(name, trailer):
    data = COMPLETE[name] + trailer
    assert _inspect(data).trailing_bytes == len(trailer)


@pytest.mark.parametrize("name", list(COMPLETE))
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_file_cut_short_is_refused(name, keep):
    data = COMPLETE[name]
    cut = data[: int(len(data) * keep)]
    with pytest.raises(Problem) as refused:
        _inspect(cut)
    assert refused.value.status == 422
    assert refused.value.code in {"truncated-image", "corrupt-image"}


@pytest.mark.parametrize("name", ["jpeg", "png", "gif", "webp"])
def test_losing_only_the_end_marker_is_truncation(name):
    data = COMPLETE[name]
    with pytest.raises(Problem) as refused:
        _inspect(data[:-1])
    assert refused.value.code == "truncated-image"


def test_an_mpo_whose_second_image_is_cut_is_truncated():
    data = COMPLETE["mpo"]
    with pytest.raises(Problem) as refused:
        _inspect(data[:-10])
    assert refused.value.code in {"truncated-image", "corrupt-image"}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _png_with_chunk_before_idat(chunk: bytes) -> bytes:
    png = _encode("PNG", _noisy(size=(8, 8)))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def test_a_text_chunk_bomb_is_a_metadata_problem():
    bomb = zlib.compress(b"\x00" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), 9)
    data = _png_with_chunk_before_idat(_png_chunk(b"zTXt", b"comment\x00\x00" + bomb))
    with pytest.raises(Problem) as refused:
        _inspect(data)
    assert (refused.value.status, refused.value.code) == (422, "metadata-too-large")


def test_an_icc_chunk_bomb_is_a_metadata_problem():
    bomb = zlib.compress(b"\x00" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), 9)
    data = _png_with_chunk_before_idat(_png_chunk(b"iCCP", b"icc\x00\x00" + bomb))
    with pytest.raises(Problem) as refused:
        _inspect(data)
    assert (refused.value.status, refused.value.code) == (422, "metadata-too-large")


def test_an_unexpected_parser_error_is_still_corrupt_image(monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("a parser bug")

    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(Problem) as refused:
        _inspect(COMPLETE["png"])
    assert (refused.value.status, refused.value.code) == (422, "corrupt-image")
    assert "a parser bug" in refused.value.detail
    assert "digest" in caplog.text


def test_stream_errors_pass_through_untouched():
    class Unreadable(io.BytesIO):
        def read(self, *args):
            raise TimeoutError("S3 is down")

    data = COMPLETE["png"]
    with pytest.raises(TimeoutError):
        inspect(sniff_format(data), Unreadable(data), len(data), MAX_PIXELS, "d", (TimeoutError,))


def test_tiff_strips_past_the_end_are_truncation():
    data = COMPLETE["tiff"]
    assert struct.unpack("<I", data[4:8])[0] < 100  # the directory comes before the strips
    with pytest.raises(Problem) as refused:
        _inspect(data[:-100])
    assert refused.value.code == "truncated-image"


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


@pytest.mark.parametrize("fmt", ["heif", "avif"])
def test_iso_media_boxes_measure_trailers_and_cuts(fmt):
    brand = b"heic" if fmt == "heif" else b"avif"
    data = (
        _box(b"ftyp", brand + b"\x00\x00\x00\x00mif1")
        + _box(b"meta", b"\x00" * 40)
        + _box(b"mdat", b"\x01" * 300)
    )
    kind = sniff_format(data[:32])
    assert image_end(kind, io.BytesIO(data), len(data)) == len(data)
    assert image_end(kind, io.BytesIO(data + b"\n\x00\x01"), len(data) + 3) == len(data)
    with pytest.raises(CutShort):
        image_end(kind, io.BytesIO(data[:-5]), len(data) - 5)


def test_a_file_pillow_cannot_identify_is_refused_in_words():
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40  # a PNG signature and nothing of a PNG
    with pytest.raises(Problem) as refused:
        _inspect(data)
    assert refused.value.code == "corrupt-image"
    assert " object at 0x" not in refused.value.detail
    assert "cannot identify it as an image" in refused.value.detail
