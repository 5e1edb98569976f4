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


def issue_draws(
    groups: Sequence[str], draws: int, seed: int = 12
) -> Iterator[list[tuple[str, str]]]:
    """The issue's user test, drawn ``draws`` times: each of ``groups`` (halves) with its
    original and two of the issue's edits chosen at random, as (group, edit)."""
    rng = random.Random(seed)
    for _ in range(draws):
        yield [(group, edit) for group in sorted(groups)
               for edit in ("original", *rng.sample(ISSUE_EDITS, 2))]  # fmt: skip


def split_halves(scenes: Sequence[str], split: str) -> list[str]:
    """The groups of the halves of ``split``'s photos (``scenes``: every photo's name)."""
    of = split_of(scenes)
    return sorted(f"{scene}#{side}" for scene in set(scenes)
                  if scene in SPLIT_SCENES and of[scene] == split
                  for side in ("left", "right"))  # fmt: skip


def issue_sets(
    samples: Sequence[Sample], split: str, draws: int, seed: int = 12
) -> Iterator[np.ndarray]:
    """The issue's user test (``issue_draws``) as indices into ``samples``: the left and
    right halves of the split's photos, each with two of the issue's edits."""
    where = {(s.group, s.edit): k for k, s in enumerate(samples)}
    halves = split_halves([s.scene for s in samples], split)
    for draw in issue_draws(halves, draws, seed):
        yield np.array(sorted(where[key] for key in draw))
