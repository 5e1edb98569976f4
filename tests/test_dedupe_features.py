"""The deduper keeps each image's geometric-check features in S3 beside its analysis copy
(keys.features_key): made once, read by later checks, never stale, gone with the image.

Against the session's real PostgreSQL, SeaweedFS and workers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import numpy as np

from imgflow_contracts.keys import analysis_key, features_key, rendition_prefix
from imgflow_deduper import stored_features
from imgflow_deduper.probe import S3Features, features_of
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.storage import ObjectStore
from tests.support import encode, every_stage_finished, photo_like, wait_for


def _upload(api: httpx.Client, data: bytes) -> str:
    created = api.post("/v1/images", content=data)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _settled(api: httpx.Client, image_id: str, after: dict[str, str] | None = None) -> Any:
    """The image once every stage has finished (again, for those in ``after``)."""

    def done() -> Any:
        body = api.get(f"/v1/images/{image_id}").json()
        stages = body["stages"]
        again = all(
            stages[s]["finished_at"]
            and datetime.fromisoformat(stages[s]["finished_at"]) > datetime.fromisoformat(t)
            for s, t in (after or {}).items()
        )
        return body if every_stage_finished(body) and again else None

    return wait_for(done, timeout_s=90, what=f"the stages of {image_id}")


def _kept_are_the_copys(store: ObjectStore, image_id: str) -> None:
    kept = stored_features.decode(store.get_bytes(features_key(UUID(image_id))))
    made = features_of(store.get_bytes(analysis_key(UUID(image_id))))
    assert kept is not None and kept.size == made.size
    assert np.array_equal(kept.direct.descriptors, made.direct.descriptors)
    assert np.array_equal(kept.thumb, made.thumb)


def test_features_are_kept_made_again_when_unreadable_and_follow_the_image(
    api: httpx.Client, store: ObjectStore, system: LocalSystem
) -> None:
    photo = photo_like(900, 600, seed=2801)
    first = _upload(api, encode(photo, "JPEG", quality=90))
    thumbnailed = _settled(api, first)["stages"]["thumbnails"]["finished_at"]
    # a crop of it: its check compares the two, making both images' features
    second = _upload(api, encode(photo.crop((60, 0, 900, 600)), "JPEG", quality=85))
    checked = _settled(api, second)
    assert checked["stages"]["dedupe"]["status"] == "done"
    for image_id in (first, second):
        _kept_are_the_copys(store, image_id)
    size = len(store.get_bytes(features_key(UUID(first))))
    assert 1_000 < size < 64_000  # small beside the copy: a few hundred keypoints

    # Unreadable (a torn write, another version): made again, the check unharmed. In a
    # fresh deduper: the one that made them still has them in memory.
    store.put_bytes(
        features_key(UUID(first)), b"imgflow-features\ntorn", "application/octet-stream"
    )
    system.stop_service("deduper")
    system.start_service("deduper")
    again = api.post(f"/v1/images/{second}/reprocess", json={"stages": ["dedupe"]})
    assert again.status_code == 202, again.text
    rechecked = _settled(api, second, {"dedupe": checked["stages"]["dedupe"]["finished_at"]})
    assert rechecked["stages"]["dedupe"]["status"] == "done"
    _kept_are_the_copys(store, first)

    # A new analysis copy (a thumbnails reprocess) takes the features made from the old.
    thumbs = api.post(f"/v1/images/{first}/reprocess", json={"stages": ["thumbnails"]})
    assert thumbs.status_code == 202, thumbs.text
    _settled(api, first, {"thumbnails": thumbnailed})
    assert store.exists(analysis_key(UUID(first)))
    assert not store.exists(features_key(UUID(first)))

    # Deleting an image deletes its features with its other derived objects.
    assert api.delete(f"/v1/images/{second}").status_code == 204
    assert not store.exists(features_key(UUID(second)))
    assert not store.exists(analysis_key(UUID(second)))


def test_features_of_an_image_deleted_meanwhile_are_not_left_behind(store: ObjectStore) -> None:
    # A check made a candidate's features from its analysis copy, and the image was
    # deleted (its renditions prefix dropped) before the features were written.
    data = stored_features.encode(features_of(encode(photo_like(300, 200, seed=2802), "JPEG")))
    kept = S3Features(store)
    gone, there = uuid4(), uuid4()
    kept.put(gone, data)
    assert not store.exists(features_key(gone))
    store.put_bytes(analysis_key(there), b"the copy", "image/jpeg")
    kept.put(there, data)
    assert store.get_bytes(features_key(there)) == data
    store.delete_prefix(rendition_prefix(there))
