"""Tuning and test splits by source photograph, and the issue's held-out sets.

Every image made from one photograph (its halves, their edits, its burst frame) lands in
the same split, so no threshold is chosen on a copy of a test image. The split photos
and the whole ones alternate in name order, so both splits hold both kinds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np

from tools.dedupe_eval.dataset import SPLIT_SCENES, Sample
from tools.dedupe_eval.edits import ISSUE_EDITS

TUNE, TEST = "tune", "test"


def split_of(scenes: Sequence[str]) -> dict[str, str]:
    out = {}
    for kind in (sorted(s for s in set(scenes) if s in SPLIT_SCENES),
                 sorted(s for s in set(scenes) if s not in SPLIT_SCENES)):  # fmt: skip
        for k, scene in enumerate(kind):
            out[scene] = TUNE if k % 2 == 0 else TEST
    return out


def indices(samples: Sequence[Sample], split: str) -> np.ndarray:
    of = split_of([s.scene for s in samples])
    return np.array([k for k, s in enumerate(samples) if of[s.scene] == split])


def issue_sets(
    samples: Sequence[Sample], split: str, draws: int, seed: int = 12
) -> Iterator[np.ndarray]:
    """The issue's user test, drawn ``draws`` times: the left and right halves of the
    split's photos, each with two of the issue's edits chosen at random."""
    rng = random.Random(seed)
    of = split_of([s.scene for s in samples])
    where = {(s.group, s.edit): k for k, s in enumerate(samples)}
    halves = sorted({s.group for s in samples
                     if s.shot in ("left", "right") and of[s.scene] == split})  # fmt: skip
    for _ in range(draws):
        chosen = []
        for group in halves:
            edits = ["original", *rng.sample(ISSUE_EDITS, 2)]
            chosen += [where[(group, e)] for e in edits]
        yield np.array(sorted(chosen))
