"""Two webhook sender processes share the concurrency limits: per endpoint, per target
host and per tenant, the attempts in flight are counted from the leased delivery rows in
PostgreSQL, not in each process's memory, so the limits hold across replicas; and a
replica that dies mid-attempt holds its slots only until its leases pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgflow_localstack.system import LocalSystem
from tests.support import wait_for
from tests.webhook_support import (
    Receiver,
    SenderProcess,
    Tenant,
    hang,
    queue_deliveries,
)

pytestmark = pytest.mark.usefixtures("own_sender")

PASSES = "imgflow_webhook_dispatch_passes_total"
IN_FLIGHT = "imgflow_webhook_attempts_in_flight"


def test_limits_per_endpoint_host_and_tenant_hold_across_two_sender_processes(
    system: LocalSystem, database_url: str, tmp_path: Path, account: Tenant
) -> None:
    """One tenant, three endpoints on one hanging receiver: /a and /b under one host name,
    /c under another. 2 per endpoint, 3 per host and 4 per tenant allow exactly 4 at once:
    at most 3 on /a and /b together, at most 2 on /c. Each process alone would start 4."""
    limits = {
        "webhook_per_endpoint": 2,
        "webhook_per_host": 3,
        "webhook_per_tenant": 4,
        "webhook_timeout_s": 120,  # the held attempts never end by timing out here
    }
    with Receiver(hang).running() as receiver:
        for url in (
            receiver.on("127.0.0.1", "/a"),
            receiver.on("127.0.0.1", "/b"),
            receiver.on("localhost", "/c"),
        ):
            queue_deliveries(database_url, account.register(url)["id"], 20)
        with (
            SenderProcess(system, tmp_path / "one.log", **limits) as one,
            SenderProcess(system, tmp_path / "two.log", **limits) as two,
        ):
            wait_for(lambda: receiver.open == 4, what="four attempts held")
            # Each process has made passes since (with the slots full, they claim nothing).
            seen = [_passes(one), _passes(two)]
            wait_for(
                lambda: _passes(one) >= seen[0] + 2 and _passes(two) >= seen[1] + 2,
                what="two more passes of each sender",
            )
            held = dict(receiver.open_by_path)
            in_flight = [one.metric(IN_FLIGHT), two.metric(IN_FLIGHT)]

    assert receiver.most_open == 4 and sum(held.values()) == 4
    assert held.get("/a", 0) <= 2 and held.get("/b", 0) <= 2 and held.get("/c", 0) <= 2
    assert held.get("/a", 0) + held.get("/b", 0) <= 3
    assert sum(n or 0 for n in in_flight) == 4
    _logs_clean(tmp_path)


def test_a_crashed_senders_slots_come_back_when_its_leases_pass(
    system: LocalSystem, database_url: str, tmp_path: Path, account: Tenant
) -> None:
    """The first sender takes the endpoint's 2 slots and dies (SIGKILL) while its receiver
    holds them. The second sends nothing while their leases last, not even the deliveries
    behind them that are due; then the two come back, and go first, and all arrive."""
    held: list[str] = []

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, str]] | None:
        if len(held) < 2:
            held.append(body["id"])
            return None
        return 204, {}

    settings = {
        "webhook_per_endpoint": 2,
        "webhook_timeout_s": 5,  # the first dies long before its attempts would end
        "webhook_lease_margin_s": 1,
    }
    with Receiver(answer).running() as receiver:
        hook = account.register(receiver.url)
        queue_deliveries(database_url, hook["id"], 6)
        with SenderProcess(system, tmp_path / "first.log", **settings) as first:
            wait_for(lambda: receiver.open == 2, what="the first sender's two attempts")
            first.kill()
        crashed_at = len(receiver.arrivals)
        with SenderProcess(system, tmp_path / "second.log", **settings):
            wait_for(
                lambda: all(d["status"] == "delivered" for d in account.deliveries(hook["id"])),
                what="every delivery",
            )
    after = [a.body["id"] for a in receiver.arrivals[crashed_at:]]
    assert crashed_at == 2
    assert set(after[:2]) == set(held) and len(after) == 6 and len(set(after)) == 6
    attempts = {d["id"]: d["attempts"] for d in account.deliveries(hook["id"])}
    assert {i for i, n in attempts.items() if n == 2} == set(held)


def _passes(sender: SenderProcess) -> float:
    return sender.metric(PASSES) or 0.0


def _logs_clean(folder: Path) -> None:
    for log in folder.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
