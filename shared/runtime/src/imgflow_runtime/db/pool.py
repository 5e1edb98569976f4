"""One asyncpg pool per process."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns in and out as Python objects, so callers never hand-encode JSON.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool's (scripts and the CLI)."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset query (an open transaction is still rolled back)."""


async def create_pool(
    database_url: str, *, max_size: int = 10, reset_session: bool = True
) -> asyncpg.Pool:
    """``reset_session=False`` skips asyncpg's reset query on every release (advisory
    unlock, CLOSE ALL, UNLISTEN, RESET ALL: a round trip each time), for callers whose
    pooled connections never hold session state (SET, session locks, LISTEN, cursors)."""
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=None if reset_session else _keep_session,
        command_timeout=30,
    )
