"""An image's geometric-check features as bytes, to keep in S3 beside its analysis copy.

Made once from the analysis copy (``probe.features_of``: decode, trim bars, ORB at
``overlap``'s sizes), then read by every later check that meets the image as a candidate,
instead of fetching and recomputing them each time (keys.features_key).

The arrays' raw bytes, deflated, behind a small header: ~44 KB for a photo's 512 px copy,
~12 KB for a flat picture's (the JPEG copies: ~65 KB and ~1 KB). Read back in a third of
a millisecond (numpy's ``.npz``: 1.2-1.7 ms, and a check reads up to forty); data only,
never code (no pickle). The header
carries ``VERSION``, made of the feature parameters, the OpenCV version (ORB's keypoints
may move between releases) and ``FORMAT``, bumped by hand when the way features are made
changes without a constant changing (borders.py, pixels.decode, ``overlap.features``'s
code). Bytes of another version, or that are truncated or corrupt (zlib's checksum, the
lengths the header gives), are no features (None): the caller makes them again.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from imgflow_deduper import overlap

FORMAT = 1
# The keypoint grid (stacks9) is named only when one is used: without it the version is
# the one stored before it existed, so those features are still read.
_GRID = (
    f":grid={overlap.KEYPOINT_GRID}:pool={overlap.KEYPOINT_POOL}" if overlap.KEYPOINT_GRID else ""
)
VERSION = (
    f"{FORMAT}:side={overlap.FEATURE_SIDE}:min={overlap.MIN_SIDE}:thumb={overlap.THUMB_SIDE}"
    f":keypoints={overlap.KEYPOINTS}{_GRID}:opencv={cv2.__version__}"
).encode()
CONTENT_TYPE = "application/octet-stream"

MAGIC = b"imgflow-features\n"
# the version's length; then the frame's width and height, each side's keypoint count,
# the thumbnail's height and width
_LENGTH = struct.Struct("<H")
_SHAPE = struct.Struct("<6I")
_DESCRIPTOR = 32  # bytes of an ORB descriptor


def encode(features: overlap.Features) -> bytes:
    direct, mirrored, thumb = features.direct, features.mirrored, features.thumb
    shape = (*features.size, len(direct.points), len(mirrored.points), *thumb.shape)
    body = b"".join(
        np.ascontiguousarray(a, dtype).tobytes()
        for a, dtype in (
            (direct.points, "<f4"),
            (direct.descriptors, np.uint8),
            (mirrored.points, "<f4"),
            (mirrored.descriptors, np.uint8),
            (thumb, np.uint8),
        )
    )
    return b"".join(
        (MAGIC, _LENGTH.pack(len(VERSION)), VERSION, _SHAPE.pack(*shape), zlib.compress(body))
    )


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body, self.at = bytearray(body), 0  # bytearray: arrays numpy may write to

    def take(self, dtype: str, count: int, shape: tuple[int, ...]) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        array = np.frombuffer(self.body, dtype, count, self.at).reshape(shape)
        self.at += size
        return array.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def decode(data: bytes) -> overlap.Features | None:
    """The features in ``data``; None unless they are whole and of this ``VERSION``."""
    start = len(MAGIC) + _LENGTH.size
    if not data.startswith(MAGIC) or len(data) < start:
        return None
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if data[start : start + length] != VERSION or len(data) < start + length + _SHAPE.size:
        return None
    width, height, n_direct, n_mirrored, thumb_h, thumb_w = _SHAPE.unpack_from(data, start + length)
    try:
        body = zlib.decompress(data[start + length + _SHAPE.size :])
    except zlib.error:  # truncated or corrupt
        return None
    side = 2 * 4 + _DESCRIPTOR  # bytes per keypoint: x, y, descriptor
    if len(body) != side * (n_direct + n_mirrored) + thumb_h * thumb_w or 0 in (width, height):
        return None
    read = _Reader(body)
    sides = [
        overlap.Side(
            read.take("<f4", 2 * n, (n, 2)), read.take("|u1", _DESCRIPTOR * n, (n, _DESCRIPTOR))
        )
        for n in (n_direct, n_mirrored)
    ]
    thumb = read.take("|u1", thumb_h * thumb_w, (thumb_h, thumb_w))
    return overlap.Features(size=(width, height), direct=sides[0], mirrored=sides[1], thumb=thumb)
