"""The geometric check between stored images: their features, kept or made once.

A check compares its image with up to forty candidates. An image's features are made
once, from its analysis copy, and kept in S3 beside it (stored_features.py,
keys.features_key): the image's own when its check first needs them, a candidate's when
a check first meets it without them (images stored before features were kept, or whose
features are of another version, or unreadable). Later checks read them, a GET of ~30 KB,
instead of fetching the copy and running ORB again; the fetches of one check run side by
side on a few threads. The last few hundred images' features also stay in memory (about
30 KB each). A missing analysis copy (thumbnailer failed, image deleted) means no
evidence: the decision falls back on the CNN and pHash.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar
from uuid import UUID

from imgflow_contracts.keys import analysis_key, features_key
from imgflow_deduper import overlap, stored_features
from imgflow_deduper.alignment import Alignment, align
from imgflow_deduper.borders import trim_bars
from imgflow_deduper.pixels import decode
from imgflow_runtime.imaging import UndecodableImage
from imgflow_runtime.storage import ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
# Threads fetching one check's candidates side by side: a check probes up to forty, and
# GETs wait on the network, not the CPU.
FETCHERS = 8


def features_of(data: bytes) -> overlap.Features:
    """Features of encoded image bytes, decoded and trimmed as the embedding's are."""
    return overlap.features(trim_bars(decode(data, overlap.FEATURE_SIDE)))


class KeptFeatures(Protocol):
    """Where each image's encoded features are kept (``S3Features``)."""

    def get(self, image_id: UUID) -> bytes | None: ...

    def put(self, image_id: UUID, data: bytes) -> None: ...


class S3Features:
    """Features kept in the object store, beside the image's analysis copy."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def get(self, image_id: UUID) -> bytes | None:
        return self.store.get_bytes_if_exists(features_key(image_id))

    def put(self, image_id: UUID, data: bytes) -> None:
        """Keep ``data``, unless the image was deleted meanwhile. Deleting an image drops
        its renditions prefix; a check that read a candidate's analysis copy just before
        could otherwise write its features after that, an object nothing would delete.
        Looking for the copy after the write leaves one window open: a write landing
        between the delete's listing and its removal of the copy (milliseconds)."""
        key = features_key(image_id)
        self.store.put_bytes(key, data, stored_features.CONTENT_TYPE)
        if not self.store.exists(analysis_key(image_id)):
            self.store.delete(key)


@dataclass
class ProbeStats:
    """What a probe did, summed since it was made (the bench reads it)."""

    read: int = 0  # features read from where they are kept
    made: int = 0  # features made from an analysis copy (or the checked image's bytes)
    written: int = 0  # features written to be kept
    fetch_s: float = 0.0  # wall time of the fetches (side by side), writes included
    make_s: float = 0.0  # wall time making features


class StoreProbe:
    """``Probe`` for checks.py: features by image id.

    ``fetch``: an image's analysis copy (None when it has none). ``kept``: where features
    are kept (None: made from the copy each time they are not in memory, as before they
    were kept). ``fetchers``: threads fetching one check's candidates side by side."""

    def __init__(
        self,
        fetch: Callable[[UUID], bytes | None],
        keep: int = 256,
        *,
        kept: KeptFeatures | None = None,
        fetchers: int = 1,
        min_inliers: int = 0,
        motion: bool = True,
    ) -> None:
        self._fetch = fetch
        self._min_inliers = min_inliers  # overlap.overlap's: below it, no more is measured
        self._motion = motion  # overlap.overlap's: whether a copy's cells' motion is measured
        self._keep = keep
        self._kept = kept
        self._fetchers = fetchers
        self._threads: ThreadPoolExecutor | None = None
        self._cache: OrderedDict[UUID, overlap.Features | None] = OrderedDict()
        self._seeded: tuple[UUID, bytes, bool] | None = None
        self.stats = ProbeStats()

    def _remember(self, image_id: UUID, features: overlap.Features | None) -> None:
        self._cache[image_id] = features
        self._cache.move_to_end(image_id)
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)

    def seed(self, image_id: UUID, data: bytes, is_analysis_copy: bool = True) -> None:
        """The image being checked: its bytes are at hand already (its features are made
        only if a candidate needs them: most uploads have none that look alike). Its
        features are made from these bytes, never read (they are the newest), and kept
        when the bytes are its analysis copy."""
        self._seeded = (image_id, data, is_analysis_copy)
        self._cache.pop(image_id, None)

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if self._fetchers <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        if self._threads is None:  # made at first use: in the pool process, after the fork
            self._threads = ThreadPoolExecutor(self._fetchers, thread_name_prefix="probe")
        return list(self._threads.map(fn, items))

    def _load(self, image_id: UUID) -> tuple[overlap.Features | None, bytes | None]:
        """Kept features when there are good ones, else the analysis copy's bytes."""
        if self._kept is not None:
            data = self._kept.get(image_id)
            found = None if data is None else stored_features.decode(data)
            if found is not None:
                return found, None
            if data is not None:
                log.info("features of %s unreadable or of another version: made again", image_id)
        return None, self._fetch(image_id)

    def _make(self, data: bytes) -> overlap.Features | None:
        started = time.perf_counter()
        try:
            return features_of(data)
        except UndecodableImage:
            return None
        finally:
            self.stats.made += 1
            self.stats.make_s += time.perf_counter() - started

    def _write(self, item: tuple[UUID, overlap.Features]) -> bool:
        """Keep one image's features (on a fetcher thread); False when that failed."""
        assert self._kept is not None
        image_id, features = item
        try:
            self._kept.put(image_id, stored_features.encode(features))
        except Exception:  # kept features save work; not keeping them loses none
            log.warning("could not keep the features of %s", image_id, exc_info=True)
            return False
        return True

    def prefetch(self, image_ids: Iterable[UUID]) -> dict[UUID, overlap.Features | None]:
        """The features of these images, those not in memory fetched side by side."""
        wanted = list(dict.fromkeys(image_ids))
        out = {i: self._cache[i] for i in wanted if i in self._cache}
        seeded = self._seeded
        own = seeded[0] if seeded is not None else None
        others = [i for i in wanted if i not in out and i != own]
        started = time.perf_counter()
        loaded = self._map(self._load, others)
        self.stats.fetch_s += time.perf_counter() - started
        to_keep: list[tuple[UUID, overlap.Features]] = []
        if seeded is not None and own in wanted and own not in out:
            out[own] = self._make(seeded[1])
            if out[own] is not None and seeded[2]:
                to_keep.append((own, out[own]))
        for image_id, (found, copy) in zip(others, loaded, strict=True):
            if found is not None:
                self.stats.read += 1
            elif copy is not None:
                found = self._make(copy)
                if found is not None:
                    to_keep.append((image_id, found))
            out[image_id] = found
        for image_id in wanted:
            self._remember(image_id, out[image_id])
        if self._kept is not None and to_keep:
            started = time.perf_counter()
            self.stats.written += sum(self._map(self._write, to_keep))
            self.stats.fetch_s += time.perf_counter() - started
        return out

    def features(self, image_id: UUID) -> overlap.Features | None:
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        return self.prefetch([image_id])[image_id]

    def __call__(self, subject: UUID, other: UUID) -> overlap.Overlap | None:
        a, b = self.features(subject), self.features(other)
        return (
            None
            if a is None or b is None
            else overlap.overlap(a, b, self._min_inliers, motion=self._motion)
        )

    def align(self, subject: UUID, other: UUID) -> Alignment | None:
        """checks.Aligning: the two thumbnails aligned (their features are in memory: the
        check has just compared them)."""
        a, b = self.features(subject), self.features(other)
        return None if a is None or b is None else align(a.thumb, b.thumb)
