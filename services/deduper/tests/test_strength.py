"""Which duplicate pairs may group on their own: one signal alone sure of it."""

from __future__ import annotations

import pytest

from imgflow_deduper.decision import PairSignals, Thresholds, decide
from imgflow_deduper.strength import StrongThresholds, is_strong, to_pair

DECIDE = Thresholds(
    cosine=0.91, phash_distance=11, combined_cosine=0.82, combined_phash_distance=22
)
STRONG = StrongThresholds(cosine=0.93, phash_distance=8)


@pytest.mark.parametrize(
    ("signals", "strong"),
    [
        (PairSignals(same_sha256=True), True),
        (PairSignals(cosine=0.95, phash_distance=30), True),
        (PairSignals(cosine=0.5, view_cosine=0.94), True),  # a crop met a sub-view
        (PairSignals(cosine=0.5, phash_distance=6), True),
        (PairSignals(cosine=0.92, phash_distance=30), False),  # a duplicate, not sure enough
        (PairSignals(cosine=0.83, phash_distance=22), False),  # the weak pair
        (PairSignals(phash_distance=10), False),
    ],
)
def test_strong_pairs(signals: PairSignals, strong: bool) -> None:
    decision = decide(signals, DECIDE)
    assert decision is not None
    assert is_strong(decision, signals, STRONG) is strong
    pair = to_pair("a", "b", decision, signals, STRONG)
    assert (pair.a, pair.b, pair.score, pair.strong) == ("a", "b", decision.score, strong)
