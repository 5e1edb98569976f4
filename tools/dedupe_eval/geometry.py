"""The geometric check (``imgflow_deduper.overlap``) on the pairs that need it.

Production runs it only on a check's candidates that look alike; here, on every pair whose
CNN similarity or pHash distance could call it related (``near``): the others are
*neither* whatever their geometry. Features come from the analysis copy, decoded and
trimmed as the deduper does; results are cached beside the image signals, keyed by them.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from imgflow_deduper import alignment as aligning
from imgflow_deduper import overlap as geo
from imgflow_deduper.borders import trim_bars
from imgflow_deduper.pixels import decode
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.image_signals import analysis_copy

# Below both, no threshold searched calls a pair a duplicate, and a similar pair is not
# among a check's candidates in practice (the nearest 20 by CNN similarity).
NEAR_COSINE = 0.75
NEAR_PHASH = 22


@dataclass(frozen=True)
class PairGeometry:
    """Per pair of the table (NaN / -1 where not run or no match)."""

    inliers: np.ndarray  # int; -1 where not run
    keypoints: np.ndarray  # int: the poorer image's keypoints; -1 where not run
    iou: np.ndarray
    agreement: np.ndarray
    spread: np.ndarray  # share of the shared cells holding an inlier; NaN likewise
    keypoint_spread: np.ndarray  # that share among the shared cells holding a keypoint
    common_keypoint_spread: np.ndarray  # ...holding a keypoint of each image
    motion: np.ndarray  # how far the shared cells move apart (Overlap.motion); NaN likewise
    # int: matches on a second motion (Overlap.second_motion); -1 likewise
    second_motion: np.ndarray
    # the thumbnails aligned without keypoints (alignment.Alignment), measured where the fit
    # shares no content at any inlier floor the sweeps try; NaN / -1 elsewhere
    aligned_agreement: np.ndarray
    aligned_cells: np.ndarray  # int
    aligned_iou: np.ndarray
    feature_cpu_ms: float  # per image: decode, trim, ORB both orientations
    match_cpu_ms: float  # per pair checked


# The per-pair arrays, each named as its overlap.Overlap field or, ``aligned_`` and an
# alignment.Alignment field: one list for the cache, the table and the eval's merge, so that
# a new signal is one field here and one in Overlap (or Alignment). (Every field but the two
# timings; the annotations are strings here, no type to test.)
PER_PAIR = tuple(
    f.name for f in fields(PairGeometry) if f.name not in ("feature_cpu_ms", "match_cpu_ms")
)
ALIGNED = "aligned_"
# int, -1 where not run; the others float, NaN
_COUNTS = ("inliers", "keypoints", "second_motion", "aligned_cells")
# The alignment is measured below this many inliers (the highest floor the sweeps try) or
# under decision.MIN_SHARED_IOU: the rule reads it only where the fit shares no content.
ALIGN_BELOW_INLIERS = 20
ALIGN_BELOW_IOU = 0.05


def near(cnn: np.ndarray, phash_distance: np.ndarray) -> np.ndarray:
    return (cnn >= NEAR_COSINE) | (phash_distance <= NEAR_PHASH)


def image_features(data: bytes, detector: geo.Detector = geo.DETECTOR) -> geo.Features:
    return geo.features(trim_bars(decode(analysis_copy(data), geo.FEATURE_SIDE)), detector)


WORKERS = 3


def _features_of(images: list[bytes], detector: geo.Detector) -> tuple[list[geo.Features], float]:
    started = time.process_time()
    return [image_features(data, detector) for data in images], time.process_time() - started


Checked = tuple[geo.Overlap, aligning.Alignment | None]


def _check(a: geo.Features, b: geo.Features) -> Checked:
    o = geo.overlap(a, b)
    shares_nothing = o.inliers < ALIGN_BELOW_INLIERS or o.iou < ALIGN_BELOW_IOU
    return o, aligning.align(a.thumb, b.thumb) if shares_nothing else None


def _value(checked: Checked, name: str) -> float | int:
    o, a = checked
    if not name.startswith(ALIGNED):
        return getattr(o, name)
    if a is None:
        return -1 if name in _COUNTS else np.nan
    return getattr(a, name.removeprefix(ALIGNED))


def _match(
    pairs: list[tuple[int, int]], features: dict[int, geo.Features]
) -> tuple[list[Checked], float]:
    started = time.process_time()
    found = [_check(features[a], features[b]) for a, b in pairs]
    return found, time.process_time() - started


def _key(samples: list[Sample], rows: np.ndarray, detector: geo.Detector) -> str:
    digest = hashlib.sha256()
    digest.update(repr(detector).encode())
    for path in (Path(geo.__file__), Path(aligning.__file__), Path(__file__)):
        digest.update(path.read_bytes())
    for s in samples:
        digest.update(hashlib.sha256(s.data).digest())
    digest.update(rows.tobytes())
    return digest.hexdigest()[:24]


def pair_geometry(
    samples: list[Sample],
    i: np.ndarray,
    j: np.ndarray,
    rows: np.ndarray,
    cache: Path | None,
    detector: geo.Detector = geo.DETECTOR,
) -> PairGeometry:
    """The check on pairs ``rows`` of (i, j), with ``detector``'s keypoints; the other pairs
    get no evidence."""
    path = cache / f"geometry-{_key(samples, rows, detector)}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as s:
            return PairGeometry(**{f: s[f] for f in PER_PAIR},
                                feature_cpu_ms=float(s["feature_cpu_ms"]),
                                match_cpu_ms=float(s["match_cpu_ms"]))  # fmt: skip
    needed = sorted(set(i[rows].tolist()) | set(j[rows].tolist()))
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as pool:
        timed = list(pool.map(_features_of, [[samples[k].data for k in needed[c::WORKERS]]
                                             for c in range(WORKERS)],
                              [detector] * WORKERS))  # fmt: skip
        features: dict[int, geo.Features] = {}
        for c, (found, _) in enumerate(timed):
            features |= dict(zip(needed[c::WORKERS], found, strict=True))
        feature_ms = 1000 * sum(t for _, t in timed) / max(1, len(needed))
        chunks = [[(int(i[r]), int(j[r])) for r in rows[c::WORKERS]] for c in range(WORKERS)]
        matched = list(pool.map(_match, chunks, [features] * WORKERS))
    arrays = {f: np.full(len(i), -1, np.int64) if f in _COUNTS
                 else np.full(len(i), np.nan, np.float32) for f in PER_PAIR}  # fmt: skip
    for c, (found, _) in enumerate(matched):
        for r, checked in zip(rows[c::WORKERS], found, strict=True):
            for f in PER_PAIR:
                arrays[f][r] = _value(checked, f)
    match_ms = 1000 * sum(t for _, t in matched) / max(1, len(rows))
    result = PairGeometry(**arrays, feature_cpu_ms=feature_ms, match_cpu_ms=match_ms)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays, feature_cpu_ms=feature_ms, match_cpu_ms=match_ms)
    return result
