"""``imgflow-admin``: operator commands against PostgreSQL (no API needed).

    imgflow-admin dead-letters list [--all]
    imgflow-admin dead-letters replay ID [ID ...]
    imgflow-admin dead-letters replay --all
    imgflow-admin tenants create NAME        (prints the tenant's first API key, once)
    imgflow-admin keys create TENANT [--label TEXT]
    imgflow-admin keys list
    imgflow-admin keys revoke KEY_ID
    imgflow-admin reprocess --stage STAGE [--stage ...] (--tenant NAME | --all-tenants)
                            [--batch-size N] [--no-wait]
    imgflow-admin reprocess --watch RUN_ID
    imgflow-admin limits show TENANT
    imgflow-admin limits set TENANT [--weight N] [--upload-rate-per-s R] [--upload-burst N]
                            [--upload-concurrency N] [--max-queued-jobs N]
                            [--max-images N] [--max-bytes N] [--clear NAME ...]

Replayed jobs go through the outbox, which the API relays to the broker.

A reprocess run is a row the API's replicas drive, a batch at a time, pausing under
backpressure (the outbox is relayed only by the API, so a run needs one running). This
command starts it and prints its progress as JSON lines until it finishes (exit 0) or
fails (exit 1); interrupting it leaves the run going. --watch follows a run started before.

Limits (docs/operating/scheduling.md): a limit not set for a tenant is the deployment's
default (IMGFLOW_TENANT_*); ``--clear NAME`` puts one back to it. The API applies a change
within IMGFLOW_TENANT_LIMITS_CACHE_S. ``show`` prints what is set, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

import asyncpg

from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import CommonSettings
from imgflow_runtime.db import dead_letters, reprocess_runs, tenant_limits, tenants
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


# The progress is a row: read every second, printed when it changed.
WATCH_INTERVAL_S = 1.0


async def _reprocess(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    if args.watch is not None:
        run = await reprocess_runs.get_run(conn, args.watch)
        if run is None:
            print(f"error: no reprocess run {args.watch}", file=sys.stderr)
            return 2
    else:
        try:
            run = await reprocess_runs.create_run(
                conn, args.tenant, [Stage(s) for s in args.stage], args.batch_size
            )
        except reprocess_runs.UnknownTenant as exc:
            print(f"error: no tenant {exc}", file=sys.stderr)
            return 2
    shown = run.as_json()
    print(json.dumps(shown), flush=True)
    if args.no_wait:
        return 0
    while run.state not in ("finished", "failed"):
        await asyncio.sleep(WATCH_INTERVAL_S)
        found = await reprocess_runs.get_run(conn, run.id)
        if found is None:
            print(f"error: reprocess run {run.id} was deleted", file=sys.stderr)
            return 2
        run = found
        if run.as_json() != shown:
            shown = run.as_json()
            print(json.dumps(shown), flush=True)
    print(
        f"reprocess run {run.id} {run.state}: {run.done} re-driven, {run.skipped} skipped",
        file=sys.stderr,
    )
    return 0 if run.state == "finished" else 1


async def _limits(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    tenant = await tenant_limits.tenant_id(conn, args.tenant)
    if args.action == "set":
        changes = {
            name: getattr(args, name)
            for name in tenant_limits.LIMIT_NAMES
            if getattr(args, name) is not None
        }
        try:
            limits = await tenant_limits.set_limits(conn, tenant, changes, args.clear or [])
        except (ValueError, asyncpg.CheckViolationError, asyncpg.DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        limits = await tenant_limits.get_limits(conn, tenant)
    print(json.dumps({"tenant": args.tenant, **limits.as_json()}))
    return 0


async def _run(args: argparse.Namespace) -> int:
    conn = await connect(CommonSettings().database_url)
    try:
        if args.topic == "tenants":
            return await _tenants(conn, args)
        if args.topic == "keys":
            return await _keys(conn, args)
        if args.topic == "reprocess":
            return await _reprocess(conn, args)
        if args.topic == "limits":
            return await _limits(conn, args)
        if args.action == "list":
            return await _list(conn, args.all)
        return await _replay(conn, args.ids, args.all)
    except tenants.TenantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await conn.close()


def _limits_parser(topics: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    limit_topic = topics.add_parser("limits", help="per-tenant limits and quotas")
    limit_actions = limit_topic.add_subparsers(dest="action", required=True)
    limit_actions.add_parser("show", help="what is set for a tenant").add_argument("tenant")
    setting = limit_actions.add_parser("set", help="set limits (the others keep theirs)")
    setting.add_argument("tenant")
    setting.add_argument("--weight", type=int, help="share of the workers (1-1000)")
    setting.add_argument("--upload-rate-per-s", type=float, help="uploads a second")
    setting.add_argument("--upload-burst", type=int, help="uploads at once above the rate")
    setting.add_argument("--upload-concurrency", type=int, help="uploads in progress at once")
    setting.add_argument("--max-queued-jobs", type=int, help="jobs waiting, at most")
    setting.add_argument("--max-images", type=int, help="images stored, at most")
    setting.add_argument("--max-bytes", type=int, help="bytes stored, at most")
    setting.add_argument(
        "--clear",
        action="append",
        choices=tenant_limits.LIMIT_NAMES,
        help="back to the deployment's default (repeatable)",
    )


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
    reprocess = topics.add_parser(
        "reprocess", help="re-drive stages for every image of a tenant, or of all"
    )
    reprocess.set_defaults(action="reprocess")
    reprocess.add_argument(
        "--stage", action="append", choices=[s.value for s in Stage], help="repeatable"
    )
    scope = reprocess.add_mutually_exclusive_group()
    scope.add_argument("--tenant", help="only this tenant's images")
    scope.add_argument("--all-tenants", action="store_true", help="every tenant's images")
    scope.add_argument("--watch", type=uuid.UUID, metavar="RUN_ID", help="follow a run")
    reprocess.add_argument(
        "--batch-size", type=int, default=reprocess_runs.DEFAULT_BATCH_SIZE, help="images a batch"
    )
    reprocess.add_argument("--no-wait", action="store_true", help="print the run and return")
    _limits_parser(topics)
    args = parser.parse_args(argv)
    if args.action == "replay" and not (args.ids or args.all):
        parser.error("give dead letter ids, or --all")
    if args.action == "reprocess" and args.watch is None:
        if not (args.tenant or args.all_tenants):
            parser.error("give --tenant NAME or --all-tenants")
        if not args.stage:
            parser.error("give at least one --stage")
        if args.batch_size < 1:
            parser.error("--batch-size must be at least 1")
    sys.exit(asyncio.run(_run(args)))


if __name__ == "__main__":
    main()
