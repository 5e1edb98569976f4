"""Precision, recall and F1 over duplicate pairs, and threshold sweeps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Score:
    threshold: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    false_negatives: int


def score(predicted: np.ndarray, actual: np.ndarray, threshold: float = float("nan")) -> Score:
    tp = int(np.count_nonzero(predicted & actual))
    fp = int(np.count_nonzero(predicted & ~actual))
    fn = int(np.count_nonzero(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(threshold, precision, recall, f1, tp, fp, fn)


def best(scores: Iterable[Score], min_precision: float) -> Score:
    """Highest F1 among thresholds meeting the precision floor (else highest precision)."""
    scores = list(scores)
    eligible = [s for s in scores if s.precision >= min_precision]
    if eligible:
        return max(eligible, key=lambda s: (s.f1, s.precision))
    return max(scores, key=lambda s: (s.precision, s.f1))
