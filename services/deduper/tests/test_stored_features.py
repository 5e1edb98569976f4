"""Features kept as bytes: read back exactly, and never trusted when they are not whole or
not of this version (the probe then makes them again)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from imgflow_deduper import overlap, stored_features
from imgflow_deduper.probe import features_of


@pytest.fixture(scope="module")
def features() -> overlap.Features:
    out = io.BytesIO()
    Image.fromarray(data.astronaut()).reduce(2).save(out, "JPEG", quality=85)
    return features_of(out.getvalue())


def test_features_read_back_are_the_features_kept(features: overlap.Features) -> None:
    back = stored_features.decode(stored_features.encode(features))
    assert back is not None and back.size == features.size
    for name in ("direct", "mirrored"):
        kept, read = getattr(features, name), getattr(back, name)
        assert np.array_equal(kept.points, read.points) and kept.points.dtype == np.float32
        assert np.array_equal(kept.descriptors, read.descriptors)
    assert np.array_equal(features.thumb, back.thumb)
    mirror = overlap.features(Image.fromarray(data.astronaut()).transpose(0))
    assert overlap.overlap(back, mirror) == overlap.overlap(features, mirror)


def test_the_version_names_every_feature_parameter() -> None:
    """Change one and the version changes with it: features kept before are made again."""
    names = ["FEATURE_SIDE", "MIN_SIDE", "THUMB_SIDE", "KEYPOINTS"]
    if overlap.KEYPOINT_GRID:  # no grid: the version stored before the grid existed
        names += ["KEYPOINT_GRID", "KEYPOINT_POOL"]
    for name in names:
        assert f"={getattr(overlap, name)}:".encode() in stored_features.VERSION
    assert stored_features.VERSION.startswith(f"{stored_features.FORMAT}:".encode())


def test_features_of_another_version_are_not_read(
    features: overlap.Features, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored_features, "VERSION", stored_features.VERSION + b"-older")
    older = stored_features.encode(features)
    monkeypatch.undo()
    assert stored_features.decode(older) is None


def test_truncated_corrupt_or_foreign_bytes_are_no_features(features: overlap.Features) -> None:
    kept = stored_features.encode(features)
    flipped = bytearray(kept)
    flipped[-40] ^= 0xFF  # in the deflated arrays: zlib's checksum
    header = len(stored_features.MAGIC) + 2 + len(stored_features.VERSION)
    fewer = bytearray(kept)
    fewer[header + 8] -= 1  # one keypoint fewer than the arrays hold
    npz = io.BytesIO()
    np.savez(npz, thumb=features.thumb)
    for bad in (kept[: len(kept) // 2], kept[:-1], kept[:header], b"", bytes(flipped),
                bytes(fewer), npz.getvalue(), b"imgflow-features\n"):  # fmt: skip
        assert stored_features.decode(bad) is None
