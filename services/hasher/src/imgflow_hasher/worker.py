"""Celery entry point: ``celery -A imgflow_hasher.worker worker -Q hashing``."""

from __future__ import annotations

from imgflow_contracts.keys import analysis_key
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_hasher.analysis import analyse, integrity_problem, sha256_hex
from imgflow_hasher.repository import record_facts, upload_record
from imgflow_hasher.settings import HasherSettings
from imgflow_runtime.celery_app import make_worker_app
from imgflow_runtime.logs import configure_logging
from imgflow_runtime.stage_runner import (
    ImageGone,
    PermanentError,
    WorkerContext,
    register_stage_task,
)

settings = HasherSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.HASHING, settings)


def hash_image(job: ImageJob, ctx: WorkerContext) -> None:
    data = ctx.store.get_bytes(job.object_key)
    digest = sha256_hex(data)
    upload = ctx.db(upload_record, job.image_id)
    if upload is None:
        raise ImageGone
    # Checked before decoding: facts of bytes nobody uploaded would be worse than none.
    problem = integrity_problem(digest, len(data), upload.sha256, upload.byte_size)
    if problem:
        raise PermanentError(problem)
    # Missing when the thumbnailer failed, or for images it processed before it made one.
    copy = ctx.store.get_bytes_if_exists(analysis_key(job.image_id))
    facts = analyse(data, keep_gps=settings.hasher_keep_gps, sha256=digest, upright_copy=copy)
    if not ctx.db(record_facts, job.image_id, facts):
        raise ImageGone


analyse_task = register_stage_task(app, Stage.HASHING, hash_image, settings)
