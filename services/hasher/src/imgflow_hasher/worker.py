"""Celery entry point: ``celery -A imgflow_hasher.worker worker -Q hashing``."""

from __future__ import annotations

from PIL import Image, UnidentifiedImageError

from imgflow_contracts.celery_app import make_worker_app
from imgflow_contracts.logs import configure_logging
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import WorkerSettings
from imgflow_contracts.worker import PermanentError, WorkerContext, register_stage_task
from imgflow_hasher.analysis import analyse
from imgflow_hasher.repository import expected_sha256, record_facts

settings = WorkerSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.HASHING, settings)


def hash_image(job: ImageJob, ctx: WorkerContext) -> None:
    data = ctx.store.get_bytes(job.object_key)
    try:
        facts = analyse(data)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise PermanentError(f"cannot decode the image: {exc}") from exc
    expected = ctx.db(expected_sha256, job.image_id)
    if expected is not None and expected != facts.sha256:
        raise PermanentError(
            f"stored object is corrupt: SHA-256 {facts.sha256} differs from {expected} at upload"
        )
    ctx.db(record_facts, job.image_id, facts)


analyse_task = register_stage_task(app, Stage.HASHING, hash_image, settings)
