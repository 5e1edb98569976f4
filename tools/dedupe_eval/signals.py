"""Every pair's signals at once: cosine matrix, pHash distances, same bytes, labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from imgflow_contracts.keys import ANALYSIS_LONG_SIDE
from imgflow_deduper.encoder import Encoder, embed_views
from imgflow_deduper.pixels import Normalisation, view_tensors
from imgflow_hasher.analysis import analyse
from imgflow_thumbnailer.rendering import render_with_analysis
from imgflow_thumbnailer.settings import ThumbnailerSettings
from tools.dedupe_eval.dataset import Sample


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

    @property
    def cnn(self) -> np.ndarray:
        """The CNN's similarity as decide() takes it: the better of the two cosines."""
        return np.fmax(self.cosine, self.view_cosine)


def analysis_copy(data: bytes) -> bytes:
    """What the hasher and the deduper decode in production: the thumbnailer's analysis
    copy of the original (keys.analysis_key), made by the thumbnailer's own code."""
    settings = ThumbnailerSettings()  # its sizes and fit decide where the copy comes from
    rendered = render_with_analysis(
        data,
        settings.thumbnail_sizes,
        fit=settings.thumbnail_fit,
        options=settings.encode_options(),
        analysis_side=ANALYSIS_LONG_SIDE,
    )
    assert rendered.analysis is not None
    return rendered.analysis


def phash64(data: bytes) -> int:
    """The pHash the hasher stores for these bytes (its own code, from the analysis copy,
    so the eval measures exactly what production compares)."""
    return analyse(data, upright_copy=analysis_copy(data)).phash


def embed_all(
    samples: list[Sample],
    encoder: Encoder,
    norm: Normalisation,
    *,
    mirror_invariant: bool,
    sub_views: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Whole-image embeddings (N, D) and sub-view embeddings (N, 5, D), as the worker makes
    them (embed_views)."""
    whole, views = [], []
    for sample in samples:
        vector, sub = embed_views(
            encoder,
            view_tensors(analysis_copy(sample.data), norm, sub_views),
            mirror_invariant=mirror_invariant,
        )
        whole.append(vector)
        views.append(sub)
    return np.stack(whole), (np.stack(views) if sub_views else None)


def pair_table(
    samples: list[Sample],
    embeddings: np.ndarray,
    phashes: list[int],
    views: np.ndarray | None = None,
) -> PairTable:
    i, j = np.triu_indices(len(samples), k=1)
    view_cosine = np.full(len(i), np.nan, dtype=np.float32)
    if views is not None:
        n, k, d = views.shape
        # whole frame of one against each sub-view of the other: (n, n) best of k
        against = (embeddings @ views.reshape(n * k, d).T).reshape(n, n, k).max(axis=2)
        view_cosine = np.maximum(against[i, j], against[j, i])
    groups = np.array([s.group for s in samples])
    hashes = np.array(phashes, dtype=np.int64).view(np.uint64)
    digests = np.array([hashlib.sha256(s.data).hexdigest() for s in samples])
    return PairTable(
        i=i,
        j=j,
        duplicate=groups[i] == groups[j],
        cosine=np.einsum("pd,pd->p", embeddings[i], embeddings[j]),
        phash_distance=np.bitwise_count(hashes[i] ^ hashes[j]).astype(np.int64),
        same_sha256=digests[i] == digests[j],
        view_cosine=view_cosine,
    )
