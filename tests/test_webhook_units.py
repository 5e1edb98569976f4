"""The webhook sender's plain functions: signature, body, retry delays, what an answer
means, and the circuit breaker's transitions."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from imgflow_webhook_sender import breaker
from imgflow_webhook_sender.breaker import Breaker, BreakerPolicy
from imgflow_webhook_sender.outcomes import (
    Attempt,
    RetryPolicy,
    Verdict,
    fate,
    from_status,
    parse_retry_after,
    retry_delay,
)
from imgflow_webhook_sender.signing import sign

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
POLICY = BreakerPolicy(pause_after=3, probe_base_s=10, probe_cap_s=40, disable_after_s=3 * 86400)
RETRY = RetryPolicy(max_attempts=5, base_s=1, cap_s=60, unresolvable_grace_s=3600)


def test_signature_matches_the_documented_recipe() -> None:
    body = b'{"id":"x"}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_k", 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_retry_delays_grow_with_jitter_up_to_the_cap() -> None:
    assert retry_delay(1, 1.0, 60.0, rng=lambda: 0.0) == 0.5
    assert retry_delay(1, 1.0, 60.0, rng=lambda: 1.0) == 1.0
    assert retry_delay(4, 1.0, 60.0, rng=lambda: 1.0) == 8.0
    assert retry_delay(40, 1.0, 60.0, rng=lambda: 1.0) == 60.0
    assert 30.0 <= retry_delay(40, 1.0, 60.0) <= 60.0


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (410, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (301, Verdict.PERMANENT),
    ],
)
def test_what_an_answer_means(code: int, verdict: Verdict) -> None:
    assert from_status(code, None, NOW).verdict is verdict


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Sat, 05 Dec 2026 12:01:00 GMT", NOW) == 60.0
    assert parse_retry_after("Sat, 05 Dec 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert from_status(429, "7", NOW).retry_after_s == 7.0


def test_a_delivery_is_retried_until_its_attempts_run_out_or_it_cannot_change() -> None:
    retry = Attempt(Verdict.RETRY, 503, "answered HTTP 503")
    assert fate(retry, 1, None, RETRY, rng=lambda: 1.0).status == "pending"
    assert fate(retry, 1, None, RETRY, rng=lambda: 1.0).retry_in_s == 1.0
    assert fate(retry, 5, None, RETRY).status == "failed"
    asked = Attempt(Verdict.RETRY, 429, "answered HTTP 429", retry_after_s=600)
    assert fate(asked, 1, None, RETRY).retry_in_s == 60  # never past the cap
    assert fate(Attempt(Verdict.PERMANENT, 410), 1, None, RETRY).status == "failed"
    assert fate(Attempt(Verdict.DELIVERED, 200), 1, None, RETRY).status == "delivered"
    gone = Attempt(Verdict.RETRY, error="cannot resolve", unresolvable=True)
    assert fate(gone, 1, 3599.0, RETRY).status == "pending"
    assert fate(gone, 1, 3600.0, RETRY).status == "failed"


def _fail(b: Breaker, times: int, at: datetime = NOW) -> Breaker:
    for _ in range(times):
        b = breaker.after_failure(b, at, POLICY)
    return b


def test_n_consecutive_failures_pause_and_a_success_between_resets_the_count() -> None:
    active = Breaker(breaker.ACTIVE, NOW)
    assert _fail(active, 2).state == breaker.ACTIVE
    reset = breaker.after_success(_fail(active, 2), NOW)
    assert reset.consecutive_failures == 0 and _fail(reset, 2).state == breaker.ACTIVE
    paused = _fail(active, 3)
    assert paused.state == breaker.PAUSED and paused.state_since == NOW
    assert paused.next_probe_at == NOW + timedelta(seconds=10)


def test_probes_of_a_paused_endpoint_back_off_to_the_cap_and_a_success_resumes() -> None:
    paused = _fail(Breaker(breaker.ACTIVE, NOW), 3)
    intervals = []
    for _ in range(4):
        paused = breaker.after_failure(paused, NOW, POLICY)
        intervals.append(paused.probe_interval_s)
    assert intervals == [20, 40, 40, 40] and paused.state == breaker.PAUSED
    later = NOW + timedelta(minutes=5)
    resumed = breaker.after_success(paused, later)
    assert (resumed.state, resumed.state_since, resumed.next_probe_at) == ("active", later, None)


def test_an_outage_past_the_bound_disables_and_nothing_but_the_tenant_enables() -> None:
    paused = _fail(Breaker(breaker.ACTIVE, NOW), 3)
    still = breaker.after_failure(paused, NOW + timedelta(days=2, hours=23), POLICY)
    assert still.state == breaker.PAUSED
    gone = breaker.after_failure(still, NOW + timedelta(days=3), POLICY)
    assert gone.state == breaker.DISABLED and gone.next_probe_at is None
    assert breaker.after_success(gone, NOW + timedelta(days=4)).state == breaker.DISABLED


def test_attempts_in_flight_when_it_paused_do_not_push_the_first_probe_out() -> None:
    paused = _fail(Breaker(breaker.ACTIVE, NOW), 3)
    late = breaker.after_failure(paused, NOW, POLICY, probe=False)
    assert late.state == breaker.PAUSED and late.consecutive_failures == 4
    assert (late.probe_interval_s, late.next_probe_at) == (10, NOW + timedelta(seconds=10))
    assert breaker.after_failure(late, NOW, POLICY).probe_interval_s == 20
