"""Webhook subscriptions of a tenant and their deliveries: validation and queries.

Deliveries themselves are written by the event triggers (migration 0008), in the same
transaction as the change they announce; webhook_dispatch.py sends them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

STAGE_STATUSES = ("pending", "running", "done", "failed")
EVENT_TYPES = frozenset(
    {"image.created", "image.ready", "image.failed", "image.deleted"}
    | {f"stage.{status}" for status in STAGE_STATUSES}
)
DEFAULT_EVENTS = ("image.ready", "image.failed")
MAX_WEBHOOKS_PER_TENANT = 25
MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"
_PATTERN = re.compile(r"^(\*|[a-z]+\.\*|[a-z]+\.[a-z]+)$")


class InvalidWebhook(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def check_events(events: Iterable[str] | None) -> list[str]:
    """The event patterns to subscribe to: known types, ``image.*``/``stage.*`` or ``*``."""
    chosen = list(dict.fromkeys(events)) if events is not None else list(DEFAULT_EVENTS)
    if not chosen:
        raise InvalidWebhook("unknown-webhook-event", "subscribe to at least one event")
    for pattern in chosen:
        known = pattern in EVENT_TYPES or (
            _PATTERN.match(pattern) is not None
            and pattern.endswith("*")
            and any(t.startswith(pattern[:-1]) for t in EVENT_TYPES)
        )
        if not known:
            raise InvalidWebhook(
                "unknown-webhook-event",
                f"unknown event {pattern!r}; known: {', '.join(sorted(EVENT_TYPES))}, "
                "image.*, stage.* and *",
            )
    return chosen


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhook("bad-webhook-url", f"the URL is longer than {MAX_URL_LENGTH}")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise InvalidWebhook("bad-webhook-url", f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhook("bad-webhook-url", "the URL must be absolute http:// or https://")
    if parts.username or parts.password:
        raise InvalidWebhook("bad-webhook-url", "the URL must not carry credentials")
    if port == 0:
        raise InvalidWebhook("bad-webhook-url", "the URL's port must not be 0")
    return url


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse a host that resolves to a loopback, private or link-local address (SSRF),
    unless the deployment allows it. Checked at registration and before every attempt, as
    DNS may change in between (a check-then-connect gap remains: use an egress proxy that
    enforces this where it matters)."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidWebhook("webhook-host-unresolvable", f"cannot resolve {host!r}") from exc
    if not infos or not all(_is_public(str(info[4][0])) for info in infos):
        raise InvalidWebhook(
            "webhook-host-not-allowed",
            f"{host!r} resolves to a private, loopback or link-local address",
        )


@dataclass(frozen=True)
class Webhook:
    id: UUID
    url: str
    events: list[str]
    created_at: Any


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def create(
    conn: asyncpg.Connection, tenant_id: UUID, url: str, events: list[str]
) -> tuple[Webhook, str] | None:
    """Register a webhook; None if the tenant has as many as it may have."""
    secret = new_secret()
    async with conn.transaction():
        # one tenant's registrations in turn, so the limit holds under concurrency
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::uuid::text, 8))", tenant_id
        )
        count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE tenant_id = $1", tenant_id)
        if count >= MAX_WEBHOOKS_PER_TENANT:
            return None
        row = await conn.fetchrow(
            """INSERT INTO webhooks (id, tenant_id, url, events, secret) VALUES ($1, $2, $3, $4, $5)
               RETURNING id, url, events, created_at""",
            uuid.uuid4(),
            tenant_id,
            url,
            events,
            secret,
        )
    return Webhook(**dict(row)), secret


async def list_all(conn: asyncpg.Connection, tenant_id: UUID) -> list[Webhook]:
    rows = await conn.fetch(
        """SELECT id, url, events, created_at FROM webhooks WHERE tenant_id = $1
            ORDER BY created_at, id""",
        tenant_id,
    )
    return [Webhook(**dict(r)) for r in rows]


async def get(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> Webhook | None:
    row = await conn.fetchrow(
        "SELECT id, url, events, created_at FROM webhooks WHERE id = $1 AND tenant_id = $2",
        webhook_id,
        tenant_id,
    )
    return None if row is None else Webhook(**dict(row))


async def delete(conn: asyncpg.Connection, tenant_id: UUID, webhook_id: UUID) -> bool:
    """Remove a webhook and its deliveries (pending ones are never sent)."""
    done = await conn.execute(
        "DELETE FROM webhooks WHERE id = $1 AND tenant_id = $2", webhook_id, tenant_id
    )
    return done != "DELETE 0"


async def deliveries(
    conn: asyncpg.Connection, webhook_id: UUID, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, event_id, type, payload, status, attempts, next_attempt_at,
                  last_status_code, last_error, created_at, finished_at
             FROM webhook_deliveries WHERE webhook_id = $1
            ORDER BY created_at DESC, id LIMIT $2""",
        webhook_id,
        limit,
    )
    return [dict(r) for r in rows]
