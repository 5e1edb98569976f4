"""What the grid choices on the tuning split share (overlay_floor, copy_agreement, inlier_spread,
keypoint_spread): the candidates (``geometry_grid``, ``geometry_label``), scoring, choice.

The labelled set's tuning and test splits with their hard cases (hard_cases.py, tuning
photos only), each candidate scored on both, and the choice among them: duplicate-group
precision >= ``FLOOR`` on both first, then the best sum of duplicate-group and stack F1
over both, then the similar pairs' own F1 (relations.similar_pair_f1, summed), then the
grid's order. Once in one place, so a later choice is made exactly as the earlier ones.

The tuning split's draws (stacks7, ``try_all(..., draws=True)``): the tuning split as a
library holds it, a few images a shot. ``TUNE_DRAWS`` draws (seed ``TUNE_DRAW_SEED``, both
fixed before any figure), each every tuning shot's original and two of the issue's edits,
as ``through_api.unseen_draws`` picks them for the unseen sets; their groups and stacks
counted per draw and pooled. With draws the criterion's sum is over three sets (tune, hard
cases, tune draws), the draws one more set; the precision gate and the tie-breaks are
unchanged. At 20 images a shot a stray pair across scenes is a density of 1/400 and joins
nothing; at 3 it bridges two scenes' stacks, which is what a user with a few shots a scene
meets. Without draws the criterion is the earlier one (overlay_floor, and stacks5's and
stacks6's choices as documented; copy_agreement scores the draws since stacks8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path

import numpy as np

from imgflow_deduper.overlap import DETECTOR, Detector
from tools.dedupe_eval import hard_cases, unseen
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.dataset import samples as labelled_samples
from tools.dedupe_eval.group_metrics import GroupCounts
from tools.dedupe_eval.image_signals import ModelSpec
from tools.dedupe_eval.relations import Outcome, outcome, similar_pair_f1
from tools.dedupe_eval.report import Split, subset
from tools.dedupe_eval.rules import Setting, related
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.splits import TEST, TUNE, indices, issue_draws

FLOOR = 0.98
# the tuning split's draws: fixed before any figure (stacks7); 3 images a shot, as the API runs
TUNE_DRAWS, TUNE_DRAW_SEED = 5, 31


@dataclass(frozen=True)
class Tried:
    setting: Setting
    tune: Outcome
    hard: Outcome
    pair_f1: float  # similar_pair_f1, tuning split + hard cases
    draws: Outcome | None = None  # the tuning split's draws, pooled (None: not scored)
    bridges: int = 0  # pairs of two scenes called related, summed over the draws


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
    def load(
        cls, spec: ModelSpec, cache: Path, detector: Detector = DETECTOR, test: bool = True
    ) -> TuningSets:
        """The sets with ``detector``'s geometry, each split's pairs checked (and cached)
        apart; with ``test`` False the test split is empty and none of its pairs is
        checked (keypoint_choice: a candidate's geometry costs minutes, and nothing of the
        test split is read to choose)."""
        from tools.dedupe_eval.__main__ import with_geometry

        everything = list(labelled_samples())
        tune, tested = indices(everything, TUNE), indices(everything, TEST)
        tuning, _ = with_geometry(everything, spec, cache, detector=detector, among=tune)
        testing = tuning
        if test:
            testing, _ = with_geometry(everything, spec, cache, detector=detector, among=tested)
        hard = hard_cases.samples()
        hard_table, _ = with_geometry(hard, spec, cache, detector=detector)
        return cls(
            everything,
            Split.of(tuning, everything, tune),
            Split.of(testing, everything, tested if test else tune[:0]),
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

    def tune_draws(
        self, draws: int = TUNE_DRAWS, seed: int = TUNE_DRAW_SEED
    ) -> list[tuple[Split, list[str]]]:
        """The tuning split as a library holds it: ``draws`` draws, each every tuning
        shot's original and two of the issue's edits (``splits.issue_draws``), with their
        images' scenes. Tuning images only: the draws are subsets of ``self.tune``."""
        tune = [self.everything[k] for k in self.tune.nodes]
        where = {(s.group, s.edit): p for p, s in enumerate(tune)}
        out = []
        for draw in issue_draws(sorted({s.group for s in tune}), draws, seed):
            local = np.array(sorted(where[key] for key in draw))
            table = subset(self.tune.table, len(tune), local)
            split = Split(self.tune.nodes[local], table, [tune[p].group for p in local])
            out.append((split, [tune[p].scene for p in local]))
        return out

    def try_all(self, settings: list[Setting], draws: bool = False) -> list[Tried]:
        """Each setting scored on the tuning split and on its hard cases, in order; with
        ``draws`` on the tuning split's draws too (pooled)."""
        tune_scenes, hard_scenes = self.tune_scenes, self.hard_scenes
        drawn = self.tune_draws() if draws else []
        return [
            Tried(
                s,
                outcome(self.tune, tune_scenes, s),
                outcome(self.hard_split, hard_scenes, s),
                similar_pair_f1(self.tune, s) + similar_pair_f1(self.hard_split, s),
                pooled([outcome(split, sc, s) for split, sc in drawn]) if draws else None,
                sum(bridges(split, s) for split, _ in drawn),
            )
            for s in settings
        ]


def geometry_grid(base: Setting, **grid: Sequence[object]) -> list[Setting]:
    """The candidates of a grid over ``GeometryThresholds`` fields: ``base`` with each
    combination of the fields' values (``itertools.product``, the first field outermost),
    the grid's order kept, so ``choose``'s ties keep the earliest."""
    assert base.geometry is not None
    return [
        replace(base, geometry=replace(base.geometry, **dict(zip(grid, values, strict=True))))
        for values in product(*grid.values())
    ]


def geometry_label(*fields: str) -> Callable[[Setting], str]:
    """A candidate's row label: its values of ``fields``, as table cells."""

    def label(s: Setting) -> str:
        assert s.geometry is not None
        return " | ".join(str(getattr(s.geometry, f)) for f in fields)

    return label


def pooled(outcomes: list[Outcome]) -> Outcome:
    out = Outcome(GroupCounts(), GroupCounts())
    for o in outcomes:
        out = Outcome(out.groups + o.groups, out.stacks + o.stacks)
    return out


def bridges(split: Split, setting: Setting) -> int:
    """Pairs of two scenes the setting calls related (duplicate or similar)."""
    t = split.table
    r = related(t, setting.thresholds, setting.geometry, setting.probe_cosine)
    return int(np.count_nonzero((r.duplicate | r.similar) & ~t.duplicate & ~t.similar))


def choose(tried: list[Tried]) -> Setting:
    """``tried`` in the grid's order; ``max`` keeps the first of ties. The draws, where
    scored, are one more set in the sum (not in the precision gate)."""
    ok = [x for x in tried if min(x.tune.groups.precision, x.hard.groups.precision) >= FLOOR]
    best = max(ok or tried, key=lambda x: (round(score(x), 6), round(x.pair_f1, 3)))
    return best.setting


def score(x: Tried) -> float:
    """The criterion's sum of duplicate-group and stack F1 over the sets scored."""
    return _f1s(x.tune) + _f1s(x.hard) + (_f1s(x.draws) if x.draws is not None else 0.0)


def unseen_split(
    photo_set: unseen.PhotoSet, spec: ModelSpec, cache: Path
) -> tuple[Split, list[str]]:
    """A whole unseen set as one split, with its images' scenes."""
    from tools.dedupe_eval.__main__ import with_geometry

    items = unseen.samples(photo_set=photo_set)
    table, _ = with_geometry(items, spec, cache)
    return Split.of(table, items, np.arange(len(items))), [s.scene for s in items]


def criterion_line(without_draws: bool) -> str:
    """The reports' line saying what the choice was scored on."""
    return "Criterion: " + (
        "tune + hard cases (before stacks7)."
        if without_draws
        else f"tune + hard cases + the tuning split's {TUNE_DRAWS} draws (seed "
        f"{TUNE_DRAW_SEED}, 3 images a shot), the draws pooled as one more set."
    )


# The candidates' table's columns after the label's: (header, alignment) cells.
_TRIED_COLUMNS = (
    ("tune: groups P / R", "---"),
    ("tune: stacks P / R", "---"),
    ("hard: groups P / R", "---"),
    ("hard: stacks P / R", "---"),
    ("pair F1 (sum)", "---:"),
)
_DRAWN_COLUMNS = (
    ("tune draws: groups P / R", "---"),
    ("tune draws: stacks P / R", "---"),
    ("bridges in the draws", "---:"),
)


def tried_table(
    label_columns: Sequence[tuple[str, str]],
    tried: Sequence[Tried],
    chosen: Setting,
    label: Callable[[Setting], object],
    with_draws: bool = False,
) -> list[str]:
    """The reports' table of candidates with its header: ``label_columns`` are the
    (header, alignment) cells of what ``label`` writes, the rest are ``_tried_rows``'."""
    columns = [*label_columns, *_TRIED_COLUMNS, *(_DRAWN_COLUMNS if with_draws else ())]
    return [
        "| " + " | ".join(name for name, _ in columns) + " |",
        "| " + " | ".join(align for _, align in columns) + " |",
        *_tried_rows(tried, chosen, label, with_draws),
    ]


def _tried_rows(
    tried: Sequence[Tried],
    chosen: Setting,
    label: Callable[[Setting], object],
    with_draws: bool = False,
) -> list[str]:
    """The reports' table of candidates: the label's cells, tune and hard cases P / R,
    the pair F1 (with ``with_draws``, then the draws' P / R and bridges), the chosen one
    marked."""

    def drawn(x: Tried) -> str:
        return "- | - | -" if x.draws is None else f"{pr(x.draws)} | {x.bridges}"

    return [
        f"| {label(x.setting)} | {pr(x.tune)} | {pr(x.hard)} | {x.pair_f1:.3f} |"
        + (f" {drawn(x)} |" if with_draws else "")
        + (" **chosen**" if x.setting is chosen else "")
        for x in tried
    ]


def pr(o: Outcome) -> str:
    """Groups and stacks precision / recall, as the reports' table cells."""
    g, s = o.groups, o.stacks
    return f"{g.precision:.3f} / {g.recall:.3f} | {s.precision:.3f} / {s.recall:.3f}"


def _f1s(o: Outcome) -> float:
    return o.groups.f1 + o.stacks.f1
