"""`make bench --only queueing` keeps working, and its orders say what the docs say
(docs/operating/scheduling.md); the fairness suite's report says what its medians are
of: nothing here is timed."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from bench import fairness, fairness_ab, queueing
from bench.options import BenchOptions
from imgflow_localstack.cli import RunTuning


def test_the_queueing_alternatives_order_as_documented() -> None:
    suite = queueing.run(quick=True)
    places = {m.name.split(":")[0]: m.value for m in suite.measurements}
    last = queueing.QUICK_FLOOD + queueing.TRICKLE
    assert places["FIFO (one queue)"] == last
    assert places["Celery priorities, both uploads"] == last
    assert places["Celery priorities, B higher"] == queueing.TRICKLE
    assert places["per-tenant queues"] <= 2 * queueing.TRICKLE
    assert places["fair relay (this design)"] <= queueing.TARGET + 2 * queueing.TRICKLE


def _result(mode: str, loaded_s: float, loaded_samples: int) -> fairness.ModeResult:
    return fairness.ModeResult(
        mode, 0.5, loaded_s, 0.1, loaded_samples, 0.6, 3, 10.0, 300, {}, {}, {"flood": {}}
    )


def test_the_fairness_report_says_how_many_trickles_each_median_is_of() -> None:
    # The unthrottled flood's uploads end within one or two trickles: a reader must see
    # that its "median" may be a single sample.
    results = [_result("fifo", 9.0, 1), _result("fair", 1.2, 2), _result(fairness.LIMITED, 1.0, 3)]
    suite = fairness._suite(
        results, 120, 60, 40, BenchOptions(), RunTuning(worker_nice=19, extra_env={})
    )
    table = suite.tables[0]
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    loaded = table.columns.index("trickle loaded s")
    assert table.columns[loaded + 1] == "of n"
    assert [row[loaded + 1] for row in table.rows] == [1, 2, 3]
    assert rows["fair"]["trickle loaded s"] == 1.2


def test_a_median_of_an_even_count_is_the_slower_middle_trickle() -> None:
    samples = [(t, 0.0, {"run": t}) for t in (3.0, 1.0, 2.0, 4.0)]
    assert fairness._median_sample(samples)[0] == 3.0
    assert fairness._median_sample(samples[:3])[0] == 2.0


def test_the_fairness_report_names_the_configuration_its_system_ran() -> None:
    # The bench starts its system as `make run` does (cli.run_tuning); its report must say
    # what that was, not what this process's environment says.
    results = [_result(mode, 1.0, 1) for mode in ("fifo", "fair", fairness.LIMITED)]
    tuning = RunTuning(
        worker_nice=19,
        extra_env={
            "IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH": "3",
            "IMGFLOW_TENANT_LIGHT_WORK_FIRST": "true",
        },
    )
    notes = " ".join(fairness._suite(results, 120, 60, 40, BenchOptions(), tuning).notes)
    assert "express queues 3 deep" in notes
    assert "workers at nice 19" in notes
    assert "a backlog held back while light work runs: true" in notes
    assert "its uploads meanwhile 0 (default) at a time" in notes
    assert "40 images of its own" in notes


def test_the_ab_driver_reads_each_configuration_as_variables_to_set() -> None:
    assert fairness_ab._config("IMGFLOW_A=0,IMGFLOW_B=x=y") == {
        "IMGFLOW_A": "0",
        "IMGFLOW_B": "x=y",
    }
    for bad in ("", "IMGFLOW_A", "=1", "IMGFLOW_A=1,oops"):
        with pytest.raises(argparse.ArgumentTypeError):
            fairness_ab._config(bad)


def test_throughput_is_compared_with_the_fifo_runs_before_and_after_the_fair_ones() -> None:
    # A system's later runs are slower whatever the relay: the FIFO run before the fair
    # ones alone would make them look slower than they are.
    def done_in(mode: str, all_done_s: float) -> fairness.ModeResult:
        return dataclasses.replace(_result(mode, 1.0, 1), all_done_s=all_done_s)

    results = [
        done_in("fifo", 10.0),  # 30 jobs/s
        done_in("fair", 11.0),  # 27.3 jobs/s: 0.91 of the first, 0.99 of the mean
        done_in(fairness.LIMITED, 11.0),
        done_in(fairness.FIFO_AGAIN, 12.0),  # 25 jobs/s
    ]
    notes = fairness._suite(
        results, 120, 60, 40, BenchOptions(), RunTuning(worker_nice=19, extra_env={})
    ).notes
    assert "fair: throughput / fifo 0.992 (target: within 5 %) -> met" in notes
    assert not any(note.startswith(f"{fairness.FIFO_AGAIN}:") for note in notes)
