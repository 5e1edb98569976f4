from uuid import uuid4

import pytest
from pydantic import ValidationError

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import QUEUES, TASK_NAMES, Stage, dependants, first_stages


def test_every_stage_has_its_own_queue_and_task():
    assert {s.queue for s in Stage} == {"thumbnails", "hashing", "dedupe"}
    assert len(set(TASK_NAMES.values())) == len(Stage) == len(QUEUES)


def test_job_payload_is_small_json_and_strict():
    job = ImageJob(image_id=uuid4(), stage=Stage.HASHING, object_key="originals/x")
    message = job.to_message()
    assert message == {
        "v": 1,
        "image_id": str(job.image_id),
        "stage": "hashing",
        "object_key": "originals/x",
    }
    assert ImageJob.model_validate(message) == job
    with pytest.raises(ValidationError):
        ImageJob.model_validate({**message, "image_bytes": "AAAA"})
    with pytest.raises(ValidationError):
        ImageJob.model_validate({**message, "v": 2})


def test_stages_that_read_the_thumbnails_wait_for_them():
    assert dependants(Stage.THUMBNAILS) == [Stage.HASHING, Stage.DEDUPE]
    assert dependants(Stage.HASHING) == [] and dependants(Stage.DEDUPE) == []
    assert first_stages(list(Stage)) == [Stage.THUMBNAILS]
    # rerun alone, a reading stage goes at once: the copy it reads is already there
    assert first_stages([Stage.HASHING, Stage.DEDUPE]) == [Stage.HASHING, Stage.DEDUPE]
    assert first_stages([Stage.THUMBNAILS, Stage.DEDUPE]) == [Stage.THUMBNAILS]
