"""The worker's geometric check by image id: features fetched once, the subject's not at all."""

from __future__ import annotations

import io
from uuid import UUID, uuid4

from PIL import Image
from skimage import data

from imgflow_deduper.probe import StoreProbe


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def test_candidates_are_fetched_once_and_missing_pixels_give_no_evidence() -> None:
    photo = Image.fromarray(data.astronaut())
    subject, copy, gone = uuid4(), uuid4(), uuid4()
    stored = {copy: jpeg(photo.reduce(2)), gone: None}
    fetched: list[UUID] = []

    def fetch(image_id: UUID) -> bytes | None:
        fetched.append(image_id)
        return stored[image_id]

    probe = StoreProbe(fetch)
    probe.seed(subject, jpeg(photo))
    found = probe(subject, copy)
    assert found is not None and found.iou > 0.9 and found.agreement > 0.9
    assert probe(subject, gone) is None
    probe(subject, copy)
    assert fetched == [copy, gone]  # the subject's bytes were at hand; the rest kept


class Kept:
    """Where features are kept, in memory (S3 in the worker: tests/test_dedupe_features.py)."""

    def __init__(self, failing: bool = False) -> None:
        self.objects: dict[UUID, bytes] = {}
        self.failing = failing

    def get(self, image_id: UUID) -> bytes | None:
        return self.objects.get(image_id)

    def put(self, image_id: UUID, data: bytes) -> None:
        if self.failing:
            raise ConnectionError("S3 is down")
        self.objects[image_id] = data


def _library(n: int) -> dict[UUID, bytes]:
    photo = Image.fromarray(data.astronaut())
    w, h = photo.size
    return {uuid4(): jpeg(photo.crop((8 * k, 0, w - 8 * k, h)).reduce(2)) for k in range(n)}


def test_features_are_made_once_and_read_by_later_checks() -> None:
    photo = Image.fromarray(data.astronaut())
    copies = _library(3)
    fetched: list[UUID] = []

    def fetch(image_id: UUID) -> bytes | None:
        fetched.append(image_id)
        return copies.get(image_id)

    kept = Kept()
    first, subject = StoreProbe(fetch, kept=kept, fetchers=4), uuid4()
    first.seed(subject, jpeg(photo))
    first.prefetch([subject, *copies])
    made = {c: first(subject, c) for c in copies}
    assert set(fetched) == set(copies) and len(fetched) == 3
    assert set(kept.objects) == {subject, *copies}  # the checked image's own too
    assert (first.stats.made, first.stats.read, first.stats.written) == (4, 0, 4)

    # another process (nothing in memory) checking another upload: reads, makes none
    fetched.clear()
    later, newcomer = StoreProbe(fetch, kept=kept, fetchers=4), uuid4()
    later.seed(newcomer, jpeg(photo.reduce(3)))
    later.prefetch([newcomer, subject, *copies])
    assert fetched == [] and (later.stats.read, later.stats.made) == (4, 1)
    for c in copies:  # the same evidence as from features made afresh
        assert later(subject, c) == made[c]


def test_unreadable_kept_features_are_made_again_and_replaced() -> None:
    copies = _library(2)
    broken, stale = list(copies)
    kept = Kept()
    StoreProbe(copies.get, kept=kept).prefetch(copies)
    good = dict(kept.objects)
    kept.objects[broken] = good[broken][:100]
    kept.objects[stale] = b"not features at all"
    probe = StoreProbe(copies.get, kept=kept, fetchers=2)
    found = probe.prefetch(copies)
    assert all(f is not None for f in found.values())
    assert (probe.stats.read, probe.stats.made) == (0, 2)
    assert kept.objects == good  # rewritten whole (features are deterministic)


def test_keeping_failing_or_a_missing_copy_never_fails_the_check() -> None:
    copies: dict[UUID, bytes | None] = {**_library(1), uuid4(): None}
    probe = StoreProbe(copies.get, kept=Kept(failing=True), fetchers=2)
    found = probe.prefetch(copies)
    assert sorted(f is None for f in found.values()) == [False, True]
    assert probe.stats.written == 0


def test_a_subject_seeded_with_its_original_is_not_kept() -> None:
    """Without an analysis copy the check decodes the original: its features are of other
    pixels than a candidate's would be, so they are not kept as the copy's."""
    kept, subject = Kept(), uuid4()
    probe = StoreProbe(lambda _: None, kept=kept)
    probe.seed(subject, jpeg(Image.fromarray(data.astronaut())), is_analysis_copy=False)
    assert probe.features(subject) is not None and kept.objects == {}
