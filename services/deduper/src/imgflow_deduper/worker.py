"""Celery entry point: ``celery -A imgflow_deduper.worker worker -Q dedupe``."""

from __future__ import annotations

import logging

from imgflow_contracts.celery_app import make_worker_app
from imgflow_contracts.logs import configure_logging
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import WorkerSettings
from imgflow_contracts.worker import WorkerContext, register_stage_task
from imgflow_deduper.repository import record_exact_check

log = logging.getLogger(__name__)
settings = WorkerSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.DEDUPE, settings)


def check_duplicates(job: ImageJob, ctx: WorkerContext) -> None:
    twin = ctx.db(record_exact_check, job.image_id)
    if twin is not None:
        log.info("image %s has the same bytes as %s", job.image_id, twin)


check = register_stage_task(app, Stage.DEDUPE, check_duplicates, settings)
