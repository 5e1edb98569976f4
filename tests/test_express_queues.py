"""The express queues: a worker slot per stage kept for tenants with little waiting
(fair scheduling's express lane, docs/operating/scheduling.md), on a system that runs
the express workers.

Which worker ran a stage is read from the workers' own logs ("thumbnails done for <id>"):
what matters is that the light tenant's job did not wait for the workers the backlog
occupies, and that nothing is lost or run twice when the express worker is away.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from imgflow_contracts.queues import Stage
from imgflow_localstack.system import LocalSystem
from tests.stack import running_system
from tests.support import new_tenant, query, upload_photos, wait_for

TARGET = 2
SETTINGS = {
    "OUTBOX_BROKER_TARGET_DEPTH": str(TARGET),
    "OUTBOX_RELAY_INTERVAL_S": "0.2",
    "OUTBOX_EXPRESS_MAX_WAITING": "4",
    "OUTBOX_EXPRESS_QUEUE_DEPTH": "1",
    "OUTBOX_EXPRESS_QUEUE_WAIT_S": "1",
}
IMPORT = 8


@pytest.fixture(scope="module")
def express_system() -> Iterator[LocalSystem]:
    with running_system("imgflow-express-", SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
def db(express_system: LocalSystem) -> str:
    return express_system.settings().database_url


def _runs(system: LocalSystem, worker: str, stage: Stage, image_id: str) -> int:
    """How many times ``worker`` ran ``stage`` of the image (its log's done lines)."""
    log = system.service(worker).log_path.read_text(errors="replace")
    return log.count(f"{stage.value} done for {image_id}")


def _stages(db: str, image_id: str) -> dict[str, dict[str, Any]]:
    rows = query(
        db,
        "SELECT stage, status, attempts, sweeps FROM image_stages WHERE image_id = $1::uuid",
        image_id,
    )
    return {r["stage"]: r for r in rows}


def _all_done(db: str, image_id: str) -> bool:
    stages = _stages(db, image_id)
    return len(stages) == 3 and all(s["status"] == "done" for s in stages.values())


def test_a_light_tenants_job_is_run_by_the_express_worker_while_the_queue_waits(
    express_system: LocalSystem, db: str
) -> None:
    """The thumbnailer is away (as good as busy: it takes nothing) and an import waits
    for it; a newcomer's image is still processed, every stage by the stages' express
    workers, while the import's thumbnails wait for their own worker. (The import is
    flagged bulk, which never takes the express lane: a flood of uploads would, for its
    first few jobs, while it still had little waiting.)"""
    importer = new_tenant(express_system, "importer")
    newcomer = new_tenant(express_system, "light")
    express_system.stop_service("thumbnailer")
    try:
        imported = upload_photos(express_system.api_url, importer, range(0, IMPORT), bulk=True)
        [fresh] = upload_photos(express_system.api_url, newcomer, range(100, 101))
        wait_for(lambda: _all_done(db, fresh), timeout_s=120, what="the newcomer's image")
        waiting = query(
            db,
            """SELECT count(*) AS n FROM image_stages
                WHERE image_id = ANY($1::uuid[]) AND stage = 'thumbnails'
                  AND status = 'pending'""",
            imported,
        )
        assert waiting[0]["n"] == IMPORT  # the express worker took none of them
    finally:
        express_system.start_service("thumbnailer")
    for stage, worker in (
        (Stage.THUMBNAILS, "thumbnailer"),
        (Stage.HASHING, "hasher"),
        (Stage.DEDUPE, "deduper"),
    ):
        assert _runs(express_system, f"{worker}-express", stage, fresh) == 1, stage
        assert _runs(express_system, worker, stage, fresh) == 0, stage
    wait_for(lambda: all(_all_done(db, i) for i in imported), timeout_s=180, what="the import")
    for image_id in imported:
        assert _runs(express_system, "thumbnailer", Stage.THUMBNAILS, image_id) == 1
        assert _runs(express_system, "thumbnailer-express", Stage.THUMBNAILS, image_id) == 0


def test_without_the_express_worker_its_job_moves_to_the_head_of_the_queue(
    express_system: LocalSystem, db: str
) -> None:
    """An express queue nobody consumes: the relay moves the job that waits there to the
    head of the stage's queue, where the thumbnailer runs it, once."""
    newcomer = new_tenant(express_system, "light-alone")
    broker = redis.Redis.from_url(express_system.settings().broker_url)
    express_system.stop_service("thumbnailer-express")
    try:
        [fresh] = upload_photos(express_system.api_url, newcomer, range(200, 201))
        wait_for(lambda: _all_done(db, fresh), timeout_s=120, what="the image")
        assert broker.llen(Stage.THUMBNAILS.express_queue) == 0
    finally:
        express_system.start_service("thumbnailer-express")
        broker.close()
    thumbnails = _stages(db, fresh)["thumbnails"]
    assert (thumbnails["attempts"], thumbnails["sweeps"]) == (1, 0)
    assert _runs(express_system, "thumbnailer", Stage.THUMBNAILS, fresh) == 1
    assert _runs(express_system, "thumbnailer-express", Stage.THUMBNAILS, fresh) == 0
    # It got there by the express queue and the relay's move, not around them.
    api_log = express_system.service("api").log_path.read_text(errors="replace")
    assert "moved to the head of thumbnails" in api_log
    # and the operator sees it counted, without reading logs
    metrics = httpx.get(f"{express_system.api_url}/metrics", timeout=10).text
    assert _sample(metrics, "imgflow_express_jobs_moved_total", queue="thumbnails") >= 1


def _sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_tenant_no_longer_light_hands_its_express_jobs_on_as_ordinary_ones(
    express_system: LocalSystem, db: str
) -> None:
    """A flood starts light: its first upload goes by the express lane. By the time that
    job's thumbnails are done the tenant has a backlog, so its hashing and dedupe go to
    the stages' own workers, not to the express workers that light tenants' jobs need
    free. (Before, an express job's later stages stayed express whatever its tenant had
    queued since.)"""
    flood = new_tenant(express_system, "flood-start")
    express_system.stop_service("thumbnailer")
    express_system.stop_service("thumbnailer-express")
    try:
        [first] = upload_photos(express_system.api_url, flood, range(300, 301))
        rest = upload_photos(express_system.api_url, flood, range(301, 301 + 2 * IMPORT))
        wait_for(
            # well past the lane's 4, so it still has a backlog when its first job is done
            lambda: _waiting_in_outbox(db, flood, Stage.THUMBNAILS) >= 10,
            timeout_s=60,
            what="the flood's backlog in the outbox",
        )
    finally:
        express_system.start_service("thumbnailer")
        express_system.start_service("thumbnailer-express")
    wait_for(lambda: all(_all_done(db, i) for i in [first, *rest]), timeout_s=240, what="the flood")
    for stage, worker in ((Stage.HASHING, "hasher"), (Stage.DEDUPE, "deduper")):
        assert _runs(express_system, f"{worker}-express", stage, first) == 0, stage
        assert _runs(express_system, worker, stage, first) == 1, stage
    ran = sum(
        _runs(express_system, worker, Stage.THUMBNAILS, first)
        for worker in ("thumbnailer", "thumbnailer-express")
    )
    assert ran == 1


def _waiting_in_outbox(db: str, tenant: dict[str, Any], stage: Stage) -> int:
    rows = query(
        db,
        """SELECT count(*) AS n FROM outbox AS o JOIN tenants AS t ON t.id = o.tenant_id
            WHERE t.name = $1 AND o.queue = $2 AND o.kind = 'upload'""",
        tenant["tenant"],
        stage.queue,
    )
    return int(rows[0]["n"])
