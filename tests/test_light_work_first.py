"""A backlog's uploads yield to light tenants' work in flight (tenants/light_first.py), as
plain logic: which upload waits, for what, and until when."""

from __future__ import annotations

import asyncio
import contextlib
import time
from uuid import uuid4

from imgflow_upload_api.tenants.light_first import LightWorkFirst

HEAVY, LIGHT, OTHER = uuid4(), uuid4(), uuid4()
LIGHT_IMAGE = uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Gate(LightWorkFirst):
    """Counting the uploads that waited, as the API's metric does."""

    def __init__(
        self,
        share: int,
        window_s: float,
        clock=time.monotonic,
        on: bool = True,
        unsent_s: float | None = None,
    ) -> None:
        super().__init__(on, share, window_s, clock, on_wait=self._waited, unsent_s=unsent_s)
        self.waited = 0

    def _waited(self) -> None:
        self.waited += 1


def _gate(share: int = 2, window_s: float = 2.0) -> tuple[Gate, Clock]:
    clock = Clock()
    return Gate(share, window_s, clock), clock


async def _started(gate: LightWorkFirst, tenant, backlog: bool) -> asyncio.Task[None]:
    """An upload holding its turn until cancelled; returns once it has the turn or waits."""
    has_turn = asyncio.Event()

    async def upload() -> None:
        async with gate.turn(tenant, backlog):
            has_turn.set()
            await asyncio.Event().wait()  # until cancelled: the upload in progress

    task = asyncio.create_task(upload())
    await asyncio.sleep(0)  # let it reach its turn, or its wait
    task.has_turn = has_turn  # type: ignore[attr-defined]
    return task


def test_nothing_waits_without_light_work_in_flight() -> None:
    gate, _ = _gate()
    assert gate.must_wait(HEAVY, backlog=True) == 0.0

    async def scenario() -> int:
        uploads = [await _started(gate, HEAVY, backlog=True) for _ in range(5)]
        running = sum(u.has_turn.is_set() for u in uploads)  # type: ignore[attr-defined]
        for u in uploads:
            u.cancel()
        return running

    assert asyncio.run(scenario()) == 5
    assert gate.waited == 0


def test_a_backlog_runs_its_share_while_another_tenants_light_work_is_in_flight() -> None:
    gate, clock = _gate(share=2, window_s=2.0)

    async def scenario() -> None:
        first = [await _started(gate, HEAVY, backlog=True) for _ in range(2)]
        gate.light_sent([(LIGHT, LIGHT_IMAGE)])
        third = await _started(gate, HEAVY, backlog=True)
        assert not third.has_turn.is_set()  # type: ignore[attr-defined]
        assert gate.must_wait(HEAVY, backlog=True) == 2.0
        # The light tenant's own uploads, and a tenant without a backlog, go at once.
        light = [await _started(gate, LIGHT, backlog=False) for _ in range(3)]
        other = await _started(gate, OTHER, backlog=False)
        assert all(u.has_turn.is_set() for u in [*light, other])  # type: ignore[attr-defined]
        # One of the backlog's uploads ends: the waiting one takes its place.
        first[0].cancel()
        await asyncio.wait_for(third.has_turn.wait(), 5)  # type: ignore[attr-defined]
        # The light uploads fail (no image taken); past the window the backlog runs
        # unheld again.
        for u in [*light, other]:
            u.cancel()
        await asyncio.sleep(0)
        clock.now += 2.0
        assert gate.must_wait(HEAVY, backlog=True) == 0.0
        for u in [first[1], third]:
            u.cancel()

    asyncio.run(scenario())
    assert gate.waited == 1


def test_a_tenants_own_light_work_does_not_hold_it_back() -> None:
    # A flood starts light (nothing queued): its first jobs go by the express lane.
    gate, _ = _gate(share=1)
    gate.light_sent([(HEAVY, uuid4())])

    async def scenario() -> bool:
        held = await _started(gate, HEAVY, backlog=True)
        second = await _started(gate, HEAVY, backlog=True)
        went = second.has_turn.is_set()  # type: ignore[attr-defined]
        held.cancel()
        second.cancel()
        return went

    assert asyncio.run(scenario())


def test_the_wait_ends_with_the_window_when_the_backlogs_uploads_do_not() -> None:
    gate = Gate(share=1, window_s=0.05)  # the real clock: the window must pass

    async def scenario() -> float:
        held = await _started(gate, HEAVY, backlog=True)
        gate.light_sent([(LIGHT, LIGHT_IMAGE)])
        started = time.monotonic()
        waiting = await _started(gate, HEAVY, backlog=True)
        await asyncio.wait_for(waiting.has_turn.wait(), 5)  # type: ignore[attr-defined]
        waited = time.monotonic() - started
        held.cancel()
        waiting.cancel()
        return waited

    assert asyncio.run(scenario()) >= 0.04  # it did wait, for about the window
    assert gate.waited == 1


def test_off_it_records_nothing_and_holds_no_one_back() -> None:
    gate = Gate(share=0, window_s=2.0, clock=Clock(), on=False)
    gate.light_sent([(LIGHT, LIGHT_IMAGE)])
    assert gate.light_work_of_others(HEAVY) == 0.0  # nothing even recorded
    assert gate.must_wait(HEAVY, backlog=True) == 0.0


def test_at_a_share_of_0_every_upload_of_a_backlog_waits_for_the_light_work() -> None:
    gate, _ = _gate(share=0, window_s=60.0)
    gate.light_sent([(LIGHT, LIGHT_IMAGE)])

    async def scenario() -> None:
        first = await _started(gate, HEAVY, backlog=True)
        assert not first.has_turn.is_set()  # type: ignore[attr-defined]
        gate.image_ended(LIGHT_IMAGE)
        await asyncio.wait_for(first.has_turn.wait(), 5)  # type: ignore[attr-defined]
        first.cancel()

    asyncio.run(scenario())
    assert gate.waited == 1


def test_a_steady_stream_of_light_work_holds_an_upload_back_for_the_window_at_most() -> None:
    gate, clock = _gate(share=0, window_s=60.0)
    early, later, latest = uuid4(), uuid4(), uuid4()

    async def scenario() -> None:
        gate.light_sent([(LIGHT, early)])
        waiting = await _started(gate, HEAVY, backlog=True)  # from 100 s, until 160 s at most
        clock.now = 150.0
        gate.light_sent([(OTHER, later), (OTHER, latest)])  # in flight until 210 s
        clock.now = 161.0
        gate.image_ended(latest)  # a wake-up: the waiting upload looks again
        await asyncio.wait_for(waiting.has_turn.wait(), 5)  # type: ignore[attr-defined]
        # It went with light work still in flight: it had waited its window.
        assert gate.light_work_of_others(HEAVY) == 49.0
        waiting.cancel()

    asyncio.run(scenario())


def test_it_keeps_only_the_light_work_still_in_its_window() -> None:
    gate, clock = _gate(window_s=2.0)
    for _ in range(100):  # a stream of new light tenants, one a second
        gate.light_sent([(uuid4(), uuid4())])
        clock.now += 1.0
    assert len(gate._in_flight) <= 2


def test_the_wait_ends_when_the_light_image_ends_before_its_window() -> None:
    gate, _ = _gate(share=1, window_s=60.0)
    second_image = uuid4()

    async def scenario() -> None:
        held = await _started(gate, HEAVY, backlog=True)
        gate.light_sent([(LIGHT, LIGHT_IMAGE), (OTHER, second_image)])
        waiting = await _started(gate, HEAVY, backlog=True)
        assert not waiting.has_turn.is_set()  # type: ignore[attr-defined]
        # One of two light images is ready: the other still holds the backlog back.
        gate.image_ended(LIGHT_IMAGE)
        await asyncio.sleep(0)
        assert not waiting.has_turn.is_set()  # type: ignore[attr-defined]
        assert gate.must_wait(HEAVY, backlog=True) > 0
        # The last one ends (failed, say): the wait is over, long before the window.
        gate.image_ended(second_image)
        await asyncio.wait_for(waiting.has_turn.wait(), 5)  # type: ignore[attr-defined]
        assert gate.light_work_of_others(HEAVY) == 0.0
        held.cancel()
        waiting.cancel()

    asyncio.run(scenario())
    assert gate.waited == 1


def test_an_image_the_gate_never_counted_changes_nothing() -> None:
    gate, _ = _gate(share=1, window_s=60.0)
    gate.light_sent([(LIGHT, LIGHT_IMAGE)])
    gate.image_ended(uuid4())  # someone else's image, or one already forgotten
    assert gate.light_work_of_others(HEAVY) == 60.0
    # Another express job of the same image (a later stage) counts it anew, once.
    gate.light_sent([(LIGHT, LIGHT_IMAGE)])
    gate.image_ended(LIGHT_IMAGE)
    assert gate.light_work_of_others(HEAVY) == 0.0


async def _light_upload(gate: LightWorkFirst, tenant, done: asyncio.Event, fail: bool) -> None:
    async with gate.turn(tenant, backlog=False):
        await done.wait()
        if fail:
            raise ValueError("refused: no image taken")


def test_a_light_upload_holds_a_backlog_back_from_its_first_byte_to_its_image_end() -> None:
    gate, clock = _gate(share=0, window_s=2.0)

    async def scenario() -> None:
        body_read = asyncio.Event()
        light = asyncio.create_task(_light_upload(gate, LIGHT, body_read, fail=False))
        await asyncio.sleep(0)  # its turn taken: its body is being read
        waiting = await _started(gate, HEAVY, backlog=True)
        assert not waiting.has_turn.is_set()  # type: ignore[attr-defined]
        # Taken: its jobs wait in the outbox for the relay, still light work.
        body_read.set()
        await light
        assert not waiting.has_turn.is_set()  # type: ignore[attr-defined]
        assert gate.must_wait(HEAVY, backlog=True) == 2.0
        # The relay sends them: light work until the image's end.
        clock.now += 1.5
        gate.light_sent([(LIGHT, LIGHT_IMAGE)])
        assert gate.must_wait(HEAVY, backlog=True) == 2.0
        gate.image_ended(LIGHT_IMAGE)
        await asyncio.wait_for(waiting.has_turn.wait(), 5)  # type: ignore[attr-defined]
        waiting.cancel()

    asyncio.run(scenario())


def test_a_refused_light_upload_stops_counting_when_it_ends() -> None:
    gate, _ = _gate(share=0, window_s=60.0)

    async def scenario() -> None:
        refused = asyncio.Event()
        light = asyncio.create_task(_light_upload(gate, LIGHT, refused, fail=True))
        await asyncio.sleep(0)
        waiting = await _started(gate, HEAVY, backlog=True)
        assert not waiting.has_turn.is_set()  # type: ignore[attr-defined]
        refused.set()
        with contextlib.suppress(ValueError):
            await light
        await asyncio.wait_for(waiting.has_turn.wait(), 5)  # type: ignore[attr-defined]
        waiting.cancel()

    asyncio.run(scenario())


def test_a_taken_light_upload_whose_jobs_go_by_another_lane_counts_for_the_relays_pause() -> None:
    # unsent_s as the API sets it: the relay's longest pause between passes
    gate = Gate(share=0, window_s=120.0, clock=Clock(), unsent_s=1.0)

    async def scenario() -> None:
        taken = asyncio.Event()
        taken.set()
        await _light_upload(gate, LIGHT, taken, fail=False)
        assert gate.must_wait(HEAVY, backlog=True) == 1.0  # not the 120 s window
        gate.clock.now += 1.0  # type: ignore[attr-defined]
        assert gate.must_wait(HEAVY, backlog=True) == 0.0

    asyncio.run(scenario())


def test_uploads_made_while_light_count_in_the_share_once_there_is_a_backlog() -> None:
    gate, _ = _gate(share=1, window_s=60.0)

    async def scenario() -> None:
        early = await _started(gate, HEAVY, backlog=False)  # the flood's first upload
        gate.light_sent([(LIGHT, LIGHT_IMAGE)])
        later = await _started(gate, HEAVY, backlog=True)  # with a backlog now
        assert not later.has_turn.is_set()  # type: ignore[attr-defined]
        early.cancel()
        await asyncio.wait_for(later.has_turn.wait(), 5)  # type: ignore[attr-defined]
        later.cancel()

    asyncio.run(scenario())
