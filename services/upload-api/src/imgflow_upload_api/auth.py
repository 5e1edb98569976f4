"""Who is calling: `Authorization: Bearer <API key>` resolved to a tenant.

Every public route depends on :func:`authenticate`; whatever it reads, lists or deletes
is then scoped to ``caller.tenant_id``, and another tenant's id answers 404 as if it did
not exist (a 403 would confirm that it does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imgflow_runtime.db import tenants
from imgflow_upload_api.problems import Problem

_bearer = HTTPBearer(auto_error=False, description="An imgflow API key of your tenant.")


@dataclass(frozen=True)
class Caller:
    tenant_id: UUID
    tenant_name: str


class KeyCache:
    """Recently resolved keys, so most requests skip the lookup query.

    A revocation is announced by PostgreSQL (migration 0009) and the event hub calls
    :meth:`forget` at once; ``ttl_s`` only bounds how long a revocation that went unheard
    (the LISTEN connection down) is missed. Unknown keys are not cached, so a new key
    works at once.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Caller]] = {}
        # Bumped by every forget: a lookup that began before one must not cache its
        # answer, which the revocation may have made stale.
        self.generation = 0

    def get(self, digest: bytes) -> Caller | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: bytes, caller: Caller, generation: int) -> None:
        """Cache a lookup that started at ``generation`` (read before the query)."""
        if self.ttl_s <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare, and simpler than LRU bookkeeping on every hit
        self._entries[digest] = (time.monotonic() + self.ttl_s, caller)

    def forget(self, digest: bytes | None) -> None:
        """Drop a revoked key; None drops every key."""
        self.generation += 1
        if digest is None:
            self._entries.clear()
        else:
            self._entries.pop(digest, None)


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Unauthorized",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="imgflow"'},
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send your API key as `Authorization: Bearer <key>`")
    key = credentials.credentials
    resources = request.app.state.resources
    digest = tenants.key_digest(key)
    cached = resources.key_cache.get(digest)
    if cached is not None:
        return cached
    generation = resources.key_cache.generation
    async with resources.pool.acquire() as conn:
        tenant = await tenants.tenant_for_key(conn, key)
    if tenant is None:
        raise _unauthorized("the API key is unknown or revoked")
    caller = Caller(tenant.id, tenant.name)
    resources.key_cache.put(digest, caller, generation)
    return caller


CurrentCaller = Annotated[Caller, Depends(authenticate)]
