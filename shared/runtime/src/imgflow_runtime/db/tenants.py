"""Tenants and their API keys: issued once in clear, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

KEY_PREFIX = "imgf_"
# What is kept in clear to tell keys apart: the marker and 6 random characters.
SHOWN_PREFIX_LENGTH = len(KEY_PREFIX) + 6
DEFAULT_TENANT_ID = UUID(int=0)
DEFAULT_TENANT_NAME = "default"
_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# A bootstrap key is chosen by a person: insist on enough of it to be worth guarding.
MIN_KEY_LENGTH = 24


class TenantError(ValueError):
    """A tenant or key request that cannot be met (bad name, unknown tenant, weak key)."""


@dataclass(frozen=True)
class Tenant:
    id: UUID
    name: str


@dataclass(frozen=True)
class IssuedKey:
    id: UUID
    tenant: Tenant
    key: str  # shown once; only its hash is stored


@dataclass(frozen=True)
class KeyRecord:
    id: UUID
    tenant_name: str
    prefix: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check_tenant_name(name: str) -> str:
    if not _TENANT_NAME.match(name):
        raise TenantError(
            f"tenant name {name!r}: use 1-63 lower-case letters, digits, '.', '_' or '-'"
        )
    return name


async def tenant_for_key(conn: asyncpg.Connection, key: str) -> Tenant | None:
    row = await conn.fetchrow(
        """SELECT t.id, t.name FROM api_keys AS k JOIN tenants AS t ON t.id = k.tenant_id
            WHERE k.key_sha256 = $1 AND k.revoked_at IS NULL""",
        key_digest(key),
    )
    return None if row is None else Tenant(row["id"], row["name"])


async def create_tenant(conn: asyncpg.Connection, name: str) -> Tenant:
    check_tenant_name(name)
    row = await conn.fetchrow(
        """INSERT INTO tenants (id, name) VALUES ($1, $2)
           ON CONFLICT (name) DO NOTHING RETURNING id""",
        uuid.uuid4(),
        name,
    )
    if row is None:
        raise TenantError(f"tenant {name!r} exists already")
    return Tenant(row["id"], name)


async def find_tenant(conn: asyncpg.Connection, name: str) -> Tenant:
    row = await conn.fetchrow("SELECT id, name FROM tenants WHERE name = $1", name)
    if row is None:
        raise TenantError(f"no tenant is named {name!r}")
    return Tenant(row["id"], row["name"])


async def issue_key(
    conn: asyncpg.Connection, tenant: Tenant, *, label: str | None = None, key: str | None = None
) -> IssuedKey:
    """Store a new key for ``tenant`` (a random one unless ``key`` is given)."""
    key = key if key is not None else new_key()
    if len(key) < MIN_KEY_LENGTH:
        raise TenantError(f"an API key needs at least {MIN_KEY_LENGTH} characters")
    key_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO api_keys (id, tenant_id, key_sha256, prefix, label)
           VALUES ($1, $2, $3, $4, $5)""",
        key_id,
        tenant.id,
        key_digest(key),
        key[:SHOWN_PREFIX_LENGTH],
        label,
    )
    return IssuedKey(key_id, tenant, key)


async def ensure_key(conn: asyncpg.Connection, tenant_name: str, key: str, label: str) -> Tenant:
    """Make ``key`` a live key of ``tenant_name``, creating the tenant if needed.

    Idempotent, for a key set in the environment (the development key of `make run`);
    a revoked key stays revoked.
    """
    check_tenant_name(tenant_name)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            uuid.uuid4(),
            tenant_name,
        )
        tenant = await find_tenant(conn, tenant_name)
        owner = await conn.fetchval(
            "SELECT tenant_id FROM api_keys WHERE key_sha256 = $1", key_digest(key)
        )
        if owner is None:
            await issue_key(conn, tenant, label=label, key=key)
        elif owner != tenant.id:
            raise TenantError(f"that key belongs to another tenant than {tenant_name!r}")
    return tenant


async def revoke_key(conn: asyncpg.Connection, key_id: UUID) -> bool:
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id
    )
    return status.endswith(" 1")


async def list_keys(conn: asyncpg.Connection) -> list[KeyRecord]:
    rows = await conn.fetch(
        """SELECT k.id, t.name AS tenant_name, k.prefix, k.label, k.created_at, k.revoked_at
             FROM api_keys AS k JOIN tenants AS t ON t.id = k.tenant_id
            ORDER BY t.name, k.created_at"""
    )
    return [KeyRecord(**dict(r)) for r in rows]
