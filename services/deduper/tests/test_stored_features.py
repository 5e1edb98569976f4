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
    for name in ("FEATURE_SIDE", "MIN_SIDE", "THUMB_SIDE", "KEYPOINTS"):
        assert f"={getattr(overlap, name)}:" in stored_features.VERSION
    assert stored_features.VERSION.startswith(f"{stored_features.FORMAT}:")


def test_features_of_another_version_are_not_read(
    features: overlap.Features, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stored_features, "VERSION", stored_features.VERSION + "-older")
    older = stored_features.encode(features)
    monkeypatch.undo()
    assert stored_features.decode(older) is None


def test_truncated_corrupt_or_pickled_bytes_are_no_features(features: overlap.Features) -> None:
    kept = stored_features.encode(features)
    pickled = io.BytesIO()
    np.savez(pickled, version=np.array([object()], dtype=object))
    arrays = {f"{side}_{part}": getattr(getattr(features, side), part)
              for side in ("direct", "mirrored") for part in ("points", "descriptors")}  # fmt: skip
    mismatched = io.BytesIO()
    np.savez(mismatched, version=np.array(stored_features.VERSION),
             size=np.array(features.size, np.int32), thumb=features.thumb,
             **{**arrays, "direct_points": arrays["direct_points"][:5]})  # fmt: skip
    for bad in (kept[: len(kept) // 2], kept[:-1], b"", b"PK\x03\x04 not a zip",
                pickled.getvalue(), mismatched.getvalue()):  # fmt: skip
        assert stored_features.decode(bad) is None
