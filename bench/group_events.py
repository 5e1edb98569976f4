"""Group events per upload, and how near the stored groups are to the rule's.

Uploads N of the e2e suite's generated photos at its small size (look-alikes to the
deduper: most fall in one large component of pairs) from 8 clients into a fresh system,
waits for every stage, then counts the duplicate-group events and compares the stored
groups with the average-linkage rule applied to every stored pair from scratch (pairs
of images grouped together). Not a suite of `make bench`: a check of group upkeep.

    python -m bench.group_events 600
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.images import SMALL, ensure_images
from bench.uploads import upload_all
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.grouping import Pair, Rule, group


def _together(groups: list[set] | tuple[frozenset, ...]) -> set[tuple]:  # type: ignore[type-arg]
    return {(a, b) for g in groups for a in g for b in g if a < b}


async def _drive(system: LocalSystem, count: int) -> dict[str, object]:
    started = time.perf_counter()
    uploads = await upload_all(
        system.api_url, system.auth_headers, ensure_images(count, SMALL), 8, started
    )
    ids = [u.image_id for u in uploads if u.image_id]
    conn = await asyncpg.connect(system.env["IMGFLOW_DATABASE_URL"])
    try:
        while True:  # polled: a minute or two, once
            left = await conn.fetchval(
                """SELECT count(*) FROM image_stages WHERE image_id = ANY($1::uuid[])
                      AND status NOT IN ('done', 'failed')""",
                ids,
            )
            if not left:
                break
            await asyncio.sleep(1)
        await asyncio.sleep(3)  # the API's loop regroups what deletes flagged
        events = dict(
            await conn.fetch(
                "SELECT type, count(*) FROM image_events WHERE group_id IS NOT NULL GROUP BY 1"
            )
        )
        rows = await conn.fetch("SELECT image_a, image_b, score FROM duplicate_pairs")
        rule = group([Pair(r[0], r[1], float(r[2])) for r in rows], Rule.AVERAGE_LINK).groups
        stored = [
            set(r[0])
            for r in await conn.fetch(
                "SELECT array_agg(image_id) FROM duplicate_group_members GROUP BY group_id"
            )
        ]
    finally:
        await conn.close()
    mine, theirs = _together(stored), _together(rule)
    return {
        "uploads": len(ids),
        "events": events,
        "events_per_upload": round(sum(events.values()) / len(ids), 3),
        "stored_groups": len(stored),
        "rule_groups": len(rule),
        "stored_in_rule": round(len(mine & theirs) / max(1, len(mine)), 3),
        "rule_in_stored": round(len(mine & theirs) / max(1, len(theirs)), 3),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    folder = Path(tempfile.mkdtemp(prefix="imgflow-group-events-"))
    try:
        with LocalSystem.on_free_ports(folder) as system:
            print(json.dumps(asyncio.run(_drive(system, count)), indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
