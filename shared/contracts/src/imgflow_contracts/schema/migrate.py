"""Apply the SQL migrations in ``migrations/`` once each, in order, under an advisory lock.

Safe to run from every replica at start: the lock serialises them and applied versions
are recorded in ``schema_migrations``. Run by hand with ``imgflow-migrate``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from importlib import resources

import asyncpg

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process that migrates.
_ADVISORY_LOCK_ID = 0x1F_6F_77_00


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs sorted by version; the version is the file name's stem."""
    folder = resources.files("imgflow_contracts.schema") / "migrations"
    found = [
        (entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations on ``conn``; returns the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied: list[str] = []
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", version)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_ID)


async def _run(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def run_migrations(database_url: str) -> list[str]:
    """Synchronous entry point for scripts and the local stack."""
    return asyncio.run(_run(database_url))


def main() -> None:
    from imgflow_contracts.settings import CommonSettings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    applied = run_migrations(CommonSettings().database_url)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")
    sys.exit(0)


if __name__ == "__main__":
    main()
