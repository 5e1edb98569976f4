"""``imgflow-admin``: operator commands against PostgreSQL (no API needed).

    imgflow-admin dead-letters list [--all]
    imgflow-admin dead-letters replay ID [ID ...]
    imgflow-admin dead-letters replay --all

Replayed jobs go through the outbox, which the API relays to the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import asyncpg

from imgflow_contracts.db import dead_letters
from imgflow_contracts.db.pool import connect
from imgflow_contracts.settings import CommonSettings


async def _list(conn: asyncpg.Connection, include_resolved: bool) -> int:
    found = await dead_letters.list_dead_letters(
        conn, include_resolved=include_resolved, limit=10_000
    )
    for d in found:
        print(
            json.dumps(
                {
                    "id": d.id,
                    "image_id": str(d.image_id) if d.image_id else None,
                    "stage": d.stage,
                    "reason": d.reason,
                    "attempts": d.attempts,
                    "failed_at": d.failed_at.isoformat(),
                    "resolved_at": d.resolved_at.isoformat() if d.resolved_at else None,
                    "resolution": d.resolution,
                }
            )
        )
    print(f"{len(found)} dead letter(s)", file=sys.stderr)
    return 0


async def _replay(conn: asyncpg.Connection, ids: list[int], replay_all: bool) -> int:
    if replay_all:
        ids = [
            d.id
            for d in await dead_letters.list_dead_letters(conn, limit=10_000)
            if d.image_id is not None
        ]
    failures = 0
    for dead_letter_id in ids:
        try:
            await dead_letters.replay(conn, dead_letter_id)
            print(f"replayed {dead_letter_id}")
        except dead_letters.NotReplayable as exc:
            print(f"skipped {dead_letter_id}: {exc}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


async def _run(args: argparse.Namespace) -> int:
    conn = await connect(CommonSettings().database_url)
    try:
        if args.action == "list":
            return await _list(conn, args.all)
        return await _replay(conn, args.ids, args.all)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="imgflow-admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    topics = parser.add_subparsers(dest="topic", required=True)
    letters = topics.add_parser("dead-letters", help="jobs given up on")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="open dead letters as JSON lines")
    listing.add_argument("--all", action="store_true", help="include resolved ones")
    replaying = actions.add_parser("replay", help="enqueue dead letters again")
    replaying.add_argument("ids", nargs="*", type=int)
    replaying.add_argument("--all", action="store_true", help="every open dead letter")
    args = parser.parse_args(argv)
    if args.action == "replay" and not (args.ids or args.all):
        parser.error("give dead letter ids, or --all")
    sys.exit(asyncio.run(_run(args)))


if __name__ == "__main__":
    main()
