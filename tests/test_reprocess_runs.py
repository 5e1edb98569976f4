"""Bulk reprocess runs against a real system of their own: an admin token, small batches
and a low pause depth, so a run spans batches and pauses within a test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from imgflow_localstack.system import LocalSystem
from tests.stack import running_system
from tests.support import admin_cli, bearer, encode, new_tenant, photo_like, query, wait_for

ADMIN_TOKEN = "reprocess-tests-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BATCH = 5
PAUSE_DEPTH = 8
SETTINGS = {
    "ADMIN_TOKEN": ADMIN_TOKEN,
    "REPROCESS_BATCH_SIZE": str(BATCH),
    "REPROCESS_INTERVAL_S": "0.2",
    "REPROCESS_PAUSE_DEPTH": str(PAUSE_DEPTH),
    "QUEUE_DEPTH_REFRESH_S": "0.2",
    "OUTBOX_RELAY_INTERVAL_S": "0.2",
    # These tests watch a run's batches reach the broker's queues (its pause, a restart
    # after the outbox emptied): let the relay hand everything over at once, as a FIFO
    # relay does. Fair scheduling's short queues are tested in test_fair_scheduling.py.
    "OUTBOX_BROKER_TARGET_DEPTH": "1000",
}


@pytest.fixture(scope="module")
def small_system() -> Iterator[LocalSystem]:
    with running_system("imgflow-reprocess-", SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
def db(small_system: LocalSystem) -> str:
    return small_system.settings().database_url


@pytest.fixture(scope="module")
def admin(small_system: LocalSystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_system.api_url, timeout=30, headers=ADMIN) as client:
        yield client


@pytest.fixture
def healthy(small_system: LocalSystem) -> Iterator[LocalSystem]:
    """Tests that stop processes leave every one running."""
    yield small_system
    for name in ("api", "thumbnailer", "hasher", "deduper"):
        if not small_system.service(name).is_running():
            small_system.start_service(name)


def _tenant_with_images(system: LocalSystem, db: str, n: int, seed: int) -> dict[str, Any]:
    """A new tenant with ``n`` different images, every stage done."""
    tenant = new_tenant(system, "bulk")
    with httpx.Client(
        base_url=system.api_url, timeout=30, headers=bearer(tenant["api_key"])
    ) as client:
        for i in range(n):
            body = encode(photo_like(64, 48, seed=seed + i), "JPEG")
            response = client.post("/v1/images", content=body)
            assert response.status_code == 201, response.text
    wait_for(
        lambda: _stages(db, tenant["tenant"]) == {"done": n * 3},
        timeout_s=180,
        what=f"{n} images of {tenant['tenant']} to be processed",
    )
    return tenant


def _stages(db: str, tenant: str, stage: str | None = None) -> dict[str, int]:
    rows = query(
        db,
        """SELECT s.status, count(*) AS n FROM image_stages AS s
             JOIN images AS i ON i.id = s.image_id JOIN tenants AS t ON t.id = i.tenant_id
            WHERE t.name = $1 AND ($2::text IS NULL OR s.stage = $2) GROUP BY s.status""",
        tenant,
        stage,
    )
    return {r["status"]: r["n"] for r in rows}


def _resets_since(db: str, tenant: str, stage: str, since: datetime) -> dict[str, int]:
    """Per image of the tenant: how often ``stage`` was made pending again since then (the
    event trigger records every change of status)."""
    rows = query(
        db,
        """SELECT i.id::text AS id, count(e.id) AS n FROM images AS i
             JOIN tenants AS t ON t.id = i.tenant_id
             LEFT JOIN image_events AS e ON e.image_id = i.id AND e.stage = $2
                  AND e.type = 'stage.pending' AND e.at >= $3
            WHERE t.name = $1 GROUP BY i.id""",
        tenant,
        stage,
        since,
    )
    return {r["id"]: r["n"] for r in rows}


def _start(admin: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = admin.post("/v1/admin/reprocess", json=body)
    assert response.status_code == 202, response.text
    run = response.json()
    assert response.headers["location"] == f"/v1/admin/reprocess/{run['id']}"
    return run  # type: ignore[no-any-return]


def _run(admin: httpx.Client, run_id: str) -> dict[str, Any]:
    response = admin.get(f"/v1/admin/reprocess/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _wait_state(admin: httpx.Client, run_id: str, state: str, timeout_s: float = 120) -> dict:
    return wait_for(
        lambda: (run := _run(admin, run_id))["state"] == state and run,
        timeout_s=timeout_s,
        what=f"run {run_id} to be {state}",
    )


def test_a_run_redrives_the_stage_for_every_image_of_its_tenant_only(
    small_system: LocalSystem, db: str, admin: httpx.Client
) -> None:
    n = 12
    tenant = _tenant_with_images(small_system, db, n, seed=100)["tenant"]
    other = _tenant_with_images(small_system, db, 3, seed=200)["tenant"]
    run = _start(admin, {"stages": ["thumbnails"], "tenant": tenant})
    assert (run["state"], run["total"], run["done"], run["tenant"]) == ("running", n, 0, tenant)
    since = datetime.fromisoformat(run["created_at"])

    finished = _wait_state(admin, run["id"], "finished")
    assert (finished["done"], finished["skipped"], finished["total"]) == (n, 0, n)
    assert finished["batches"] == n // BATCH + 1  # the last, short batch ends the run
    assert finished["finished_at"] is not None
    # Every image's thumbnails ran again, once; the other tenant's were left alone.
    assert _resets_since(db, tenant, "thumbnails", since) == {
        image_id: 1 for image_id in _resets_since(db, tenant, "thumbnails", since)
    }
    assert len(_resets_since(db, tenant, "thumbnails", since)) == n
    assert set(_resets_since(db, other, "thumbnails", since).values()) == {0}
    wait_for(
        lambda: _stages(db, tenant, "thumbnails") == {"done": n},
        what="the re-driven thumbnails to be done",
    )
    rerun = query(
        db,
        """SELECT count(*) AS n FROM image_stages AS s JOIN images AS i ON i.id = s.image_id
             JOIN tenants AS t ON t.id = i.tenant_id
            WHERE t.name = $1 AND s.stage = 'thumbnails' AND s.started_at >= $2""",
        tenant,
        since,
    )
    assert rerun == [{"n": n}]


def test_the_cli_starts_a_run_over_every_tenant_and_prints_its_progress(
    small_system: LocalSystem, db: str
) -> None:
    _tenant_with_images(small_system, db, 4, seed=300)
    [count] = query(db, "SELECT count(*) AS n FROM images")
    done = admin_cli(small_system, "reprocess", "--stage", "hashing", "--all-tenants")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["state"] == "running" and lines[0]["tenant"] is None
    assert lines[0]["stages"] == ["hashing"] and lines[0]["total"] == count["n"]
    last = lines[-1]
    assert (last["state"], last["done"], last["total"]) == ("finished", count["n"], count["n"])
    assert [line["done"] for line in lines] == sorted(line["done"] for line in lines)
    assert f"{count['n']} re-driven, 0 skipped" in done.stderr

    watched = admin_cli(small_system, "reprocess", "--watch", last["id"])
    assert watched.returncode == 0 and json.loads(watched.stdout) == last
    unknown = admin_cli(small_system, "reprocess", "--stage", "hashing", "--tenant", "nobody")
    assert unknown.returncode == 2 and "no tenant nobody" in unknown.stderr
    no_scope = admin_cli(small_system, "reprocess", "--stage", "hashing")
    assert no_scope.returncode == 2 and "--all-tenants" in no_scope.stderr


def test_a_run_pauses_under_backpressure_and_resumes_by_itself(
    healthy: LocalSystem, db: str, admin: httpx.Client
) -> None:
    n = 30
    tenant = _tenant_with_images(healthy, db, n, seed=400)["tenant"]
    healthy.stop_service("thumbnailer")  # its queue fills up and stays full
    run = _start(admin, {"stages": ["thumbnails"], "tenant": tenant})
    paused = _wait_state(admin, run["id"], "paused")
    assert PAUSE_DEPTH <= paused["done"] < n
    assert "thumbnails" in paused["reason"]
    [row] = query(db, "SELECT done, state FROM reprocess_runs WHERE id = $1::uuid", run["id"])
    assert row == {"done": paused["done"], "state": "paused"}

    healthy.start_service("thumbnailer")
    finished = _wait_state(admin, run["id"], "finished", timeout_s=180)
    assert (finished["done"], finished["total"], finished["reason"]) == (n, n, None)
    wait_for(
        lambda: _stages(db, tenant, "thumbnails") == {"done": n},
        timeout_s=120,
        what="the re-driven thumbnails to be done",
    )


def test_a_run_interrupted_by_an_api_restart_finishes_without_redoing_batches(
    healthy: LocalSystem, db: str, admin: httpx.Client
) -> None:
    n = 30
    tenant = _tenant_with_images(healthy, db, n, seed=500)["tenant"]
    healthy.stop_service("thumbnailer")  # so the run stops mid-way, paused
    run = _start(admin, {"stages": ["thumbnails"], "tenant": tenant})
    since = datetime.fromisoformat(run["created_at"])
    mid = _wait_state(admin, run["id"], "paused")
    wait_for(  # what was committed reached the broker before the API goes
        lambda: query(db, "SELECT count(*) AS n FROM outbox") == [{"n": 0}],
        what="the outbox to be relayed",
    )
    healthy.stop_service("api")
    [committed] = query(
        db, "SELECT done, position FROM reprocess_runs WHERE id = $1::uuid", run["id"]
    )
    assert 0 < committed["done"] == mid["done"] < n

    # The queue drains while no API runs; the API comes back and picks the run up.
    healthy.start_service("thumbnailer")
    wait_for(
        lambda: _stages(db, tenant, "thumbnails").get("done") == n,
        timeout_s=120,
        what="the jobs enqueued before the restart to be done",
    )
    healthy.start_service("api")
    finished = _wait_state(admin, run["id"], "finished", timeout_s=120)
    assert (finished["done"], finished["skipped"], finished["total"]) == (n, 0, n)
    # Each image was reset exactly once: the committed batches were not done again.
    resets = _resets_since(db, tenant, "thumbnails", since)
    assert len(resets) == n and set(resets.values()) == {1}
    wait_for(
        lambda: _stages(db, tenant, "thumbnails") == {"done": n},
        timeout_s=120,
        what="the re-driven thumbnails to be done",
    )


def test_a_stage_a_worker_is_running_is_skipped_and_counted(
    small_system: LocalSystem, db: str, admin: httpx.Client
) -> None:
    n = 3
    tenant = _tenant_with_images(small_system, db, n, seed=600)["tenant"]
    # As a worker holds a stage (mark_running); the row says so, and no worker touches it.
    [held] = query(
        db,
        """UPDATE image_stages SET status = 'running', started_at = now()
            WHERE stage = 'dedupe' AND image_id = (
                  SELECT i.id FROM images AS i JOIN tenants AS t ON t.id = i.tenant_id
                   WHERE t.name = $1 ORDER BY i.id LIMIT 1)
        RETURNING image_id::text AS id""",
        tenant,
    )
    run = _start(admin, {"stages": ["dedupe", "hashing"], "tenant": tenant})
    since = datetime.fromisoformat(run["created_at"])
    finished = _wait_state(admin, run["id"], "finished")
    assert (finished["done"], finished["skipped"], finished["total"]) == (n - 1, 1, n)
    # The held image was left alone, every stage of it: a run resets an image whole or not.
    assert _resets_since(db, tenant, "dedupe", since) == {
        image_id: 0 if image_id == held["id"] else 1
        for image_id in _resets_since(db, tenant, "dedupe", since)
    }
    assert _resets_since(db, tenant, "hashing", since)[held["id"]] == 0
    query(  # let the sweeper find nothing of this test later
        db,
        "UPDATE image_stages SET status = 'done' WHERE image_id = $1::uuid AND stage = 'dedupe'",
        held["id"],
    )


def test_admin_reprocess_needs_the_admin_token(
    small_system: LocalSystem, admin: httpx.Client
) -> None:
    body = {"stages": ["dedupe"], "all_tenants": True}
    with httpx.Client(base_url=small_system.api_url, timeout=30) as anonymous:
        assert anonymous.post("/v1/admin/reprocess", json=body).status_code == 401
        wrong = anonymous.post("/v1/admin/reprocess", json=body, headers=bearer("nope"))
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
        tenant_key = anonymous.get(
            f"/v1/admin/reprocess/{'0' * 8}-0000-0000-0000-{'0' * 12}",
            headers=small_system.auth_headers,
        )
        assert tenant_key.status_code == 401  # a tenant's API key is no admin token
    assert admin.get("/v1/admin/reprocess/not-a-run").json()["code"] == "reprocess-run-not-found"
    unknown = admin.post("/v1/admin/reprocess", json={"stages": ["dedupe"], "tenant": "nobody"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tenant-not-found")
    both = admin.post(
        "/v1/admin/reprocess", json={"stages": ["dedupe"], "tenant": "x", "all_tenants": True}
    )
    assert (both.status_code, both.json()["code"]) == (422, "invalid-request")
    assert admin.post("/v1/admin/reprocess", json={"stages": []}).status_code == 422
