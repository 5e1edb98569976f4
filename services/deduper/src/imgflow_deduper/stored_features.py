"""An image's geometric-check features as bytes, to keep in S3 beside its analysis copy.

Made once from the analysis copy (``probe.features_of``: decode, trim bars, ORB at
``overlap``'s sizes), then read by every later check that meets the image as a candidate,
instead of fetching and recomputing them each time (keys.features_key).

A ``.npz`` (numpy's zip of raw arrays, deflated: ~45 KB for a photo's 512 px copy, ~12 KB
for a flat picture's, against ~65 KB and ~1 KB for the JPEG copies), read with
``allow_pickle=False``: what comes back from S3 is data, never code. It carries
``VERSION``, made of the feature parameters, the OpenCV version (ORB's keypoints may move
between releases) and ``FORMAT``, bumped by hand when the way features are made changes
without a constant changing (borders.py, pixels.decode, ``overlap.features``'s code):
features of another version, or bytes that do not read as this format (truncated,
corrupt), are not features (None), and the caller makes them again from the copy.
"""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np

from imgflow_deduper import overlap

FORMAT = 1
VERSION = (
    f"{FORMAT}:side={overlap.FEATURE_SIDE}:min={overlap.MIN_SIDE}:thumb={overlap.THUMB_SIDE}"
    f":keypoints={overlap.KEYPOINTS}:opencv={cv2.__version__}"
)
CONTENT_TYPE = "application/x-npz"


def encode(features: overlap.Features) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(  # the thumbnail's flat areas: a flat picture's is mostly zeros
        out,
        version=np.array(VERSION),
        size=np.array(features.size, np.int32),
        direct_points=features.direct.points.astype(np.float32, copy=False),
        direct_descriptors=features.direct.descriptors.astype(np.uint8, copy=False),
        mirrored_points=features.mirrored.points.astype(np.float32, copy=False),
        mirrored_descriptors=features.mirrored.descriptors.astype(np.uint8, copy=False),
        thumb=features.thumb.astype(np.uint8, copy=False),
    )
    return out.getvalue()


def _side(arrays: dict[str, np.ndarray], name: str) -> overlap.Side | None:
    points, descriptors = arrays[f"{name}_points"], arrays[f"{name}_descriptors"]
    n = len(points)
    if (points.dtype, descriptors.dtype) != (np.float32, np.uint8):
        return None
    if points.shape != (n, 2) or descriptors.shape != (n, 32):
        return None
    return overlap.Side(points, descriptors)


def decode(data: bytes) -> overlap.Features | None:
    """The features in ``data``; None unless they are whole and of this ``VERSION``."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        if str(arrays["version"]) != VERSION:
            return None
        size, thumb = arrays["size"], arrays["thumb"]
        direct, mirrored = _side(arrays, "direct"), _side(arrays, "mirrored")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if direct is None or mirrored is None or size.shape != (2,) or (size < 1).any():
        return None
    if thumb.dtype != np.uint8 or thumb.ndim != 2 or 0 in thumb.shape:
        return None
    return overlap.Features(
        size=(int(size[0]), int(size[1])), direct=direct, mirrored=mirrored, thumb=thumb
    )
