"""The duplicate decision as a plain function: each rule, and which signal wins."""

from __future__ import annotations

import pytest

from imgflow_deduper.decision import Method, PairSignals, Thresholds, decide, phash_distance

T = Thresholds(cosine=0.94, phash_distance=8, combined_cosine=0.80, combined_phash_distance=20)


@pytest.mark.parametrize(
    ("signals", "method"),
    [
        (PairSignals(same_sha256=True), Method.SHA256),
        (PairSignals(same_sha256=True, cosine=0.1, phash_distance=40), Method.SHA256),
        (PairSignals(cosine=0.94), Method.CNN),
        (PairSignals(cosine=0.97, phash_distance=2), Method.CNN),
        (PairSignals(cosine=0.85, phash_distance=20), Method.COMBINED),
        (PairSignals(phash_distance=8), Method.PHASH),
        (PairSignals(cosine=0.5, phash_distance=3), Method.PHASH),
    ],
)
def test_duplicates_and_the_deciding_signal(signals: PairSignals, method: Method) -> None:
    decision = decide(signals, T)
    assert decision is not None
    assert decision.method is method
    assert 0.0 <= decision.score <= 1.0


@pytest.mark.parametrize(
    "signals",
    [
        PairSignals(),
        PairSignals(cosine=0.939),
        PairSignals(phash_distance=9),
        PairSignals(cosine=0.85, phash_distance=21),
        PairSignals(cosine=0.79, phash_distance=10),
        # a missing pHash cannot make the combined rule fire
        PairSignals(cosine=0.9, phash_distance=None),
    ],
)
def test_not_duplicates(signals: PairSignals) -> None:
    assert decide(signals, T) is None


def test_scores() -> None:
    assert decide(PairSignals(cosine=0.96), T).score == pytest.approx(0.96)  # type: ignore[union-attr]
    assert decide(PairSignals(phash_distance=4), T).score == pytest.approx(1 - 4 / 64)  # type: ignore[union-attr]


def test_phash_distance_of_signed_int64s() -> None:
    # The hasher stores 64-bit hashes as signed bigints: the top bit is the sign.
    assert phash_distance(-1, 0) == 64
    assert phash_distance(-(2**63), 2**63 - 1) == 64
    assert phash_distance(0b1011, 0b0001) == 2
    assert phash_distance(-5, -5) == 0


def test_a_close_sub_view_makes_a_cropped_copy_a_cnn_duplicate() -> None:
    cropped = PairSignals(cosine=0.86, view_cosine=0.97)
    assert PairSignals(cosine=0.86, view_cosine=0.97).cnn == 0.97
    decision = decide(cropped, T)
    assert decision is not None
    assert (decision.method, decision.score) == (Method.CNN, 0.97)
    assert decide(PairSignals(cosine=0.86, view_cosine=0.90), T) is None
    assert PairSignals().cnn is None
