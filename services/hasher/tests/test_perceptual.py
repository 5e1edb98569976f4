"""pHash and dHash: stable across encodings, orientation-aware, stored as signed int64."""

import io

import imagehash
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from imgflow_hasher.analysis import analyse
from imgflow_hasher.perceptual import (
    HASH_SOURCE_SIDE,
    hamming,
    hash_source,
    to_hex,
    to_int64,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def scene(width: int, height: int, seed: int) -> Image.Image:
    """Shapes on a gradient: structure a perceptual hash can see."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(8):
        x, y = (seed * 131 + i * 197) % width, (seed * 71 + i * 89) % height
        r = min(width, height) // (5 + i % 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((i * 60) % 256, (seed * 40) % 256, 120))
    return image.filter(ImageFilter.GaussianBlur(2))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_the_same_picture_hashes_alike_in_every_encoding():
    picture = scene(1600, 1200, seed=1)
    facts = [
        analyse(encode(picture, "JPEG", quality=85)),
        analyse(encode(picture, "PNG")),
        analyse(encode(picture, "WEBP", quality=80)),
        analyse(encode(picture.resize((400, 300)), "JPEG", quality=70)),
    ]
    for other in facts[1:]:
        assert hamming(facts[0].phash, other.phash) <= 6
        assert hamming(facts[0].dhash, other.dhash) <= 6


def test_different_pictures_hash_apart():
    a = analyse(encode(scene(800, 600, seed=1), "JPEG"))
    b = analyse(encode(scene(800, 600, seed=4), "JPEG"))
    assert hamming(a.phash, b.phash) >= 16
    assert hamming(a.dhash, b.dhash) >= 16


def test_hashes_are_of_the_upright_picture():
    picture = scene(800, 600, seed=2)
    turned = picture.transpose(Image.Transpose.ROTATE_90)  # stored turned...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...and tagged to be shown turned back
    upright = analyse(encode(picture, "JPEG"))
    tagged = analyse(encode(turned, "JPEG", exif=exif.tobytes()))
    untagged = analyse(encode(turned, "JPEG"))
    assert hamming(upright.phash, tagged.phash) <= 4
    assert hamming(upright.phash, untagged.phash) >= 16


def test_hashes_match_imagehash_on_the_full_image():
    # Hashing a draft-decoded, box-reduced source changes at most a few bits.
    picture = scene(2400, 1800, seed=3)
    facts = analyse(encode(picture, "JPEG", quality=90))
    assert hamming(facts.phash, to_int64(imagehash.phash(picture))) <= 4
    assert hamming(facts.dhash, to_int64(imagehash.dhash(picture))) <= 4


def test_a_16_bit_image_hashes_like_its_8_bit_twin():
    grey = ImageOps.grayscale(scene(400, 300, seed=5))
    sixteen = grey.convert("I").point(lambda v: v * 257).convert("I;16")
    assert sixteen.getextrema()[1] > 255
    assert hamming(analyse(encode(grey, "PNG")).phash, analyse(encode(sixteen, "PNG")).phash) <= 2


def test_a_12_megapixel_jpeg_is_hashed_from_a_1_8_scale_luma_decode():
    data = encode(scene(4000, 3000, seed=6), "JPEG", quality=85)
    with Image.open(io.BytesIO(data)) as image:
        grey = hash_source(image)
        assert (image.mode, image.size) == ("L", (500, 375))  # draft: luma only, 1/8
    assert grey.mode == "L"
    assert HASH_SOURCE_SIDE <= min(grey.size) < 2 * HASH_SOURCE_SIDE


@pytest.mark.parametrize(
    "hex_value",
    ["0000000000000000", "7fffffffffffffff", "8000000000000000", "ffffffffffffffff", "c3a1"],
)
def test_int64_round_trip_through_imagehash_hex(hex_value):
    value = imagehash.hex_to_hash(hex_value.rjust(16, "0"))
    as_int = to_int64(value)
    assert INT64_MIN <= as_int <= INT64_MAX
    assert to_hex(as_int) == str(value)
    assert (as_int < 0) == (int(hex_value.rjust(16, "0"), 16) >= 2**63)


def test_hamming_counts_differing_bits_across_the_sign():
    assert hamming(-1, 0) == 64
    assert hamming(to_int64(imagehash.hex_to_hash("8000000000000001")), 1) == 1
