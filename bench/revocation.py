"""How soon a revoked API key is refused by every API process (issue 25: the timing that
tests/test_key_revocation.py used to assert, which asserts only the bound now).

Two API processes share one PostgreSQL, as two replicas would. Each round issues a key,
has both processes resolve and cache it, revokes it in PostgreSQL and polls both until
each answers 401. PostgreSQL's NOTIFY drops the key from every process's cache; without
it, the cache (IMGFLOW_API_KEY_CACHE_S) would keep it working until the entry expired.
The baseline is that cache bound: the ratio says how many times sooner the revocation
takes effect than the cache alone would allow.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from bench.results import Measurement, Suite, Table
from bench.stats import percentile
from imgflow_localstack.ports import StackPorts, free_port
from imgflow_localstack.services import API, api_url, service_specs
from imgflow_localstack.system import LocalSystem
from imgflow_runtime.db.pool import connect
from imgflow_runtime.db.tenants import create_tenant, issue_key
from imgflow_upload_api.settings import ApiSettings

ROUNDS, QUICK_ROUNDS = 20, 3
SECOND_API = "api-2"
CACHE_BOUND = "cache bound (IMGFLOW_API_KEY_CACHE_S)"


def run(quick: bool = False) -> Suite:
    rounds = QUICK_ROUNDS if quick else ROUNDS
    cache_s = ApiSettings().api_key_cache_s
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-bench-revocation-"))
    try:
        api_port, second_port = free_port(), free_port()
        [first] = [s for s in service_specs(api_port) if s.name == API]
        [second] = [s for s in service_specs(second_port) if s.name == API]
        specs = [first, replace(second, name=SECOND_API)]
        with LocalSystem(data_dir, StackPorts.free(), api_port, specs=specs) as system:
            urls = [system.api_url, api_url(second_port)]
            database_url = system.stack.database_url
            times = [asyncio.run(_one_round(database_url, urls, i)) for i in range(rounds)]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return to_suite(times, cache_s)


def to_suite(times: list[float], cache_s: float) -> Suite:
    """``times``: per round, seconds from the revoking commit until both refused."""
    p50, worst = percentile(times, 50), max(times)
    measurements = [
        Measurement(CACHE_BOUND, cache_s, "s"),
        Measurement("revoked key refused by every API process, p50", p50, "s", CACHE_BOUND),
        Measurement("revoked key refused by every API process, worst", worst, "s", CACHE_BOUND),
    ]
    table = Table(
        "Per round: seconds until both API processes refused the revoked key",
        ["round", "seconds"],
        [[i + 1, round(t, 4)] for i, t in enumerate(times)],
    )
    notes = [
        f"{len(times)} rounds, 2 API processes on one PostgreSQL; timed from the revoking "
        "UPDATE's commit to the second process's first 401 (polling both, back to back).",
        f"The tests assert only the bound: refused before the cache ({cache_s:g} s) could expire.",
    ]
    return Suite("API-key revocation propagation", measurements, notes, [table])


async def _one_round(database_url: str, urls: list[str], number: int) -> float:
    conn = await connect(database_url)
    try:
        tenant = await create_tenant(conn, f"bench-revocation-{number}-{time.time_ns()}")
        issued = await issue_key(conn, tenant, label="bench")
        headers = {"Authorization": f"Bearer {issued.key}"}
        async with httpx.AsyncClient(timeout=30, headers=headers, trust_env=False) as client:
            for url in urls:  # resolved and cached in each process
                for _ in range(2):
                    response = await client.get(f"{url}/v1/images")
                    response.raise_for_status()
            await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", issued.id)
            revoked_at = time.perf_counter()
            accepting = set(urls)
            while accepting:
                for url in list(accepting):
                    if (await client.get(f"{url}/v1/images")).status_code == 401:
                        accepting.discard(url)
            return time.perf_counter() - revoked_at
    finally:
        await conn.close()
