from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID

from imgflow_upload_api.duplicates.keeper import Candidate, suggest_keeper

T0 = datetime(2026, 1, 1, 12, 0)


def member(n: int, **facts: object) -> Candidate:
    base = Candidate(
        id=UUID(int=n),
        width=1000,
        height=800,
        format="JPEG",
        byte_size=500_000,
        captured_at=None,
        has_exif=False,
        created_at=T0 + timedelta(minutes=n),
    )
    return replace(base, **facts)  # type: ignore[arg-type]


def test_most_pixels_wins_over_everything_after_it() -> None:
    big = member(1, width=4000, height=3000, format="WEBP", byte_size=10)
    small = member(2, has_exif=True, captured_at=T0, byte_size=9_000_000)
    assert suggest_keeper([small, big]) == suggest_keeper([big, small])
    s = suggest_keeper([small, big])
    assert s is not None and s.id == big.id and s.reasons == ("most-pixels",)


def test_an_original_format_beats_a_re_encode_of_the_same_size() -> None:
    webp = member(1, format="WEBP", byte_size=900_000)
    jpeg = member(2, format="JPEG", byte_size=100_000)
    s = suggest_keeper([webp, jpeg])
    assert s is not None and s.id == jpeg.id and s.reasons == ("original-format",)


def test_then_the_larger_file_then_the_earliest_capture_then_exif() -> None:
    larger = member(1, byte_size=600_000)
    earlier = member(2, captured_at=T0)
    later = member(3, captured_at=T0 + timedelta(hours=1), has_exif=True)
    exif = member(4, has_exif=True)
    plain = member(5)
    assert suggest_keeper([plain, earlier, larger]).id == larger.id  # type: ignore[union-attr]
    s = suggest_keeper([later, exif, earlier, plain])
    assert s is not None and s.id == earlier.id and s.reasons == ("earliest-capture",)
    s = suggest_keeper([plain, exif])
    assert s is not None and s.id == exif.id and s.reasons == ("has-exif",)


def test_several_reasons_are_listed_in_order() -> None:
    keeper = member(1, width=2000, height=1600, byte_size=900_000, has_exif=True)
    copy = member(2, format="WEBP", byte_size=100_000)
    s = suggest_keeper([copy, keeper])
    assert s is not None and s.reasons == (
        "most-pixels",
        "original-format",
        "largest-file",
        "has-exif",
    )


def test_identical_facts_fall_back_to_the_earliest_upload_in_any_order() -> None:
    members = [member(n) for n in range(5)]
    for seed in range(5):
        shuffled = members[:]
        random.Random(seed).shuffle(shuffled)
        s = suggest_keeper(shuffled)
        assert s is not None and s.id == members[0].id and s.reasons == ("earliest-upload",)


def test_no_members_no_suggestion() -> None:
    assert suggest_keeper([]) is None


def test_a_listed_groups_keeper_comes_from_its_jsonb_facts() -> None:
    """The listing reads member facts as jsonb (ids and times as strings); the keeper must
    be the one the detail, with typed rows, suggests."""
    from imgflow_upload_api.duplicates.service import summary_keeper

    small = {
        "id": "00000000-0000-0000-0000-000000000001",
        "width": 100,
        "height": 100,
        "format": "JPEG",
        "byte_size": 1000,
        "captured_at": "2026-01-01T10:00:00",
        "has_exif": True,
        "created_at": "2026-12-02T16:00:00.123456+00:00",
    }
    large = {**small, "id": "00000000-0000-0000-0000-000000000002", "width": 200}
    keeper = summary_keeper([small, large])
    assert keeper is not None and str(keeper.id) == large["id"]
    assert keeper.reasons[0] == "most-pixels"
