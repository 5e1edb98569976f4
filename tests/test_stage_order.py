"""Stages that read another's output wait for it (queues.AFTER): the hasher and the deduper
decode the thumbnailer's analysis copy, not the original again.

Against the session's real PostgreSQL, S3, broker and workers.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import httpx
from PIL import Image

from imgflow_contracts.keys import ANALYSIS_LONG_SIDE, analysis_key
from imgflow_contracts.queues import Stage
from imgflow_runtime.db import stages
from imgflow_runtime.db.pool import connect
from imgflow_runtime.db.sweeper import SweepPolicy, sweep
from imgflow_runtime.storage import ObjectStore
from tests.support import (
    encode,
    every_stage_finished,
    image_with_stages,
    photo_like,
    query,
    wait_for,
)

T = TypeVar("T")


def _on(database_url: str, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def go() -> T:
        conn = await connect(database_url)  # with the JSON codecs the outbox writes with
        try:
            return await fn(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_a_finished_thumbnail_stage_releases_only_the_stages_still_waiting(
    database_url: str,
) -> None:
    async def scenario(conn: asyncpg.Connection) -> dict[str, Any]:
        image_id, _ = await image_with_stages(
            conn,
            {Stage.THUMBNAILS: "done", Stage.HASHING: "pending", Stage.DEDUPE: "running"},
        )
        released = await stages.release_dependants(conn, image_id, Stage.THUMBNAILS)
        waited = await conn.fetchval(
            """SELECT now() - queued_at < interval '1 minute' FROM image_stages
                WHERE image_id = $1 AND stage = 'hashing'""",
            image_id,
        )
        nothing_after_hashing = await stages.release_dependants(conn, image_id, Stage.HASHING)
        await conn.execute("DELETE FROM images WHERE id = $1", image_id)
        after_delete = await stages.release_dependants(conn, image_id, Stage.THUMBNAILS)
        return {
            "released": released,
            "queue wait restarted": waited,
            "after hashing": nothing_after_hashing,
            "after delete": after_delete,
        }

    assert _on(database_url, scenario) == {
        "released": [Stage.HASHING],
        "queue wait restarted": True,
        "after hashing": [],
        "after delete": [],
    }


def test_marking_a_stage_done_releases_its_waiting_stages_in_the_same_statement(
    database_url: str,
) -> None:
    async def scenario(conn: asyncpg.Connection) -> dict[str, Any]:
        image_id, _ = await image_with_stages(
            conn,
            {Stage.THUMBNAILS: "running", Stage.HASHING: "pending", Stage.DEDUPE: "pending"},
        )
        released = await stages.mark_done(conn, image_id, Stage.THUMBNAILS)
        rows = await conn.fetch(
            """SELECT stage, status, now() - queued_at < interval '1 minute' AS requeued
                 FROM image_stages WHERE image_id = $1 ORDER BY stage""",
            image_id,
        )
        again = await stages.mark_done(conn, image_id, Stage.THUMBNAILS)  # a redelivery
        hashing = await stages.mark_done(conn, image_id, Stage.HASHING)
        await conn.execute("DELETE FROM images WHERE id = $1", image_id)
        gone = await stages.mark_done(conn, image_id, Stage.THUMBNAILS)
        return {
            "released": released,
            "rows": {r["stage"]: (r["status"], r["requeued"]) for r in rows},
            "again": again,
            "after hashing": hashing,
            "gone": gone,
        }

    assert _on(database_url, scenario) == {
        "released": [Stage.HASHING, Stage.DEDUPE],
        "rows": {
            "thumbnails": ("done", False),
            "hashing": ("pending", True),
            "dedupe": ("pending", True),
        },
        "again": [Stage.HASHING, Stage.DEDUPE],  # still pending: released again, as before
        "after hashing": [],
        "gone": None,
    }


def test_the_sweeper_leaves_stages_waiting_for_their_predecessor_alone(
    database_url: str,
) -> None:
    """Every stage below is past its deadline; only those not waiting are re-enqueued.
    Run in a transaction that is rolled back, so other tests' rows are left as they were."""

    async def scenario(conn: asyncpg.Connection) -> dict[str, list[str]]:
        tx = conn.transaction()
        await tx.start()
        try:
            waiting, _ = await image_with_stages(
                conn,
                {Stage.THUMBNAILS: "running", Stage.HASHING: "pending", Stage.DEDUPE: "pending"},
            )
            orphaned, _ = await image_with_stages(
                conn,
                {Stage.THUMBNAILS: "failed", Stage.HASHING: "pending", Stage.DEDUPE: "done"},
            )
            await sweep(conn, SweepPolicy(pending_after_s=60, running_after_s=60, max_sweeps=3))
            enqueued = {}
            for name, image_id in (("waiting", waiting), ("orphaned", orphaned)):
                rows = await conn.fetch(
                    "SELECT payload ->> 'stage' AS stage FROM outbox WHERE image_id = $1",
                    image_id,
                )
                enqueued[name] = sorted(r["stage"] for r in rows)
            return enqueued
        finally:
            await tx.rollback()

    assert _on(database_url, scenario) == {
        # the stuck thumbnail job is re-driven; the stages reading it keep waiting
        "waiting": ["thumbnails"],
        # its predecessor failed and nothing enqueued it: lost, so re-driven
        "orphaned": ["hashing"],
    }


def test_hashing_and_dedupe_start_after_the_thumbnails_and_read_their_copy(
    api: httpx.Client, store: ObjectStore, database_url: str
) -> None:
    data = encode(photo_like(1800, 1200, seed=77), "JPEG", quality=90)
    created = api.post("/v1/images", content=data)
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]

    image = wait_for(
        lambda: (
            (body := api.get(f"/v1/images/{image_id}").json())
            and every_stage_finished(body)
            and body
        ),
        what="every stage to finish",
    )
    assert {name: s["status"] for name, s in image["stages"].items()} == dict.fromkeys(
        ("thumbnails", "hashing", "dedupe"), "done"
    )
    rows = {
        r["stage"]: r
        for r in query(
            database_url,
            "SELECT stage, queued_at, started_at, finished_at FROM image_stages "
            "WHERE image_id = $1::uuid",
            image_id,
        )
    }
    thumbnails_done = rows["thumbnails"]["finished_at"]
    for stage in ("hashing", "dedupe"):
        assert rows[stage]["queued_at"] >= thumbnails_done
        assert rows[stage]["started_at"] >= thumbnails_done

    copy = store.get_bytes(analysis_key(UUID(image_id)))
    with Image.open(io.BytesIO(copy)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (ANALYSIS_LONG_SIDE, 341))
    # the original's facts, not the copy's
    assert (image["width"], image["height"]) == (1800, 1200)
    # not a rendition clients are offered
    assert [r["size"] for r in image["renditions"]] == [150, 300, 600]

    assert api.delete(f"/v1/images/{image_id}").status_code == 204
    assert not store.exists(analysis_key(UUID(image_id)))
