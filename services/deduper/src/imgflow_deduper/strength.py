"""From a pair's duplicate decision to the grouping's ``Pair``: its score and strength.

A pair is *strong* when one signal alone is sure of it (equal bytes, the CNN at or above
``cosine``, pHash at or below ``phash_distance``); the combined rule's pairs, which need
both signals half-sure, are weak unless one of them also clears its strong threshold.
The issue that brought groups in was one weak cnn+phash pair (cosine 0.83, distance 22)
fusing two photos' groups: ``Rule.STRONG_LINK`` groups on strong pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgflow_deduper.decision import Decision, Method, PairSignals
from imgflow_runtime.grouping import N, Pair


@dataclass(frozen=True)
class StrongThresholds:
    cosine: float  # the CNN alone, at or above
    phash_distance: int  # pHash alone, at or below


def is_strong(decision: Decision, signals: PairSignals, t: StrongThresholds) -> bool:
    if decision.method is Method.SHA256:
        return True
    cnn, distance = signals.cnn, signals.phash_distance
    return (cnn is not None and cnn >= t.cosine) or (
        distance is not None and distance <= t.phash_distance
    )


def to_pair(a: N, b: N, decision: Decision, signals: PairSignals, t: StrongThresholds) -> Pair[N]:
    return Pair(a, b, decision.score, is_strong(decision, signals, t))
