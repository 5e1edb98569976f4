"""Fair scheduling through the real relay, broker and workers: a tenant's few uploads are
served in turn with another tenant's flood, and before a bulk reprocess run, instead of
after both (issue 30).

The thumbnailer is stopped while the backlog builds, so what each queue holds is known
exactly: the broker takes TARGET jobs, the rest wait in the outbox. The order in which the
restarted thumbnailer then finishes the images is the order the relay chose. The express
lane (a tenant with little waiting goes to the head of the queue) is off for those, so
that the turns alone decide; its own test, last, restarts the API with it on.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from imgflow_localstack.system import LocalSystem
from imgflow_upload_api.jobs.queue_heads import job_in_message
from tests.stack import running_system
from tests.support import (
    admin_cli,
    new_tenant,
    query,
    upload_photos,
    wait_for,
)

TARGET = 2
ADMIN = {"Authorization": "Bearer fair-tests-admin-token"}
SETTINGS = {
    "ADMIN_TOKEN": "fair-tests-admin-token",
    "OUTBOX_BROKER_TARGET_DEPTH": str(TARGET),
    "OUTBOX_RELAY_INTERVAL_S": "0.2",
    "REPROCESS_INTERVAL_S": "0.2",
    "REPROCESS_BATCH_SIZE": "50",
    "QUEUE_DEPTH_REFRESH_S": "0.2",
    "OUTBOX_EXPRESS_MAX_WAITING": "0",
}


@pytest.fixture(scope="module")
def fair_system() -> Iterator[LocalSystem]:
    with running_system("imgflow-fair-", SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
def db(fair_system: LocalSystem) -> str:
    return fair_system.settings().database_url


def _thumbnail_order(db: str, since: str) -> list[str]:
    """Image ids in the order their thumbnails were finished after ``since``."""
    rows = query(
        db,
        """SELECT image_id::text AS id FROM image_stages
            WHERE stage = 'thumbnails' AND status = 'done' AND finished_at > $1::text::timestamptz
            ORDER BY finished_at, image_id""",
        since,
    )
    return [r["id"] for r in rows]


def _outbox(db: str) -> dict[str, int]:
    rows = query(db, "SELECT kind, count(*) AS n FROM outbox GROUP BY kind")
    return {r["kind"]: r["n"] for r in rows}


def _now(db: str) -> str:
    return query(db, "SELECT now()::text AS t")[0]["t"]


def test_a_trickle_is_served_in_turn_with_a_flood(fair_system: LocalSystem, db: str) -> None:
    flood, trickle = new_tenant(fair_system, "flood"), new_tenant(fair_system, "trickle")
    since = _now(db)
    fair_system.stop_service("thumbnailer")
    try:
        flooded = upload_photos(fair_system.api_url, flood, range(0, 16))
        trickled = upload_photos(fair_system.api_url, trickle, range(100, 103))
        # The broker holds TARGET of the flood's jobs; everything else waits in PostgreSQL.
        wait_for(lambda: _outbox(db) == {"upload": 16 + 3 - TARGET}, what="the backlog")
    finally:
        fair_system.start_service("thumbnailer")
    wait_for(
        lambda: len(_thumbnail_order(db, since)) == 19 or None,
        timeout_s=120,
        what="every thumbnail",
    )
    order = _thumbnail_order(db, since)
    last_trickle = max(order.index(i) for i in trickled)
    # In turns: the TARGET jobs already in the broker, then flood, trickle, flood, ...
    # (one extra place for the job the relay may send while the thumbnailer restarts).
    assert last_trickle <= TARGET + 2 * len(trickled), order
    # A FIFO relay would have finished the trickle last, after all 16 of the flood's.
    assert set(order[last_trickle + 1 :]) <= set(flooded)


def test_new_uploads_go_before_a_bulk_reprocess_run(fair_system: LocalSystem, db: str) -> None:
    library, newcomer = new_tenant(fair_system, "library"), new_tenant(fair_system, "newcomer")
    upload_photos(fair_system.api_url, library, range(200, 212))
    wait_for(
        lambda: _outbox_drained_and_thumbnails_done(db, library["tenant"], 12),
        timeout_s=120,
        what="the library to be processed",
    )
    fair_system.stop_service("thumbnailer")
    try:
        run = admin_cli(
            fair_system, "reprocess", "--tenant", library["tenant"], "--stage", "thumbnails"
        )
        assert run.returncode == 0, run.stderr
        wait_for(lambda: _outbox(db).get("bulk") == 12 - TARGET, what="the run's batch")
        since = _now(db)
        fresh = upload_photos(fair_system.api_url, newcomer, range(300, 303))
        wait_for(lambda: _outbox(db).get("upload") == 3, what="the new uploads' jobs")
    finally:
        fair_system.start_service("thumbnailer")
    wait_for(
        lambda: len(_thumbnail_order(db, since)) == 12 + 3 or None,
        timeout_s=120,
        what="every thumbnail",
    )
    order = _thumbnail_order(db, since)
    # Only the run's jobs already in the broker go before the new uploads.
    assert max(order.index(i) for i in fresh) <= TARGET + len(fresh), order


def _outbox_drained_and_thumbnails_done(db: str, tenant: str, n: int) -> bool:
    [row] = query(
        db,
        """SELECT count(*) FILTER (WHERE s.status = 'done') AS done FROM image_stages AS s
             JOIN images AS i ON i.id = s.image_id JOIN tenants AS t ON t.id = i.tenant_id
            WHERE t.name = $1""",
        tenant,
    )
    return row["done"] == n * 3


def test_an_import_flagged_bulk_waits_behind_new_uploads(fair_system: LocalSystem, db: str) -> None:
    importer, newcomer = new_tenant(fair_system, "importer"), new_tenant(fair_system, "new")
    since = _now(db)
    fair_system.stop_service("thumbnailer")
    try:
        imported = upload_photos(fair_system.api_url, importer, range(400, 406), bulk=True)
        wait_for(lambda: _outbox(db) == {"bulk": 6 - TARGET}, what="the import's backlog")
        [fresh] = upload_photos(fair_system.api_url, newcomer, range(500, 501))
        wait_for(lambda: _outbox(db).get("upload") == 1, what="the new upload's job")
    finally:
        fair_system.start_service("thumbnailer")
    wait_for(lambda: len(_thumbnail_order(db, since)) == 7 or None, what="every thumbnail")
    order = _thumbnail_order(db, since)
    assert order.index(fresh) <= TARGET + 1, order
    assert order[-1] in imported


def test_later_stages_of_a_bulk_import_wait_as_bulk(fair_system: LocalSystem, db: str) -> None:
    """The thumbnailer hands the hashing and dedupe jobs on; with their queues full they
    go through the outbox, still of the import's kind (not as new uploads' work)."""
    importer = new_tenant(fair_system, "importer-stages")
    fair_system.stop_service("hasher")
    fair_system.stop_service("deduper")
    try:
        upload_photos(fair_system.api_url, importer, range(600, 605), bulk=True)
        # Each of the two queues holds TARGET jobs; the rest wait in the outbox.
        wait_for(
            lambda: sum(_later_stages_waiting(db).values()) == 2 * (5 - TARGET),
            timeout_s=120,
            what="the later stages' backlog",
        )
        assert _later_stages_waiting(db) == {"bulk": 2 * (5 - TARGET)}
    finally:
        fair_system.start_service("hasher")
        fair_system.start_service("deduper")
    wait_for(lambda: not _outbox(db), timeout_s=120, what="the backlog to drain")


def _later_stages_waiting(db: str) -> dict[str, int]:
    rows = query(
        db,
        """SELECT kind, count(*) AS n FROM outbox
            WHERE queue IN ('hashing', 'dedupe') GROUP BY kind""",
    )
    return {r["kind"]: r["n"] for r in rows}


def test_the_admin_api_sets_and_shows_a_tenants_limits(fair_system: LocalSystem) -> None:
    tenant = new_tenant(fair_system, "weighted")
    with httpx.Client(base_url=fair_system.api_url, timeout=30, headers=ADMIN) as admin:
        url = f"/v1/admin/tenants/{tenant['tenant']}/limits"
        before = admin.get(url)
        assert before.status_code == 200, before.text
        assert before.json()["configured"]["weight"] is None
        assert before.json()["effective"]["weight"] == 1
        changed = admin.patch(url, json={"weight": 3, "max_images": 10})
        assert changed.status_code == 200, changed.text
        assert changed.json()["configured"] == {
            **before.json()["configured"],
            "weight": 3,
            "max_images": 10,
        }
        cleared = admin.patch(url, json={"max_images": None}).json()
        assert (cleared["configured"]["weight"], cleared["configured"]["max_images"]) == (3, None)
        assert admin.patch(url, json={"weight": 0}).status_code == 422
        assert admin.patch(url, json={"speed": 1}).status_code == 422
        missing = admin.get("/v1/admin/tenants/nobody-here/limits")
        assert (missing.status_code, missing.json()["code"]) == (404, "tenant-not-found")
        assert admin.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_tenant_with_little_waiting_goes_to_the_head_of_the_queue(
    fair_system: LocalSystem, db: str
) -> None:
    """The express lane: with a flood's backlog in line, a newcomer's job is put at the
    head of the queue (where the workers take from), not behind the TARGET jobs there."""
    api = fair_system.service("api")
    assert api.child.env is not None
    broker = redis.Redis.from_url(fair_system.settings().broker_url)
    flood, newcomer = new_tenant(fair_system, "flood-x"), new_tenant(fair_system, "newcomer-x")
    taken: list[bytes] = []
    fair_system.stop_service("thumbnailer")
    try:
        _restart_api(fair_system, express="4")
        upload_photos(fair_system.api_url, flood, range(700, 712))
        wait_for(
            lambda: broker.llen("thumbnails") + _outbox(db).get("upload", 0) == 12,
            what="the flood's backlog",
        )
        # Take what the queue holds, as the workers would: the relay refills TARGET from
        # the flood, which has too much waiting for the express lane.
        while (raw := broker.rpop("thumbnails")) is not None:
            taken.append(raw)
        wait_for(lambda: broker.llen("thumbnails") == TARGET, what="the queue refilled")
        [fresh] = upload_photos(fair_system.api_url, newcomer, range(800, 801))
        wait_for(lambda: broker.llen("thumbnails") == TARGET + 1, what="the newcomer's job")
        head = broker.lindex("thumbnails", -1)
        assert head is not None
        job = job_in_message(head)
        assert job is not None and str(job.image_id) == fresh
    finally:
        for raw in taken:  # back in line: their images still get their thumbnails
            broker.lpush("thumbnails", raw)
        broker.close()
        _restart_api(fair_system, express="0")
        fair_system.start_service("thumbnailer")
    wait_for(lambda: not _outbox(db), timeout_s=120, what="the backlog to drain")


def _restart_api(system: LocalSystem, express: str) -> None:
    api = system.service("api")
    api.stop()
    assert api.child.env is not None
    api.child.env["IMGFLOW_OUTBOX_EXPRESS_MAX_WAITING"] = express
    api.start()
