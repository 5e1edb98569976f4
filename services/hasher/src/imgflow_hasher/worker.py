"""Celery entry point: ``celery -A imgflow_hasher.worker worker -Q hashing``."""

from __future__ import annotations

import logging

from celery import signals

from imgflow_contracts.keys import analysis_key
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_hasher.analysis import (
    ImageFacts,
    UndecodableImage,
    analyse,
    integrity_problem,
    is_jpeg,
    sha256_hex,
)
from imgflow_hasher.repository import UploadRecord, record_facts, upload_record
from imgflow_hasher.settings import HasherSettings
from imgflow_runtime.celery_app import make_worker_app
from imgflow_runtime.logs import configure_logging
from imgflow_runtime.stage_runner import (
    ImageGone,
    PermanentError,
    WorkerContext,
    register_stage_task,
)
from imgflow_runtime.storage import ObjectStore

settings = HasherSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.HASHING, settings)
log = logging.getLogger(__name__)
# The start-up probe's bound on each request to S3.
START_PROBE_S = 2.0


@signals.worker_init.connect
def refuse_an_s3_that_does_not_check_checksums(**_: object) -> None:
    """Trusting a stored SHA-256 is safe only if S3 checked it at PUT: refuse to start
    (before taking any job) against one that stores it unchecked."""
    if not settings.hasher_trust_stored_checksum:
        return
    try:
        if ObjectStore.from_settings(settings, probe_s=START_PROBE_S).verifies_checksums():
            return
    except Exception as exc:
        # S3 down or frozen at start-up: jobs wait and retry for it anyway; start.
        log.warning("could not ask S3 whether it checks stored checksums: %r", exc)
        return
    message = (
        f"the S3 server at {settings.s3_endpoint} stores x-amz-checksum-sha256 without "
        "checking it (a wrong one was accepted), so its stored checksums cannot be trusted: "
        "set IMGFLOW_HASHER_TRUST_STORED_CHECKSUM=false to hash every original instead"
    )
    log.critical(message)
    raise SystemExit(message)  # Celery's signal dispatch swallows an Exception


def hash_image(job: ImageJob, ctx: WorkerContext) -> None:
    upload = ctx.db(upload_record, job.image_id)
    if upload is None:
        raise ImageGone
    # Missing when the thumbnailer failed, or for images it processed before it made one.
    copy = ctx.store.get_bytes_if_exists(analysis_key(job.image_id))
    facts = None
    if copy is not None and settings.hasher_trust_stored_checksum:
        facts = header_facts(job, ctx, upload, copy)
    if facts is None:
        facts = whole_file_facts(job, ctx, upload, copy)
    if not ctx.db(record_facts, job.image_id, facts):
        raise ImageGone


def header_facts(
    job: ImageJob, ctx: WorkerContext, upload: UploadRecord, copy: bytes
) -> ImageFacts | None:
    """Facts from the checksum S3 verified at PUT and the JPEG's header alone (~1 % of its
    bytes); None when the store holds no checksum or the header is not enough."""
    stored = ctx.store.checksum(job.object_key)
    if stored.sha256 is None:  # stored without one (presigned uploads, older images)
        return None
    # The stored checksum is of the bytes S3 holds: a wrong object fails here as before.
    problem = integrity_problem(
        stored.sha256, stored.size, upload.sha256, upload.byte_size, ", as S3 verified it"
    )
    if problem:
        raise PermanentError(problem)
    head = ctx.store.read_head(job.object_key, settings.hasher_header_bytes)
    # Other formats keep EXIF anywhere in the file (PNG, TIFF, HEIF): read them whole.
    if not is_jpeg(head):
        return None
    try:
        return analyse(
            head,
            keep_gps=settings.hasher_keep_gps,
            sha256=stored.sha256,
            byte_size=stored.size,
            upright_copy=copy,
        )
    except UndecodableImage:
        return None  # e.g. metadata segments longer than the header read: read it all


def whole_file_facts(
    job: ImageJob, ctx: WorkerContext, upload: UploadRecord, copy: bytes | None
) -> ImageFacts:
    data = ctx.store.get_bytes(job.object_key)
    digest = sha256_hex(data)
    # Checked before decoding: facts of bytes nobody uploaded would be worse than none.
    problem = integrity_problem(digest, len(data), upload.sha256, upload.byte_size)
    if problem:
        raise PermanentError(problem)
    return analyse(data, keep_gps=settings.hasher_keep_gps, sha256=digest, upright_copy=copy)


analyse_task = register_stage_task(app, Stage.HASHING, hash_image, settings)
