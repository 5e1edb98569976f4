"""A camera photo through the real system: upright renditions without metadata, and the
hasher's facts (EXIF, perceptual hashes) in GET /v1/images/{id} and in PostgreSQL."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import httpx
import imagehash
import pillow_heif
from PIL import Image, ImageOps, ImageStat

from imgflow_runtime.storage import ObjectStore
from tests.support import encode, every_stage_finished, photo_like, query, wait_for

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _settled(api: httpx.Client, image_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = api.get(f"/v1/images/{image_id}").json()
        return body if every_stage_finished(body) else None

    return wait_for(probe, timeout_s=60, what=f"image {image_id} to settle")


def _camera_photo() -> bytes:
    """1200x800 as stored, red block top-left and green top-right, tagged 'turn 90 degrees
    clockwise to show' (EXIF 6), with camera, time and a GPS position."""
    image = photo_like(1200, 800, seed=11)
    image.paste(RED, (0, 0, 300, 200))
    image.paste(GREEN, (900, 0, 1200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F], exif[0x0110] = "FUJIFILM", "X-T5"
    exif.get_ifd(0x8769)[0x9003] = "2023:07:14 18:42:05"  # DateTimeOriginal
    exif.get_ifd(0x8769)[0x9011] = "+02:00"  # OffsetTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 22.0, 12.0), "E", (4.0, 53.0, 24.0)
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


def _int64(hex_hash: str) -> int:
    """imagehash's hex form as the signed 64-bit integer PostgreSQL stores."""
    return int.from_bytes(bytes.fromhex(hex_hash), "big", signed=True)


def _colour(image: Image.Image, fx: float, fy: float) -> tuple[float, ...]:
    x, y = int(fx * image.width), int(fy * image.height)
    return tuple(ImageStat.Stat(image.convert("RGB").crop((x - 2, y - 2, x + 3, y + 3))).mean)


def test_a_rotated_camera_jpeg_is_shown_upright_and_its_facts_recorded(
    api: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = _camera_photo()

    created = api.post("/v1/images", content=data, headers={"Content-Type": "image/jpeg"})

    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    image = _settled(api, image_id)
    assert image["status"] == "ready", image

    # Renditions: upright (portrait), no larger than asked, no metadata.
    assert (image["width"], image["height"]) == (800, 1200)
    assert [(r["size"], r["width"], r["height"]) for r in image["renditions"]] == [
        (150, 100, 150),
        (300, 200, 300),
        (600, 400, 600),
    ]
    for rendition in image["renditions"]:
        stored = store.get_bytes(rendition["object_key"])
        assert b"FUJIFILM" not in stored
        with Image.open(io.BytesIO(stored)) as shown:
            assert (shown.format, shown.size) == ("WEBP", (rendition["width"], rendition["height"]))
            assert not shown.getexif()
            # Turned clockwise: the stored top-left is now top-right, top-right bottom-right.
            r, g, _ = _colour(shown, 0.9, 0.1)
            assert r > 200 and g < 60, (rendition["size"], r, g)
            r, g, _ = _colour(shown, 0.9, 0.9)
            assert g > 200 and r < 60, (rendition["size"], r, g)

    # The hasher's facts.
    assert (image["format"], image["mode"], image["frames"]) == ("jpeg", "RGB", 1)
    assert image["exif"] == {
        "captured_at": "2023-07-14T18:42:05",
        "captured_offset": "+02:00",
        "camera_make": "FUJIFILM",
        "camera_model": "X-T5",
        "orientation": 6,
        "gps": None,  # IMGFLOW_HASHER_KEEP_GPS is off by default
    }
    # Checked against facts found without the hasher's code: the size and orientation
    # from the file's header, SHA-256 of the bytes read back from S3, imagehash's own
    # pHash and dHash of the upright photo (the hasher reads a small upright copy the
    # thumbnailer made, so a few bits may differ).
    with Image.open(io.BytesIO(data)) as header:  # lazy: reads the header only
        stored_size, orientation = header.size, header.getexif()[0x0112]
    assert orientation == 6 and (image["width"], image["height"]) == stored_size[::-1]
    [original] = query(database_url, "SELECT object_key FROM images WHERE id = $1::uuid", image_id)
    assert image["sha256"] == hashlib.sha256(store.get_bytes(original["object_key"])).hexdigest()
    assert image["sha256"] == hashlib.sha256(data).hexdigest()
    with Image.open(io.BytesIO(data)) as photo:
        upright = ImageOps.exif_transpose(photo).convert("L")
    phash, dhash = imagehash.hex_to_hash(image["phash"]), imagehash.hex_to_hash(image["dhash"])
    assert phash - imagehash.phash(upright) <= 4
    assert dhash - imagehash.dhash(upright) <= 4
    expected_phash, expected_dhash = _int64(image["phash"]), _int64(image["dhash"])

    # PostgreSQL has the hashes as bigints it can compare by Hamming distance, and no GPS.
    [row] = query(
        database_url,
        """SELECT phash, dhash, gps_latitude, gps_longitude,
                  bit_count((phash # dhash)::bit(64)) AS distance
             FROM images WHERE id = $1::uuid""",
        image_id,
    )
    assert (row["phash"], row["dhash"]) == (expected_phash, expected_dhash)
    assert row["distance"] == phash - dhash
    assert (row["gps_latitude"], row["gps_longitude"]) == (None, None)


def test_a_heic_upload_gets_renditions_and_facts(api: httpx.Client, store: ObjectStore) -> None:
    pillow_heif.register_heif_opener()
    data = encode(photo_like(900, 600, seed=12), "HEIF", quality=80)

    created = api.post("/v1/images", content=data, headers={"Content-Type": "image/heic"})

    assert created.status_code == 201, created.text
    image = _settled(api, created.json()["id"])
    assert image["status"] == "ready", image
    assert (image["format"], image["width"], image["height"]) == ("heif", 900, 600)
    assert image["phash"] is not None
    largest = image["renditions"][-1]
    with Image.open(io.BytesIO(store.get_bytes(largest["object_key"]))) as shown:
        assert shown.size == (600, 400)
