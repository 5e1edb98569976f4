"""The geometric check (``imgflow_deduper.overlap``) on the pairs that need it.

Production runs it only on a check's candidates that look alike; here, on every pair whose
CNN similarity or pHash distance could call it related (``near``): the others are
*neither* whatever their geometry. Features come from the analysis copy, decoded and
trimmed as the deduper does; results are cached beside the image signals, keyed by them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgflow_deduper import overlap as geo
from imgflow_deduper.borders import trim_bars
from imgflow_deduper.pixels import decode
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.image_signals import analysis_copy

NEAR_COSINE = 0.6  # below it, and with pHash far, no rule calls a pair related
NEAR_PHASH = 26


@dataclass(frozen=True)
class PairGeometry:
    """Per pair of the table (NaN / -1 where not run or no match)."""

    inliers: np.ndarray  # int
    iou: np.ndarray
    agreement: np.ndarray
    feature_cpu_ms: float  # per image: decode, trim, ORB both orientations
    match_cpu_ms: float  # per pair checked


def near(cnn: np.ndarray, phash_distance: np.ndarray) -> np.ndarray:
    return (cnn >= NEAR_COSINE) | (phash_distance <= NEAR_PHASH)


def image_features(data: bytes) -> geo.Features:
    return geo.features(trim_bars(decode(analysis_copy(data), geo.FEATURE_SIDE)))


def _key(samples: list[Sample], rows: np.ndarray) -> str:
    digest = hashlib.sha256()
    for path in (Path(geo.__file__), Path(__file__)):
        digest.update(path.read_bytes())
    for s in samples:
        digest.update(hashlib.sha256(s.data).digest())
    digest.update(rows.tobytes())
    return digest.hexdigest()[:24]


def pair_geometry(
    samples: list[Sample], i: np.ndarray, j: np.ndarray, rows: np.ndarray, cache: Path | None
) -> PairGeometry:
    """The check on pairs ``rows`` of (i, j); the other pairs get no evidence."""
    path = cache / f"geometry-{_key(samples, rows)}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as s:
            return PairGeometry(s["inliers"], s["iou"], s["agreement"],
                                float(s["feature_cpu_ms"]), float(s["match_cpu_ms"]))  # fmt: skip
    needed = sorted(set(i[rows].tolist()) | set(j[rows].tolist()))
    started = time.process_time()
    features = {k: image_features(samples[k].data) for k in needed}
    feature_ms = 1000 * (time.process_time() - started) / max(1, len(needed))
    inliers = np.full(len(i), -1, np.int64)
    iou = np.full(len(i), np.nan, np.float32)
    agreement = np.full(len(i), np.nan, np.float32)
    started = time.process_time()
    for r in rows:
        found = geo.overlap(features[int(i[r])], features[int(j[r])])
        if found is not None:
            inliers[r], iou[r], agreement[r] = found.inliers, found.iou, found.agreement
    match_ms = 1000 * (time.process_time() - started) / max(1, len(rows))
    result = PairGeometry(inliers, iou, agreement, feature_ms, match_ms)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, inliers=inliers, iou=iou, agreement=agreement,
                 feature_cpu_ms=feature_ms, match_cpu_ms=match_ms)  # fmt: skip
    return result
