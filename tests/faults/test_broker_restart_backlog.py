"""Fair scheduling keeps the backlog in PostgreSQL: a broker restart that loses its data
(a Redis without persistence, a failover to an empty replica) loses only the few jobs the
broker held, which the sweeper re-drives; the backlog waiting in the outbox is relayed
afterwards, every job once (issue 30)."""

from __future__ import annotations

import shutil

import httpx
import redis

from imgflow_contracts.settings import CommonSettings
from imgflow_localstack.system import LocalSystem
from tests.faults.support import wait_ready
from tests.support import bearer, encode, new_tenant, photo_like, query, wait_for

WORKERS = ("thumbnailer", "hasher", "deduper")
# What the broker holds of a queue before the rest waits in the outbox (the fault
# system keeps the default).
TARGET = CommonSettings.model_fields["outbox_broker_target_depth"].default


def _upload(system: LocalSystem, api_key: str, seeds: range) -> list[str]:
    with httpx.Client(base_url=system.api_url, timeout=30, headers=bearer(api_key)) as client:
        ids = []
        for seed in seeds:
            body = encode(photo_like(160, 120, seed=seed), "JPEG")
            response = client.post("/v1/images", content=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids


def test_the_backlog_in_postgresql_survives_a_broker_restart(
    healthy: LocalSystem, fault_db: str
) -> None:
    system = healthy
    for name in WORKERS:
        system.stop_service(name)
    big, small = new_tenant(system, "big"), new_tenant(system, "small")
    ids = _upload(system, big["api_key"], range(2000, 2012))
    ids += _upload(system, small["api_key"], range(2100, 2103))
    # The broker holds its target depth of thumbnail jobs, and up to as many again that
    # the express lane put ahead (tenants with little waiting); the rest wait in the outbox.
    broker = redis.Redis.from_url(system.settings().broker_url)
    try:
        backlog = wait_for(
            lambda: (
                (rows := query(fault_db, "SELECT image_id::text AS id FROM outbox"))
                and len(rows) + broker.llen("thumbnails") == len(ids)
                and {r["id"] for r in rows}
            ),
            what="the backlog in the outbox",
        )
    finally:
        broker.close()
    in_broker = set(ids) - backlog
    assert TARGET <= len(in_broker) <= 2 * TARGET

    system.stack.valkey.stop()
    shutil.rmtree(system.stack.valkey.data_dir)  # its append-only file too: it comes back empty
    system.stack.valkey.start()
    for name in WORKERS:
        system.start_service(name)

    for tenant, mine in ((big, ids[:12]), (small, ids[12:])):
        with httpx.Client(
            base_url=system.api_url, timeout=30, headers=bearer(tenant["api_key"])
        ) as client:
            for image_id in mine:
                wait_ready(client, image_id, timeout_s=240)
    assert query(fault_db, "SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    stages = query(
        fault_db,
        """SELECT image_id::text AS id, attempts, sweeps FROM image_stages
            WHERE stage = 'thumbnails' AND image_id = ANY($1::uuid[])""",
        ids,
    )
    # Relayed from PostgreSQL after the restart: run once, never re-driven.
    assert {(r["attempts"], r["sweeps"]) for r in stages if r["id"] in backlog} == {(1, 0)}
    # Lost with the broker: re-driven once by the sweeper, then run once.
    assert {(r["attempts"], r["sweeps"]) for r in stages if r["id"] in in_broker} == {(1, 1)}
    assert query(
        fault_db, "SELECT count(*) AS n FROM dead_letters WHERE image_id = ANY($1::uuid[])", ids
    ) == [{"n": 0}]
