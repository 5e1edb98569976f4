"""How sharp an image is: the variance of its Laplacian (a stack's suggested pick).

Blur and camera shake remove the fine edges the Laplacian responds to, so of two frames
of one burst the sharper has the larger variance. The figure depends on the scale, so it
is measured at the analysis copy's size (long side FEATURE_SIDE): the thumbnailer's copy
as it is, an original (when there is no copy) scaled down to it first. Plain function on
bytes: no I/O.
"""

from __future__ import annotations

import cv2
import numpy as np

from imgflow_deduper.overlap import FEATURE_SIDE


def laplacian_variance(data: bytes) -> float | None:
    """The Laplacian's variance of the grey image at FEATURE_SIDE; None if undecodable."""
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None or grey.size == 0:
        return None
    long_side = max(grey.shape)
    if long_side > FEATURE_SIDE:
        scale = FEATURE_SIDE / long_side
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
