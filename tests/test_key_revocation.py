"""A revoked API key stops working in every API process within a second, although each
process caches resolved keys (IMGFLOW_API_KEY_CACHE_S, 10 s): PostgreSQL announces the
revocation and each process's LISTEN connection drops the key from its cache."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import httpx

from imgflow_localstack.ports import free_port
from imgflow_localstack.processes import ServiceProcess
from imgflow_localstack.services import API, api_url, service_specs
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.tenants import key_digest
from imgflow_upload_api.settings import ApiSettings
from tests.support import bearer, new_tenant, query

WITHIN_S = 1.0


@contextlib.contextmanager
def second_api(system: LocalSystem) -> Iterator[str]:
    """Another API process on the same system, as a second replica would be."""
    port = free_port()
    [spec] = [s for s in service_specs(port) if s.name == API]
    process = ServiceProcess(spec, {**os.environ, **system.env}, system.logs_dir / "api-2")
    process.start()
    try:
        yield api_url(port)
    finally:
        process.stop()


def test_a_revoked_key_stops_working_in_every_api_process_within_a_second(
    system: LocalSystem,
) -> None:
    assert ApiSettings().api_key_cache_s >= 10 * WITHIN_S, "the cache alone would pass"
    tenant = new_tenant(system, "revoked")
    headers = bearer(tenant["api_key"])
    with second_api(system) as other:
        apis = [system.api_url, other]
        for url in apis:  # each process resolves the key now and caches it
            assert httpx.get(f"{url}/v1/images", headers=headers).status_code == 200
            assert httpx.get(f"{url}/v1/images", headers=headers).status_code == 200

        query(
            system.settings().database_url,
            "UPDATE api_keys SET revoked_at = now() WHERE key_sha256 = $1",
            key_digest(tenant["api_key"]),
        )
        revoked_at = time.monotonic()
        refused_after: dict[str, float] = {}
        while len(refused_after) < len(apis) and time.monotonic() - revoked_at < 5:
            for url in set(apis) - set(refused_after):
                if httpx.get(f"{url}/v1/images", headers=headers).status_code == 401:
                    refused_after[url] = time.monotonic() - revoked_at
        still = set(apis) - set(refused_after)
        assert not still, f"still accepted 5 s after the revocation by {still}"
        assert max(refused_after.values()) < WITHIN_S, refused_after
