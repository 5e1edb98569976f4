"""A revoked API key stops working in every API process before its cache could expire,
although each process caches resolved keys (IMGFLOW_API_KEY_CACHE_S, 10 s): PostgreSQL
announces the revocation and each process's LISTEN connection drops the key from its
cache. (How soon is a timing, not a bound: it is not asserted here.)"""

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


def test_a_revoked_key_stops_working_in_every_api_process_before_its_cache_expires(
    system: LocalSystem,
) -> None:
    cache_s = ApiSettings().api_key_cache_s
    tenant = new_tenant(system, "revoked")
    headers = bearer(tenant["api_key"])
    with second_api(system) as other:
        apis = [system.api_url, other]
        # No entry cached from here on can expire before this moment plus the cache's life.
        cached_from = time.monotonic()
        for url in apis:  # each process resolves the key now and caches it
            assert httpx.get(f"{url}/v1/images", headers=headers).status_code == 200
            assert httpx.get(f"{url}/v1/images", headers=headers).status_code == 200

        query(
            system.settings().database_url,
            "UPDATE api_keys SET revoked_at = now() WHERE key_sha256 = $1",
            key_digest(tenant["api_key"]),
        )
        accepting = set(apis)
        while accepting and time.monotonic() < cached_from + cache_s:
            for url in list(accepting):
                if httpx.get(f"{url}/v1/images", headers=headers).status_code == 401:
                    accepting.discard(url)
        assert not accepting, f"only the cache's expiry could refuse it in {accepting}"
