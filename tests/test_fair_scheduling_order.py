"""The relay's publishing order (jobs/fair_order.py, jobs/relay.rooms): plain functions,
tested directly."""

from __future__ import annotations

from collections import Counter

from imgflow_runtime.db.outbox import BULK, KINDS, UPLOAD
from imgflow_upload_api.jobs.fair_order import FairOrder
from imgflow_upload_api.jobs.relay import rooms


def _lanes(**tenants: tuple[str, range]) -> dict[tuple[str, str], list[int]]:
    """Rows are their outbox ids; a tenant's lane is its kind and its ids."""
    return {(kind, name): list(ids) for name, (kind, ids) in tenants.items()}


def _pick(order: FairOrder, lanes, room: int, weights=None) -> list[int]:
    return order.pick(lanes, weights or {}, room, seq=lambda row: row)


def _owner(lanes, row: int) -> str:
    return next(t for (_, t), rows in lanes.items() if row in rows)


def test_a_late_small_tenant_is_served_next_not_after_the_flood() -> None:
    lanes = _lanes(flood=(UPLOAD, range(1, 1001)), trickle=(UPLOAD, range(5000, 5003)))
    picked = _pick(FairOrder(KINDS), lanes, room=6)
    assert [_owner(lanes, r) for r in picked] == ["flood", "trickle"] * 3


def test_uploads_go_before_bulk_work_whatever_their_age() -> None:
    lanes = _lanes(importer=(BULK, range(1, 100)), newcomer=(UPLOAD, range(500, 502)))
    picked = _pick(FairOrder(KINDS), lanes, room=4)
    assert picked == [500, 501, 1, 2]


def test_weights_share_the_turns() -> None:
    lanes = _lanes(gold=(UPLOAD, range(0, 1000)), basic=(UPLOAD, range(1000, 2000)))
    picked = _pick(FairOrder(KINDS), lanes, room=300, weights={"gold": 3, "basic": 1})
    shares = Counter(_owner(lanes, r) for r in picked)
    assert shares == {"gold": 225, "basic": 75}


def test_turns_carry_over_between_passes_of_one_row() -> None:
    # The relay often has room for one message only: the turns must not restart then,
    # or the tenant with the oldest row would win every pass.
    order = FairOrder(KINDS)
    lanes = _lanes(flood=(UPLOAD, range(1, 1001)), trickle=(UPLOAD, range(5000, 5003)))
    owners = []
    for _ in range(6):
        [row] = _pick(order, lanes, room=1)
        owners.append(_owner(lanes, row))
        for rows in lanes.values():
            if row in rows:
                rows.remove(row)
    assert owners == ["flood", "trickle"] * 3


def test_idling_earns_no_credit() -> None:
    order = FairOrder(KINDS)
    busy = _lanes(a=(UPLOAD, range(0, 100)))
    for _ in range(50):
        [row] = _pick(order, busy, room=1)
        busy[(UPLOAD, "a")].remove(row)
    # b arrives after a was served 50 times alone: it alternates with a from now on,
    # it does not get 50 turns in a row.
    lanes = {**busy, (UPLOAD, "b"): list(range(1000, 1010))}
    picked = _pick(order, lanes, room=6)
    assert Counter(_owner(lanes, r) for r in picked) == {"a": 3, "b": 3}


def test_rooms_top_each_queue_up_to_its_target() -> None:
    assert rooms({"thumbnails": 3, "hashing": 0, "dedupe": 9}, target_depth=8) == {
        "thumbnails": 5,
        "hashing": 8,
        "dedupe": 0,
    }
