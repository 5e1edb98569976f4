"""The geometric check between stored images: their features from the analysis copies.

A check compares its image with a few candidates; a burst of uploads compares the same
images again and again, so the features of the last few hundred images stay in memory
(about 30 KB each). A missing analysis copy (thumbnailer failed, image deleted) means no
evidence: the decision falls back on the CNN and pHash.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from uuid import UUID

from imgflow_deduper import overlap
from imgflow_deduper.borders import trim_bars
from imgflow_deduper.pixels import decode
from imgflow_runtime.imaging import UndecodableImage


def features_of(data: bytes) -> overlap.Features:
    """Features of encoded image bytes, decoded and trimmed as the embedding's are."""
    return overlap.features(trim_bars(decode(data, overlap.FEATURE_SIDE)))


class StoreProbe:
    """``Probe`` for checks.py: features by image id, fetched through ``fetch``."""

    def __init__(self, fetch: Callable[[UUID], bytes | None], keep: int = 256) -> None:
        self._fetch = fetch
        self._keep = keep
        self._cache: OrderedDict[UUID, overlap.Features | None] = OrderedDict()
        self._seeded: tuple[UUID, bytes] | None = None

    def _remember(self, image_id: UUID, features: overlap.Features | None) -> None:
        self._cache[image_id] = features
        self._cache.move_to_end(image_id)
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)

    def seed(self, image_id: UUID, data: bytes) -> None:
        """The image being checked: its bytes are at hand already (its features are made
        only if a candidate needs them: most uploads have none that look alike)."""
        self._seeded = (image_id, data)

    def features(self, image_id: UUID) -> overlap.Features | None:
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        seeded = self._seeded
        data = seeded[1] if seeded and seeded[0] == image_id else self._fetch(image_id)
        try:
            found = None if data is None else features_of(data)
        except UndecodableImage:
            found = None
        self._remember(image_id, found)
        return found

    def __call__(self, subject: UUID, other: UUID) -> overlap.Overlap | None:
        a, b = self.features(subject), self.features(other)
        return None if a is None or b is None else overlap.overlap(a, b)
