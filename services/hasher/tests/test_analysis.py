"""Facts from stored bytes: checksum, format, displayed size, frames, and the integrity check."""

import hashlib
import io
from dataclasses import replace

import pillow_heif
import pytest
from PIL import Image

from imgflow_hasher.analysis import (
    UndecodableImage,
    analyse,
    integrity_problem,
    is_jpeg,
    sha256_hex,
)
from imgflow_hasher.perceptual import hamming

pillow_heif.register_heif_opener()


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def oriented(fmt: str, orientation: int, size=(320, 120)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.new("RGB", size, (200, 80, 60)), fmt, exif=exif.tobytes())


def test_facts_come_from_the_bytes():
    data = encode(Image.new("LA", (321, 123)), "PNG")
    facts = analyse(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    assert (facts.width, facts.height, facts.format, facts.mode) == (321, 123, "png", "LA")
    assert facts.byte_size == len(data)
    assert facts.frames == 1


@pytest.mark.parametrize(
    ("fmt", "mode", "expected_format"),
    [
        ("JPEG", "RGB", "jpeg"),
        ("JPEG", "CMYK", "jpeg"),
        ("JPEG", "L", "jpeg"),
        ("PNG", "P", "png"),
        ("PNG", "I;16", "png"),
        ("TIFF", "RGB", "tiff"),
        ("WEBP", "RGBA", "webp"),
        ("HEIF", "RGB", "heif"),
        ("AVIF", "RGB", "avif"),
    ],
)
def test_every_accepted_format_and_mode_is_read(fmt, mode, expected_format):
    data = encode(Image.new(mode, (90, 40)), fmt)
    facts = analyse(data)
    assert (facts.format, facts.mode, facts.width, facts.height) == (expected_format, mode, 90, 40)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_count_their_frames(fmt):
    frames = [Image.new("RGB", (20, 10), (i * 80, 0, 0)) for i in range(3)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:])
    assert analyse(data).frames == 3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
@pytest.mark.parametrize(("orientation", "size"), [(1, (320, 120)), (6, (120, 320))])
def test_size_is_as_displayed_after_the_exif_orientation(fmt, orientation, size):
    facts = analyse(oriented(fmt, orientation))
    assert (facts.width, facts.height) == size
    # Pillow's AVIF writer leaves out an orientation of 1, the default.
    assert facts.exif.orientation == orientation or (orientation, fmt) == (1, "AVIF")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(encode(Image.effect_noise((300, 300), 50), "PNG")[:-2000], id="png"),
        pytest.param(
            encode(Image.effect_noise((300, 300), 50).convert("RGB"), "JPEG")[:-2000], id="jpeg"
        ),
        pytest.param(
            encode(Image.effect_noise((300, 300), 50).convert("RGB"), "HEIF")[:-2000], id="heif"
        ),
        pytest.param(b"\x89PNG\r\n\x1a\n garbage after a signature", id="garbage"),
    ],
)
def test_truncated_or_garbage_bytes_are_undecodable(data):
    with pytest.raises(UndecodableImage):
        analyse(data)


def test_integrity_passes_the_uploaded_bytes_and_names_a_mismatch():
    data = b"the bytes that were uploaded"
    digest = hashlib.sha256(data).hexdigest()
    assert integrity_problem(sha256_hex(data), len(data), digest, len(data)) is None

    problem = integrity_problem(sha256_hex(data[:-1]), len(data) - 1, digest, len(data))

    assert problem is not None
    assert digest in problem and "corrupt" in problem
    assert f"({len(data) - 1} bytes)" in problem


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
@pytest.mark.parametrize(("orientation", "size"), [(1, (320, 120)), (6, (120, 320))])
def test_with_an_analysis_copy_the_facts_of_the_original_are_unchanged(fmt, orientation, size):
    data = oriented(fmt, orientation)
    copy = encode(Image.new("RGB", size, (200, 80, 60)), "JPEG", quality=90)
    with_copy = analyse(data, upright_copy=copy)
    assert replace(with_copy, phash=0, dhash=0) == replace(analyse(data), phash=0, dhash=0)


def _photo(seed: int) -> Image.Image:
    """Smooth shapes over a gradient: structure a perceptual hash can see."""
    gradient = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    noise = Image.effect_noise((40, 30), 90 + seed).resize((1600, 1200), Image.Resampling.BICUBIC)
    return Image.blend(gradient, Image.merge("RGB", [noise] * 3), 0.6)


def test_perceptual_hashes_are_those_of_the_analysis_copy():
    original = encode(_photo(1), "JPEG", quality=90)
    other = encode(_photo(40).resize((512, 384)), "JPEG", quality=90)
    facts = analyse(original, upright_copy=other)
    assert (facts.phash, facts.dhash) == (analyse(other).phash, analyse(other).dhash)
    assert (facts.width, facts.height) == (1600, 1200)


def test_a_copy_hashes_like_the_original_it_was_made_from():
    photo = _photo(7)
    copy = encode(photo.resize((512, 384), Image.Resampling.LANCZOS), "JPEG", quality=90)
    original = encode(photo, "JPEG", quality=90)
    assert hamming(analyse(original).phash, analyse(original, upright_copy=copy).phash) <= 4


def test_an_undecodable_copy_is_undecodable():
    with pytest.raises(UndecodableImage):
        analyse(oriented("PNG", 1), upright_copy=b"\xff\xd8\xff not a jpeg")


def _camera_jpeg(orientation: int) -> bytes:
    """A large JPEG with the EXIF a camera writes (time, make, model, GPS, orientation)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F], exif[0x0110] = "Imgflow", "Bench 1"
    exif[0x0132] = "2026:11:30 12:34:56"
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 1.0)})
    return encode(_photo(3), "JPEG", quality=90, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", [1, 6])
def test_a_jpeg_header_gives_the_facts_of_the_whole_file(orientation):
    data = _camera_jpeg(orientation)
    copy = encode(_photo(3).resize((512, 384)), "JPEG", quality=90)
    head = data[: 64 * 1024]
    assert len(head) < len(data)

    facts = analyse(
        head, keep_gps=True, sha256=sha256_hex(data), byte_size=len(data), upright_copy=copy
    )

    assert facts == analyse(data, keep_gps=True, upright_copy=copy)
    assert facts.exif.camera_model == "Bench 1" and facts.exif.gps is not None


def test_a_header_cut_before_the_image_data_is_undecodable_so_the_worker_reads_it_all():
    data = _camera_jpeg(1)
    copy = encode(_photo(3).resize((512, 384)), "JPEG", quality=90)
    with pytest.raises(UndecodableImage):
        analyse(data[:200], byte_size=len(data), upright_copy=copy)


def test_only_jpeg_headers_are_read_alone():
    assert is_jpeg(_camera_jpeg(1))
    assert not any(is_jpeg(oriented(fmt, 1)) for fmt in ("PNG", "WEBP", "TIFF", "HEIF"))
