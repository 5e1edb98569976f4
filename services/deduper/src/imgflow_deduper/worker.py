"""Celery entry point: ``celery -A imgflow_deduper.worker worker -Q dedupe``.

Thin glue: fetch the original, embed it (encoder.py), and run the check (checks.py).
The execution providers are chosen and logged when the worker starts; each pool process
opens its own ONNX Runtime session at its first job (a session must not cross a fork, and
loading it in Celery's process-init hook could outlast the pool's 4 s start-up timeout),
with its threads sized to its share of the CPUs: the CPU share over the pool size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime
from celery import signals

from imgflow_contracts.keys import analysis_key
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_deduper.checks import CheckPolicy, check_image, recheck_late_phashes
from imgflow_deduper.encoder import (
    Encoder,
    ModelMissingError,
    choose_providers,
    cpu_share,
    embed_views,
)
from imgflow_deduper.pixels import Normalisation, view_tensors
from imgflow_deduper.probe import FETCHERS, S3Features, StoreProbe
from imgflow_deduper.repository import EmbeddingSpace, SearchLimits, store_sharpness
from imgflow_deduper.settings import DedupeSettings
from imgflow_deduper.sharpness import laplacian_variance
from imgflow_runtime.celery_app import make_worker_app
from imgflow_runtime.logs import configure_logging
from imgflow_runtime.stage_runner import (
    ImageGone,
    WorkerContext,
    register_stage_task,
)

log = logging.getLogger(__name__)
settings = DedupeSettings()
configure_logging(settings.log_level)
app = make_worker_app(Stage.DEDUPE, settings)

# Fail at start, not at the first job, when the model is missing.
if not Path(settings.dedupe_model_path).is_file():
    raise ModelMissingError(
        f"no model at {Path(settings.dedupe_model_path).resolve()}: run `make model` "
        "or set IMGFLOW_DEDUPE_MODEL_PATH"
    )

NORMALISATION = Normalisation.of(
    settings.dedupe_input_size,
    settings.dedupe_mean,
    settings.dedupe_std,
    settings.dedupe_detail_size,
)
THRESHOLDS = settings.thresholds()
GEOMETRY = settings.geometry()
# Late-pHash rechecks each job takes on (see checks.py): small, so a job stays quick.
RECHECKS_PER_JOB = 10

_loaded: tuple[Encoder, CheckPolicy] | None = None
_pool_size = 1  # the worker's --concurrency, read in the parent before it forks


def _threads() -> int:
    return settings.dedupe_threads or max(1, cpu_share() // _pool_size)


@signals.worker_init.connect(weak=False)
def _log_the_plan(sender: Any = None, **_: Any) -> None:
    global _pool_size
    _pool_size = max(1, int(getattr(sender, "concurrency", 1) or 1))
    log.info(
        "dedupe model %s on %s (preferred %s); %d inference thread(s) per pool process",
        settings.dedupe_model_path,
        choose_providers(settings.dedupe_providers, onnxruntime.get_available_providers()),
        settings.dedupe_providers,
        _threads(),
    )


def _model() -> tuple[Encoder, CheckPolicy]:
    """The encoder of this process (never built before the fork: ORT sessions don't fork)."""
    global _loaded
    if _loaded is None:
        encoder = Encoder(settings.dedupe_model_path, settings.dedupe_providers, _threads())
        policy = CheckPolicy(
            space=EmbeddingSpace(settings.dedupe_model_name, encoder.info.dim),
            limits=SearchLimits(
                candidates=settings.dedupe_candidates,
                phash_distance=max(
                    settings.dedupe_phash_max_distance, settings.dedupe_combined_phash_distance
                ),
                ef_search=settings.dedupe_hnsw_ef_search,
                similar_candidates=settings.dedupe_similar_candidates if GEOMETRY else 0,
                probe_cosine=settings.dedupe_probe_cosine,
            ),
            thresholds=THRESHOLDS,
            geometry=GEOMETRY,
            probe_cosine=settings.dedupe_probe_cosine,
        )
        _loaded = (encoder, policy)
    return _loaded


_probes: dict[int, StoreProbe] = {}


def _probe(ctx: WorkerContext) -> StoreProbe:
    """One per pool process (and store): candidates' features, kept in S3 beside their
    analysis copies or made from them."""
    key = id(ctx.store)
    if key not in _probes:
        store = ctx.store
        geometry = settings.geometry()
        _probes[key] = StoreProbe(
            lambda image_id: store.get_bytes_if_exists(analysis_key(image_id)),
            kept=S3Features(store),
            fetchers=min(FETCHERS, settings.s3_max_connections),  # a pooled connection each
            min_inliers=settings.dedupe_geometry_min_inliers,
            motion=geometry is not None and geometry.measures_motion,
        )
    return _probes[key]


def check_duplicates(job: ImageJob, ctx: WorkerContext) -> None:
    encoder, policy = _model()
    # The thumbnailer's analysis copy: decoding the original again would cost more than
    # the model. Missing when the thumbnailer failed (or ran before it made one).
    data = ctx.store.get_bytes_if_exists(analysis_key(job.image_id))
    is_copy = data is not None
    if data is None:
        data = ctx.store.get_bytes(job.object_key)
    pixels = view_tensors(data, NORMALISATION, settings.dedupe_sub_views)
    whole, views = embed_views(encoder, pixels, mirror_invariant=settings.dedupe_mirror_invariant)
    probe = None
    if GEOMETRY is not None:
        probe = _probe(ctx)
        probe.seed(job.image_id, data, is_analysis_copy=is_copy)
    sharpness = laplacian_variance(data)
    if sharpness is not None:  # before the check: the stack it joins may suggest it
        ctx.db(store_sharpness, job.image_id, sharpness)
    result = ctx.db(check_image, job.image_id, whole, policy, views, probe)
    if result is None:  # deleted while it was embedded; its rows went with it
        raise ImageGone
    if result.duplicates:
        log.info(
            "image %s has %d duplicate(s): %s",
            job.image_id,
            len(result.duplicates),
            ", ".join(f"{c.image_id} ({d.method} {d.score:.3f})" for c, d in result.duplicates),
        )
    if result.similar:
        log.info(
            "image %s is similar to %d image(s): %s",
            job.image_id,
            len(result.similar),
            ", ".join(f"{c.image_id} ({v.basis})" for c, v in result.similar),
        )
    ctx.db(recheck_late_phashes, policy, RECHECKS_PER_JOB, probe)
    # Groups a trash or a delete flagged are regrouped by the API's background loop
    # (duplicates/tasks.py, every IMGFLOW_REGROUP_INTERVAL_S), not per job here.


check = register_stage_task(app, Stage.DEDUPE, check_duplicates, settings)
