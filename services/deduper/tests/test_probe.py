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
