from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from imgflow_upload_api.stacks.pick import Frame, suggest_pick

T0 = datetime(2026, 1, 1, 12, 0)


def frame(n: int, **facts: object) -> Frame:
    base = Frame(
        id=UUID(int=n),
        sharpness=100.0,
        width=1000,
        height=800,
        metadata=0,
        created_at=T0 + timedelta(minutes=n),
    )
    return replace(base, **facts)  # type: ignore[arg-type]


def test_the_sharpest_frame_wins_over_a_larger_one_with_more_metadata() -> None:
    sharp = frame(2, sharpness=900.0)
    blurred = frame(1, sharpness=40.0, width=4000, height=3000, metadata=5)
    pick = suggest_pick([blurred, sharp])
    assert pick is not None
    assert (pick.id, pick.reasons) == (sharp.id, ("sharpest",))


def test_an_unmeasured_frame_is_never_the_sharpest() -> None:
    unknown = frame(1, sharpness=None, width=4000, height=3000)
    measured = frame(2, sharpness=1.0)
    pick = suggest_pick([unknown, measured])
    assert pick is not None and pick.id == measured.id


def test_equal_sharpness_falls_to_size_then_metadata() -> None:
    large = frame(1, width=2000, height=1500)
    tagged = frame(2, metadata=3)
    pick = suggest_pick([tagged, large])
    assert pick is not None and (pick.id, pick.reasons) == (large.id, ("largest",))
    pick = suggest_pick([frame(3), tagged])
    assert pick is not None and (pick.id, pick.reasons) == (tagged.id, ("most-metadata",))


def test_all_equal_is_the_earliest_upload_in_any_order() -> None:
    frames = [frame(n) for n in range(5)]
    picks = set()
    for seed in range(5):
        random.Random(seed).shuffle(frames)
        picks.add(suggest_pick(frames))
    assert len(picks) == 1
    [pick] = picks
    assert pick is not None and (pick.id, pick.reasons) == (UUID(int=0), ("earliest-upload",))


def test_no_frames_no_pick() -> None:
    assert suggest_pick([]) is None
