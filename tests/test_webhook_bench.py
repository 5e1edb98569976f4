"""`make bench --only webhooks` reports each phase it ran against its own rounds without
dead webhooks (nothing here is timed: the rounds are made up, the report is checked)."""

from __future__ import annotations

from bench.uploads import Upload
from bench.webhooks import DISCOVERY, STEADY, Round, _suite


def _round(dead: bool, phase: str, latency_s: float) -> Round:
    uploads = [Upload(i, i * 0.1, latency_s, 201, 1000, f"id-{i}") for i in range(10)]
    return Round(dead, uploads, 1.0, 0.1, {"paused": 50} if dead else {}, 5, phase=phase)


def test_both_phases_are_reported_each_against_its_own_rounds() -> None:
    rounds = [
        _round(False, STEADY, 0.5),
        _round(True, STEADY, 0.5),
        _round(False, DISCOVERY, 0.5),
        _round(True, DISCOVERY, 1.0),  # discovery slowed uploads down: a ratio of 0.5
    ]
    suite = _suite(rounds, 10, 4)
    by_name = {m.name: m for m in suite.measurements}
    steady = by_name["upload p50 beside 50 dead endpoints, 10,000 pending"]
    discovery = by_name[
        "upload p50 beside 50 dead endpoints, 10,000 pending (discovery: not yet paused)"
    ]
    assert steady.baseline == "upload p50, no dead webhooks"
    assert discovery.baseline == "upload p50, no dead webhooks (discovery phase)"
    assert by_name[steady.baseline].value == steady.value == 500
    assert by_name[discovery.baseline].value == 500 and discovery.value == 1000
    # idle figures only where the idle system was measured
    assert not any("idle" in name and "discovery" in name for name in by_name)
    assert [row[1] for row in suite.tables[0].rows] == [STEADY, STEADY, DISCOVERY, DISCOVERY]


def test_one_phase_keeps_the_names_of_the_first_results() -> None:
    suite = _suite([_round(False, STEADY, 0.5), _round(True, STEADY, 0.5)], 10, 4)
    assert {m.name for m in suite.measurements} >= {
        "uploads/s, no dead webhooks",
        "upload p50, no dead webhooks",
        "idle API CPU, no dead webhooks",
    }
    assert not any("discovery" in m.name for m in suite.measurements)
