"""`make bench --only queueing` keeps working, and its orders say what the docs say
(docs/operating/scheduling.md): nothing here is timed."""

from __future__ import annotations

from bench import queueing


def test_the_queueing_alternatives_order_as_documented() -> None:
    suite = queueing.run(quick=True)
    places = {m.name.split(":")[0]: m.value for m in suite.measurements}
    last = queueing.QUICK_FLOOD + queueing.TRICKLE
    assert places["FIFO (one queue)"] == last
    assert places["Celery priorities, both uploads"] == last
    assert places["Celery priorities, B higher"] == queueing.TRICKLE
    assert places["per-tenant queues"] <= 2 * queueing.TRICKLE
    assert places["fair relay (this design)"] <= queueing.TARGET + 2 * queueing.TRICKLE
