"""Every pair's signals at once: cosine, view cosine, pHash distance, same bytes, the
geometric check where it ran, and the three-way label."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.geometry import PairGeometry
from tools.dedupe_eval.image_signals import ImageSignals


@dataclass(frozen=True)
class PairTable:
    """Upper-triangle pairs (i < j) of the samples, as flat arrays."""

    i: np.ndarray
    j: np.ndarray
    duplicate: np.ndarray  # label: same group
    cosine: np.ndarray
    phash_distance: np.ndarray
    same_sha256: np.ndarray
    view_cosine: np.ndarray  # NaN without sub-views
    similar: np.ndarray  # label: same scene, another group
    inliers: np.ndarray  # the geometric check's; -1 where it did not run, 0: no fit
    keypoints: np.ndarray  # the poorer image's keypoints; -1 where it did not run
    iou: np.ndarray  # NaN likewise
    agreement: np.ndarray  # NaN likewise
    spread: np.ndarray  # NaN likewise
    keypoint_spread: np.ndarray  # NaN likewise
    common_keypoint_spread: np.ndarray  # NaN likewise
    motion: np.ndarray  # overlap.Overlap.motion; NaN likewise
    second_motion: np.ndarray  # overlap.Overlap.second_motion; -1 where the check did not run
    # alignment.Alignment's, where the fit shares no content (geometry.PairGeometry); NaN / -1
    aligned_agreement: np.ndarray
    aligned_cells: np.ndarray
    aligned_iou: np.ndarray

    @property
    def cnn(self) -> np.ndarray:
        """The CNN's similarity as decide() takes it: the better of the two cosines."""
        return np.fmax(self.cosine, self.view_cosine)

    def where(self, mask: np.ndarray) -> PairTable:
        return PairTable(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def pair_table(
    samples: list[Sample], signals: ImageSignals, geometry: PairGeometry | None = None
) -> PairTable:
    embeddings, views = signals.embeddings, signals.views
    i, j = np.triu_indices(len(samples), k=1)
    view_cosine = np.full(len(i), np.nan, dtype=np.float32)
    if views is not None:
        n, k, d = views.shape
        # whole frame of one against each sub-view of the other: (n, n) best of k
        against = (embeddings @ views.reshape(n * k, d).T).reshape(n, n, k).max(axis=2)
        view_cosine = np.maximum(against[i, j], against[j, i])
    groups = np.array([s.group for s in samples])
    scenes = np.array([s.scene for s in samples])
    hashes = signals.phashes
    none = np.full(len(i), np.nan, np.float32)
    return PairTable(
        i=i,
        j=j,
        duplicate=groups[i] == groups[j],
        cosine=(embeddings @ embeddings.T)[i, j],  # not row pairs: 1,000 images make 0.5 M
        phash_distance=np.bitwise_count(hashes[i] ^ hashes[j]).astype(np.int64),
        same_sha256=signals.digests[i] == signals.digests[j],
        view_cosine=view_cosine,
        similar=(scenes[i] == scenes[j]) & (groups[i] != groups[j]),
        inliers=geometry.inliers if geometry else np.full(len(i), -1, np.int64),
        keypoints=geometry.keypoints if geometry else np.full(len(i), -1, np.int64),
        # float64: compared with thresholds as the deduper compares Python floats
        iou=geometry.iou.astype(np.float64) if geometry else none,
        agreement=geometry.agreement.astype(np.float64) if geometry else none,
        spread=geometry.spread.astype(np.float64) if geometry else none,
        keypoint_spread=geometry.keypoint_spread.astype(np.float64) if geometry else none,
        common_keypoint_spread=(
            geometry.common_keypoint_spread.astype(np.float64) if geometry else none
        ),
        motion=geometry.motion.astype(np.float64) if geometry else none,
        second_motion=geometry.second_motion if geometry else np.full(len(i), -1, np.int64),
        aligned_agreement=geometry.aligned_agreement.astype(np.float64) if geometry else none,
        aligned_cells=geometry.aligned_cells if geometry else np.full(len(i), -1, np.int64),
        aligned_iou=geometry.aligned_iou.astype(np.float64) if geometry else none,
    )
