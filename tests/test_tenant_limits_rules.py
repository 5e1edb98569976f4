"""The limits' and backpressure's rules as plain logic (tenants/limits.py,
uploads/backpressure.py), and the shared counts' answer when Valkey is away."""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import pytest

from imgflow_localstack.ports import free_port
from imgflow_runtime.db.tenant_limits import Limits
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.tenants.limits import (
    Defaults,
    Effective,
    Refusal,
    TokenBucket,
    check_queued,
    rate_headers,
)
from imgflow_upload_api.tenants.shared_state import SharedLimits, SharedStateUnavailable
from imgflow_upload_api.uploads.backpressure import Backpressure


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token came back in half a second
    assert bucket.take(10.0) == 0.0 and bucket.remaining() == 2  # saved up to the burst only


def test_a_tiny_rate_still_answers_a_finite_wait() -> None:
    bucket = TokenBucket(rate=5e-324, burst=1)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 86_400.0
    headers = rate_headers(bucket.rate, bucket.burst, bucket.remaining(), 86_400.0)
    assert headers["RateLimit-Policy"] == '"uploads";q=1;w=86400'


def test_a_tenants_own_limits_win_over_the_defaults() -> None:
    defaults = Defaults(weight=1, upload_rate_per_s=10.0, max_queued_jobs=500)
    mine = Effective.of(Limits(weight=4, max_queued_jobs=50), defaults)
    assert (mine.weight, mine.upload_rate_per_s, mine.upload_burst, mine.max_queued_jobs) == (
        4,
        10.0,
        10,  # a second's worth of the rate
        50,
    )


def test_the_queued_work_cap_answers_429() -> None:
    limits = Effective.of(Limits(max_queued_jobs=10), Defaults())
    check_queued(limits, 9, retry_after_s=30)
    with pytest.raises(Refusal) as refused:
        check_queued(limits, 10, retry_after_s=30)
    assert (refused.value.status, refused.value.code) == (429, "queue-limit")
    assert refused.value.headers == {"Retry-After": "30"}


def test_past_the_breaking_depth_the_tenant_holding_the_backlog_is_refused_first() -> None:
    importer, neighbour, newcomer = uuid4(), uuid4(), uuid4()
    pressure = Backpressure(breaking_depth=1000)
    pressure.update({"thumbnails": 4}, 1200, {importer: 1150, neighbour: 50})
    with pytest.raises(Problem) as refused:
        pressure.admit(importer)
    assert refused.value.status == 503
    assert refused.value.extensions["tenant_queued"] == 1150
    assert refused.value.extensions["fair_share"] == 500
    pressure.admit(neighbour)  # holds less than its share
    pressure.admit(newcomer)  # holds nothing
    # Below the breaking depth everyone is admitted, the importer too.
    pressure.update({"thumbnails": 4}, 900, {importer: 850, neighbour: 50})
    pressure.admit(importer)


def test_a_broker_queue_past_the_breaking_depth_refuses_everyone() -> None:
    pressure = Backpressure(breaking_depth=100)
    pressure.update({"thumbnails": 500}, 0, {})
    with pytest.raises(Problem):
        pressure.admit(uuid4())


def test_shared_counts_answer_unavailable_quickly_when_valkey_is_away() -> None:
    """Admission then counts in its own process (admission.py): uploads go on."""
    shared = SharedLimits(f"redis://127.0.0.1:{free_port()}/0", lease_s=60, timeout_s=0.2)
    tenant = uuid4()

    async def attempts() -> list[type[BaseException]]:
        seen = []
        for call in (
            shared.take(tenant, 1.0, 1, time.time()),
            shared.acquire(tenant, 1),
            shared.in_progress(tenant),
        ):
            with pytest.raises(SharedStateUnavailable) as caught:
                await call
            seen.append(caught.type)
        await shared.release(tenant, "gone")  # a lapsed lease: nothing to raise
        await shared.close()
        return seen

    assert asyncio.run(attempts()) == [SharedStateUnavailable] * 3
