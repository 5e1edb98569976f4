"""What the grid choices on the tuning split share (overlay_floor.py, inlier_spread.py).

The labelled set's tuning and test splits with their hard cases (hard_cases.py, tuning
photos only), each candidate scored on both, and the choice among them: duplicate-group
precision >= ``FLOOR`` on both first, then the best sum of duplicate-group and stack F1
over both, then the similar pairs' own F1 (relations.similar_pair_f1, summed), then the
grid's order. Once in one place, so a later choice is made exactly as the earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.dedupe_eval import hard_cases, unseen
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.dataset import samples as labelled_samples
from tools.dedupe_eval.image_signals import ModelSpec
from tools.dedupe_eval.relations import Outcome, outcome, similar_pair_f1
from tools.dedupe_eval.report import Split
from tools.dedupe_eval.rules import Setting
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.splits import TEST, TUNE, indices

FLOOR = 0.98


@dataclass(frozen=True)
class Tried:
    setting: Setting
    tune: Outcome
    hard: Outcome
    pair_f1: float  # similar_pair_f1, tuning split + hard cases


@dataclass(frozen=True)
class TuningSets:
    """The labelled samples' tuning and test splits, and the tuning split's hard cases."""

    everything: list[Sample]
    tune: Split
    test: Split
    hard: list[Sample]
    hard_table: PairTable
    hard_split: Split

    @classmethod
    def load(cls, spec: ModelSpec, cache: Path) -> TuningSets:
        from tools.dedupe_eval.__main__ import with_geometry

        everything = list(labelled_samples())
        full, _ = with_geometry(everything, spec, cache)
        hard = hard_cases.samples()
        hard_table, _ = with_geometry(hard, spec, cache)
        return cls(
            everything,
            Split.of(full, everything, indices(everything, TUNE)),
            Split.of(full, everything, indices(everything, TEST)),
            hard,
            hard_table,
            Split.of(hard_table, hard, np.arange(len(hard))),
        )

    @property
    def tune_scenes(self) -> list[str]:
        return [self.everything[k].scene for k in self.tune.nodes]

    @property
    def test_scenes(self) -> list[str]:
        return [self.everything[k].scene for k in self.test.nodes]

    @property
    def hard_scenes(self) -> list[str]:
        return [s.scene for s in self.hard]

    def try_all(self, settings: list[Setting]) -> list[Tried]:
        """Each setting scored on the tuning split and on its hard cases, in order."""
        tune_scenes, hard_scenes = self.tune_scenes, self.hard_scenes
        return [
            Tried(
                s,
                outcome(self.tune, tune_scenes, s),
                outcome(self.hard_split, hard_scenes, s),
                similar_pair_f1(self.tune, s) + similar_pair_f1(self.hard_split, s),
            )
            for s in settings
        ]


def choose(tried: list[Tried]) -> Setting:
    """``tried`` in the grid's order; ``max`` keeps the first of ties."""
    ok = [x for x in tried if min(x.tune.groups.precision, x.hard.groups.precision) >= FLOOR]
    best = max(ok or tried, key=lambda x: (round(_f1s(x.tune) + _f1s(x.hard), 6),
                                           round(x.pair_f1, 3)))  # fmt: skip
    return best.setting


def unseen_split(
    photo_set: unseen.PhotoSet, spec: ModelSpec, cache: Path
) -> tuple[Split, list[str]]:
    """A whole unseen set as one split, with its images' scenes."""
    from tools.dedupe_eval.__main__ import with_geometry

    items = unseen.samples(photo_set=photo_set)
    table, _ = with_geometry(items, spec, cache)
    return Split.of(table, items, np.arange(len(items))), [s.scene for s in items]


def pr(o: Outcome) -> str:
    """Groups and stacks precision / recall, as the reports' table cells."""
    g, s = o.groups, o.stacks
    return f"{g.precision:.3f} / {g.recall:.3f} | {s.precision:.3f} / {s.recall:.3f}"


def _f1s(o: Outcome) -> float:
    return o.groups.f1 + o.stacks.f1
