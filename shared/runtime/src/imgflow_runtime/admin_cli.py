"""``imgflow-admin``: operator commands against PostgreSQL (no API needed).

    imgflow-admin dead-letters list [--all]
    imgflow-admin dead-letters replay ID [ID ...]
    imgflow-admin dead-letters replay --all
    imgflow-admin tenants create NAME        (prints the tenant's first API key, once)
    imgflow-admin keys create TENANT [--label TEXT]
    imgflow-admin keys list
    imgflow-admin keys revoke KEY_ID

Replayed jobs go through the outbox, which the API relays to the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

import asyncpg

from imgflow_contracts.settings import CommonSettings
from imgflow_runtime.db import dead_letters, tenants
from imgflow_runtime.db.pool import connect


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


def _print_issued(issued: tenants.IssuedKey) -> None:
    print(
        json.dumps({"tenant": issued.tenant.name, "key_id": str(issued.id), "api_key": issued.key})
    )
    print("the key is shown only now; store it safely", file=sys.stderr)


async def _tenants(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    async with conn.transaction():
        tenant = await tenants.create_tenant(conn, args.name)
        _print_issued(await tenants.issue_key(conn, tenant, label="first key"))
    return 0


async def _keys(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    if args.action == "create":
        tenant = await tenants.find_tenant(conn, args.tenant)
        _print_issued(await tenants.issue_key(conn, tenant, label=args.label))
        return 0
    if args.action == "revoke":
        if await tenants.revoke_key(conn, args.key_id):
            print(f"revoked {args.key_id}")
            return 0
        print(f"no live key has the id {args.key_id}", file=sys.stderr)
        return 1
    for key in await tenants.list_keys(conn):
        print(
            json.dumps(
                {
                    "key_id": str(key.id),
                    "tenant": key.tenant_name,
                    "prefix": key.prefix,
                    "label": key.label,
                    "created_at": key.created_at.isoformat(),
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                }
            )
        )
    return 0


async def _run(args: argparse.Namespace) -> int:
    conn = await connect(CommonSettings().database_url)
    try:
        if args.topic == "tenants":
            return await _tenants(conn, args)
        if args.topic == "keys":
            return await _keys(conn, args)
        if args.action == "list":
            return await _list(conn, args.all)
        return await _replay(conn, args.ids, args.all)
    except tenants.TenantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    tenant_topic = topics.add_parser("tenants", help="who owns images")
    tenant_actions = tenant_topic.add_subparsers(dest="action", required=True)
    creating = tenant_actions.add_parser("create", help="a new tenant and its first API key")
    creating.add_argument("name")
    key_topic = topics.add_parser("keys", help="API keys (stored hashed)")
    key_actions = key_topic.add_subparsers(dest="action", required=True)
    issuing = key_actions.add_parser("create", help="a new key for a tenant")
    issuing.add_argument("tenant")
    issuing.add_argument("--label")
    key_actions.add_parser("list", help="every key, without secrets, as JSON lines")
    revoking = key_actions.add_parser("revoke", help="a key stops working (within seconds)")
    revoking.add_argument("key_id", type=uuid.UUID)
    args = parser.parse_args(argv)
    if args.action == "replay" and not (args.ids or args.all):
        parser.error("give dead letter ids, or --all")
    sys.exit(asyncio.run(_run(args)))


if __name__ == "__main__":
    main()
