"""`make bench --only queueing` keeps working, and its orders say what the docs say
(docs/operating/scheduling.md); the fairness suite's report says what its medians are
of: nothing here is timed."""

from __future__ import annotations

from bench import fairness, queueing
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
