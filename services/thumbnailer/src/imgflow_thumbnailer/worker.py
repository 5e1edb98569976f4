"""Celery entry point: ``celery -A imgflow_thumbnailer.worker worker -Q thumbnails``."""

from __future__ import annotations

from imgflow_contracts.keys import ANALYSIS_LONG_SIDE, analysis_key, features_key, rendition_key
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_runtime.celery_app import make_worker_app
from imgflow_runtime.logs import configure_logging
from imgflow_runtime.stage_runner import (
    ImageGone,
    WorkerContext,
    register_stage_task,
)
from imgflow_thumbnailer.rendering import render_with_analysis
from imgflow_thumbnailer.repository import upsert_renditions
from imgflow_thumbnailer.settings import ThumbnailerSettings

settings = ThumbnailerSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.THUMBNAILS, settings)
encode_options = settings.encode_options()


def make_thumbnails(job: ImageJob, ctx: WorkerContext) -> None:
    original = ctx.store.get_bytes(job.object_key)
    rendered = render_with_analysis(
        original,
        settings.thumbnail_sizes,
        fit=settings.thumbnail_fit,
        options=encode_options,
        analysis_side=ANALYSIS_LONG_SIDE,
    )
    written = []
    if rendered.analysis is not None:  # first: the stages after this one read it
        written.append(analysis_key(job.image_id))
        ctx.store.put_bytes(written[-1], rendered.analysis, "image/jpeg")
        # The deduper's features of the copy it replaces (a reprocess): made again from
        # this one when next needed. Deleting a missing key is no error.
        ctx.store.delete(features_key(job.image_id))
    stored = []
    for rendition in rendered.renditions:
        key = rendition_key(job.image_id, rendition.size, rendition.format.value)
        ctx.store.put_bytes(key, rendition.data, rendition.content_type)
        stored.append((rendition, key))
        written.append(key)
    if not ctx.db(upsert_renditions, job.image_id, stored):
        # Deleted while we rendered: its delete listed the objects before these existed.
        for key in written:
            ctx.store.delete(key)
        raise ImageGone


render = register_stage_task(app, Stage.THUMBNAILS, make_thumbnails, settings)
