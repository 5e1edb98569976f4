"""Stopping the API's background loops: a pass under way ends, a stuck one is cancelled."""

from __future__ import annotations

import asyncio

from imgflow_upload_api.background import Loops, every, stop_loops


def _loops(step) -> Loops:  # type: ignore[no-untyped-def]
    stopping = asyncio.Event()
    return Loops([asyncio.create_task(every(60, "test", step, stopping))], stopping)


def test_a_pass_under_way_finishes_before_the_loop_stops() -> None:
    async def run() -> list[str]:
        events: list[str] = []
        started = asyncio.Event()
        release = asyncio.Event()

        async def step() -> None:
            events.append("began")
            started.set()
            await release.wait()
            events.append("ended")

        loops = _loops(step)
        await started.wait()
        stopper = asyncio.create_task(stop_loops(loops, grace_s=30))
        await asyncio.sleep(0)  # let stop_loops set the event and start waiting
        assert not stopper.done()
        release.set()
        await stopper
        return events

    assert asyncio.run(run()) == ["began", "ended"]


def test_a_stuck_pass_is_cancelled_after_the_grace() -> None:
    async def run() -> bool:
        started = asyncio.Event()
        cancelled = False

        async def step() -> None:
            nonlocal cancelled
            started.set()
            try:
                await asyncio.Event().wait()  # never set
            except asyncio.CancelledError:
                cancelled = True
                raise

        loops = _loops(step)
        await started.wait()
        await stop_loops(loops, grace_s=0.05)
        return cancelled and all(t.done() for t in loops.tasks)

    assert asyncio.run(run())


def test_the_loop_does_not_start_another_pass_once_stopping() -> None:
    async def run() -> int:
        passes = 0

        async def step() -> None:
            nonlocal passes
            passes += 1

        loops = _loops(step)
        await asyncio.sleep(0)
        await stop_loops(loops, grace_s=1)
        return passes

    assert asyncio.run(run()) == 1


def test_waking_a_loop_runs_its_next_pass_without_waiting_out_the_interval() -> None:
    async def run() -> int:
        passes = 0
        second = asyncio.Event()

        async def step() -> None:
            nonlocal passes
            passes += 1
            if passes == 2:
                second.set()

        stopping, wake = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(every(3600, "test", step, stopping, wake))
        await asyncio.sleep(0)
        wake.set()  # an hour's interval, yet the second pass comes now
        await asyncio.wait_for(second.wait(), timeout=30)
        await stop_loops(Loops([task], stopping, wake_on_stop=[wake.set]), grace_s=5)
        return passes

    assert asyncio.run(run()) == 2
