"""One tenant state per tenant and process, however its first requests interleave.

Two requests reading a tenant's limits at once once made two states: the second replaced
the first, whose upload in progress was then never shown by GET /v1/usage (a CI failure
of test_tenant_limits) and whose token bucket was lost.
"""

from __future__ import annotations

import asyncio

from imgflow_runtime.db.pool import create_pool
from imgflow_runtime.db.tenants import DEFAULT_TENANT_ID
from imgflow_upload_api.tenants.admission import Admission
from imgflow_upload_api.tenants.limits import Defaults


def test_an_upload_admitted_while_another_request_reads_its_tenant_stays_counted(
    database_url: str,
) -> None:
    async def scenario() -> tuple[int, bool]:
        pool = await create_pool(database_url, max_size=2)
        try:
            admission = Admission(Defaults(upload_rate_per_s=100.0, upload_burst=10), 60.0)
            # Both read the tenant's limits before either has stored its state.
            admitted, state = await asyncio.gather(
                admission.admit(pool, DEFAULT_TENANT_ID, 0, None, 1),
                admission.state(pool, DEFAULT_TENANT_ID),
            )
            counted = await admission.in_progress(pool, DEFAULT_TENANT_ID)
            await admission.release(admitted)
            return counted, admitted.state is state
        finally:
            await pool.close()

    counted, same = asyncio.run(scenario())
    assert counted == 1
    assert same, "the tenant's token bucket and counters were split over two states"
