"""Event-loop lag, measured from inside the API: the proof that nothing blocks the loop.

A task asks to wake every ``interval_s``; how late it wakes is the time some callback held
the loop (hashing on the loop, a synchronous S3 call, a long parse), or the time the
process waited for a core or for the GIL. The loop thread's own CPU time over the same
period tells the two apart: a callback that holds the loop for 50 ms shows as 50 ms of
CPU in one period; waiting shows as lag without CPU. Both are Prometheus histograms, with
a running maximum of the lag; `make bench` (suite `api`) reads them around its upload
runs. Costs one wake-up per interval (50 a second): nothing measurable.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge, Histogram

INTERVAL_S = 0.02
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopLag:
    def __init__(self, registry: CollectorRegistry, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.histogram = Histogram(
            "imgflow_event_loop_lag_seconds",
            f"How late a task asking to wake every {interval_s * 1000:.0f} ms woke up.",
            registry=registry,
            buckets=BUCKETS,
        )
        self.max = Gauge(
            "imgflow_event_loop_lag_max_seconds",
            "Longest event-loop lag seen since the process started.",
            registry=registry,
        )
        self.busy = Histogram(
            "imgflow_event_loop_busy_seconds",
            "CPU time the event-loop thread spent in each probe period "
            f"({interval_s * 1000:.0f} ms plus the lag).",
            registry=registry,
            buckets=BUCKETS,
        )
        self._max = 0.0

    def observe(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        self.histogram.observe(lag_s)
        if lag_s > self._max:
            self._max = lag_s
            self.max.set(lag_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(self.interval_s)
            self.observe(loop.time() - asked - self.interval_s)
            self.busy.observe(time.thread_time() - cpu)
