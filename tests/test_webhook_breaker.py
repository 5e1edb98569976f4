"""Each state change of an endpoint's circuit breaker, against real receivers on loopback:
active -> paused after N consecutive failures (deliveries wait, one probe at a growing
interval), paused -> active on the first successful probe, paused -> disabled after the
configured outage (webhook.disabled on the tenant's stream), and disabled -> active when
the tenant re-enables it (backlog delivered in order, or dropped)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from imgflow_localstack.system import LocalSystem
from tests.support import wait_for
from tests.webhook_support import (
    Receiver,
    SenderThread,
    Tenant,
    hang,
    ok,
    queue_deliveries,
    status,
    tenant,
)

PAUSE_AFTER = 3
BACKLOG = 12


pytestmark = pytest.mark.usefixtures("own_sender")


def _state_lines(caplog: pytest.LogCaptureFixture, webhook_id: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("imgflow_webhook_sender") and webhook_id in r.getMessage()
    ]


def test_failures_pause_an_endpoint_probes_resume_it_and_the_backlog_follows(
    system: LocalSystem, database_url: str, account: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="imgflow_webhook_sender")
    with Receiver(status(503)).running() as receiver:
        hook = account.register(receiver.url)
        queue_deliveries(database_url, hook["id"], BACKLOG)
        with SenderThread(
            database_url,
            webhook_pause_after_failures=PAUSE_AFTER,
            webhook_probe_base_s=0.2,
            webhook_probe_cap_s=0.4,
            webhook_per_endpoint=1,
        ) as sender:
            paused = wait_for(
                lambda: (h := account.webhook(hook["id"]))["state"] == "paused" and h,
                what="the endpoint paused",
            )
            assert paused["consecutive_failures"] >= PAUSE_AFTER
            assert paused["last_error"] == "answered HTTP 503"
            assert paused["next_probe_at"] is not None
            assert paused["pending_deliveries"] == BACKLOG
            # Paused: each later request is a probe, always the oldest pending delivery.
            probed_from = len(receiver.arrivals)
            wait_for(lambda: len(receiver.arrivals) >= probed_from + 2, what="two probes")
            oldest = min(receiver.arrivals, key=lambda a: a.body["event_id"]).body["id"]
            probes = receiver.arrivals[probed_from:]
            assert {a.body["id"] for a in probes} == {oldest}
            assert account.webhook(hook["id"])["state"] == "paused"
            scraped = generate_latest(sender.metrics.registry).decode()
            wait_for(
                lambda: (
                    'imgflow_webhook_endpoints{state="paused"}'
                    in generate_latest(sender.metrics.registry).decode()
                ),
                what="the endpoint-state gauge",
            )

            receiver.answer = ok  # the receiver is back: the next probe resumes it
            wait_for(
                lambda: all(d["status"] == "delivered" for d in account.deliveries(hook["id"])),
                what="the backlog delivered",
            )
            resumed = account.webhook(hook["id"])
            scraped = generate_latest(sender.metrics.registry).decode()

    assert resumed["state"] == "active" and resumed["consecutive_failures"] == 0
    assert resumed["pending_deliveries"] == 0
    # After the resume, the backlog went in the order it was queued.
    delivered = [a.body["event_id"] for a in receiver.arrivals if a.at >= probes[-1].at]
    assert delivered == sorted(delivered) and len(set(delivered)) == BACKLOG
    # One log line per state change, however many attempts failed.
    lines = _state_lines(caplog, hook["id"])
    assert len(receiver.arrivals) > PAUSE_AFTER + 2
    assert [line.split(": ", 1)[1].split(" ", 3)[:3] for line in lines] == [
        ["active", "->", "paused"],
        ["paused", "->", "active,"],
    ]
    assert 'imgflow_webhook_attempts_total{outcome="delivered"} 12.0' in scraped


def _stream_until(account: Tenant, event_type: str) -> dict[str, Any]:
    """The first stored event of ``event_type`` on the tenant's stream (replayed from 0)."""
    with account.api.stream("GET", "/v1/events", headers={"Last-Event-ID": "0"}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
                if data.get("type") == event_type:
                    return data  # type: ignore[no-any-return]
    raise AssertionError(f"the stream ended without {event_type}")


def test_a_long_outage_disables_an_endpoint_until_the_tenant_re_enables_it(
    system: LocalSystem, database_url: str, account: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="imgflow_webhook_sender")
    with Receiver(status(500)).running() as receiver, Receiver(status(500)).running() as other:
        kept = account.register(receiver.url)
        dropped = account.register(other.url)
        for hook in (kept, dropped):
            queue_deliveries(database_url, hook["id"], 5)
        with SenderThread(
            database_url,
            webhook_pause_after_failures=2,
            webhook_probe_base_s=0.1,
            webhook_probe_cap_s=0.2,
            webhook_disable_after_s=1.0,
            webhook_per_endpoint=1,
        ):
            for hook in (kept, dropped):
                wait_for(
                    lambda h=hook: account.webhook(h["id"])["state"] == "disabled",
                    what="the endpoint disabled",
                )
            disabled = account.webhook(kept["id"])
            announced = _stream_until(account, "webhook.disabled")
            assert announced["webhook_id"] in {kept["id"], dropped["id"]}
            assert announced["status"] == "disabled"
            assert announced["error"] == "answered HTTP 500"

            listed = account.cli("webhooks")
            lines = account.cli("webhooks", "--json").stdout.splitlines()
            as_json = [json.loads(line) for line in lines]

            receiver.answer = other.answer = ok
            before = len(receiver.arrivals), len(other.arrivals)
            again = account.api.post(f"/v1/webhooks/{kept['id']}/enable")
            assert again.status_code == 200, again.text
            assert again.json()["state"] == "active" and again.json()["dropped_deliveries"] == 0
            wait_for(
                lambda: all(d["status"] == "delivered" for d in account.deliveries(kept["id"])),
                what="the re-enabled endpoint's backlog",
            )
            by_cli = account.cli("webhooks", "enable", dropped["id"], "--drop-backlog", "--json")
            gone = json.loads(by_cli.stdout)
            assert gone["state"] == "active" and gone["dropped_deliveries"] == 5
            assert gone["pending_deliveries"] == 0

    # The CLI shows it as the API does.
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("disabled") == 2 and "answered HTTP 500" in listed.stdout
    assert {(h["id"], h["state"]) for h in as_json} == {
        (kept["id"], "disabled"),
        (dropped["id"], "disabled"),
    }
    assert disabled["state"] == "disabled" and disabled["last_error"] == "answered HTTP 500"
    assert disabled["pending_deliveries"] == 5  # kept, not attempted, while disabled
    assert {d["status"] for d in account.deliveries(dropped["id"])} == {"dropped"}
    assert len(other.arrivals) == before[1]  # the dropped backlog was never sent
    after_enable = [a.body["event_id"] for a in receiver.arrivals[before[0] :]]
    assert after_enable == sorted(after_enable) and len(after_enable) == 5
    lines = _state_lines(caplog, kept["id"])
    assert [line.split(": ", 1)[1].split(" ", 3)[:3] for line in lines] == [
        ["active", "->", "paused"],
        ["paused", "->", "disabled"],
    ]


def test_re_enabling_is_the_tenants_own_and_says_not_found_otherwise(
    system: LocalSystem, account: Tenant
) -> None:
    with tenant(system) as stranger, Receiver(hang).running() as receiver:
        hook = account.register(receiver.url)
        for path in (f"/v1/webhooks/{hook['id']}/enable", "/v1/webhooks/nope/enable"):
            refused = stranger.api.post(path)
            assert refused.status_code == 404
            assert refused.json()["code"] == "webhook-not-found"
        bad = account.api.post(f"/v1/webhooks/{hook['id']}/enable", json={"backlog": "keep"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert account.webhook(hook["id"])["state"] == "active"


def test_a_disabled_endpoints_backlog_keeps_its_newest_deliveries_up_to_the_cap(
    database_url: str, account: Tenant
) -> None:
    """Events keep queueing deliveries for a disabled endpoint; past the cap, the oldest
    are dropped, counted on the webhook and in the sender's metric, and what is kept is
    delivered in order once the tenant re-enables it."""
    cap = 3
    with Receiver(status(500)).running() as receiver:
        hook = account.register(receiver.url)
        queue_deliveries(database_url, hook["id"], 5)
        with SenderThread(
            database_url,
            webhook_pause_after_failures=2,
            webhook_probe_base_s=0.1,
            webhook_probe_cap_s=0.2,
            webhook_disable_after_s=1.0,
            webhook_max_attempts=100,
            webhook_per_endpoint=1,
            webhook_disabled_backlog_max=cap,
        ) as sender:
            wait_for(lambda: account.webhook(hook["id"])["state"] == "disabled", what="disabled")
            queue_deliveries(database_url, hook["id"], 4)  # events go on meanwhile
            capped = wait_for(
                lambda: (h := account.webhook(hook["id"]))["backlog_dropped"] == 9 - cap and h,
                what="the backlog capped",
            )
            # The sender counts the drop after its transaction commits (and reads the
            # gauges in between): the API can show it first.
            wait_for(
                lambda: (
                    sender.metrics.registry.get_sample_value(
                        "imgflow_webhook_deliveries_dropped_total"
                    )
                    == 9 - cap
                ),
                what="the dropped deliveries counted in the sender's metric",
            )
            kept = sorted(
                (d for d in account.deliveries(hook["id"]) if d["status"] == "pending"),
                key=lambda d: d["created_at"],
            )
            receiver.answer = ok
            before = len(receiver.arrivals)
            assert account.api.post(f"/v1/webhooks/{hook['id']}/enable").status_code == 200
            wait_for(lambda: len(receiver.arrivals) >= before + cap, what="the kept backlog")
    everything = sorted(account.deliveries(hook["id"]), key=lambda d: d["created_at"])
    assert capped["pending_deliveries"] == cap
    # the oldest went; the newest `cap` were kept, and then delivered in their order
    assert [d["status"] for d in everything] == ["dropped"] * (9 - cap) + ["delivered"] * cap
    assert [d["id"] for d in everything[-cap:]] == [d["id"] for d in kept]
    assert [a.body["id"] for a in receiver.arrivals[before:]] == [d["id"] for d in kept]
    assert all("more than 3 deliveries" in d["last_error"] for d in everything[: 9 - cap])
    assert account.webhook(hook["id"])["backlog_dropped"] == 9 - cap
