"""One duplicate decision from every signal a pair of images has.

Signals: equal SHA-256 (the same bytes), the cosine similarity of the CNN embeddings (of
the whole images, or of one's whole frame and a crop of the other), and the Hamming
distance of the 64-bit perceptual hashes. Any one can be missing (the hasher's
pHash may not have arrived yet). Thresholds come from settings; ``make eval-dedupe``
measures them. Plain functions: no I/O, no Celery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

PHASH_BITS = 64


class Method(StrEnum):
    SHA256 = "sha256"
    CNN = "cnn"
    PHASH = "phash"
    COMBINED = "cnn+phash"


@dataclass(frozen=True)
class PairSignals:
    same_sha256: bool = False
    cosine: float | None = None  # whole image against whole image
    phash_distance: int | None = None
    # best of one image's whole frame against the other's 80 % sub-views, both ways
    view_cosine: float | None = None

    @property
    def cnn(self) -> float | None:
        """The CNN's similarity: the whole frames', or a sub-view's if that is closer."""
        known = [c for c in (self.cosine, self.view_cosine) if c is not None]
        return max(known) if known else None


@dataclass(frozen=True)
class Thresholds:
    cosine: float  # CNN alone: duplicate at or above
    phash_distance: int  # pHash alone: duplicate at or below
    combined_cosine: float  # both weaker signals together...
    combined_phash_distance: int  # ...also make a duplicate


@dataclass(frozen=True)
class Decision:
    method: Method
    # Similarity in [0, 1]: 1.0 for equal bytes, the cosine when the CNN decided or
    # agreed, otherwise 1 - distance / 64 for pHash.
    score: float


def phash_distance(a: int, b: int) -> int:
    """Hamming distance of two 64-bit hashes stored as signed int64."""
    return ((a ^ b) & (2**PHASH_BITS - 1)).bit_count()


def decide(signals: PairSignals, t: Thresholds) -> Decision | None:
    """The pair's duplicate decision, or None when it is not a duplicate."""
    if signals.same_sha256:
        return Decision(Method.SHA256, 1.0)
    cos, dist = signals.cnn, signals.phash_distance
    if cos is not None and cos >= t.cosine:
        return Decision(Method.CNN, cos)
    both = cos is not None and dist is not None
    if both and cos >= t.combined_cosine and dist <= t.combined_phash_distance:
        return Decision(Method.COMBINED, cos)
    if dist is not None and dist <= t.phash_distance:
        return Decision(Method.PHASH, 1.0 - dist / PHASH_BITS)
    return None
