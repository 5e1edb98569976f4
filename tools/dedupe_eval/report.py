"""The report's sections: pairs, groups per rule, where the best rule errs, second shots.

Every choice (pair thresholds, each rule's setting, the best rule) is made on the tuning
split; the test split and the issue's test are only scored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from imgflow_deduper.decision import Thresholds
from imgflow_deduper.settings import DedupeSettings
from imgflow_deduper.strength import StrongThresholds
from imgflow_runtime.grouping import Rule
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.group_metrics import GroupCounts, group_counts
from tools.dedupe_eval.metrics import Score, best, score
from tools.dedupe_eval.rules import Setting, groups_of, ladder, pair_sweep, predicted
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.splits import TEST, TUNE

# Pair-precision floors: from each, the best pair thresholds, tight to loose. A rule that
# survives loose pairs gets their recall.
FLOORS = (0.999, 0.995, 0.99, 0.98, 0.97, 0.95, 0.93, 0.90, 0.85, 0.80, 0.75)
DENSITIES = (Fraction(1, 2), Fraction(3, 5), Fraction(2, 3), Fraction(3, 4), Fraction(9, 10))
COSINES = np.round(np.arange(0.50, 0.991, 0.005), 3)
ISSUE_TEST = "issue test"
AT_CONFIGURED = "test, configured thresholds"


def subset(t: PairTable, n: int, nodes: np.ndarray) -> PairTable:
    """The pairs among ``nodes`` (sorted indices of the n images), renumbered 0..m-1."""
    i, j = np.triu_indices(len(nodes), k=1)
    a, b = nodes[i], nodes[j]
    rows = a * n - a * (a + 1) // 2 + (b - a - 1)  # position of (a, b) in triu order
    return replace(t.where(rows), i=i, j=j)


@dataclass(frozen=True)
class Split:
    """Some of the images and the pairs among them, ready to group."""

    nodes: np.ndarray  # indices into the whole set
    table: PairTable
    labels: list[str]

    @classmethod
    def of(cls, t: PairTable, items: Sequence[Sample], nodes: np.ndarray) -> Split:
        return cls(nodes, subset(t, len(items), nodes), [items[k].group for k in nodes])

    def groups(self, setting: Setting) -> GroupCounts:
        return group_counts(self.labels, groups_of(self.table, setting))


def configured(rule: Rule) -> Setting:
    th = DedupeSettings().thresholds()
    return Setting(rule, th, StrongThresholds(th.cosine, th.phash_distance))


def settings_for(rule: Rule, th: Thresholds) -> Iterator[Setting]:
    if rule is Rule.STRONG_LINK:
        for up in (0.0, 0.02, 0.04):
            for down in (0, 2, 4):
                strong = StrongThresholds(
                    round(th.cosine + up, 3), max(0, th.phash_distance - down)
                )
                yield Setting(rule, th, strong)
    elif rule is Rule.AVERAGE_LINK:
        for density in DENSITIES:
            yield Setting(rule, th, min_density=density)
    else:
        yield Setting(rule, th)


def choose(split: Split, rule: Rule, steps: Iterable[Thresholds], floor: float) -> Setting:
    """The rule's setting with the best group F1 at group precision >= floor (else the
    most precise), on this split."""
    tried = [(s, split.groups(s)) for th in steps for s in settings_for(rule, th)]
    eligible = [x for x in tried if x[1].precision >= floor]
    if eligible:
        return max(eligible, key=lambda x: (x[1].f1, x[1].precision))[0]
    return max(tried, key=lambda x: (x[1].precision, x[1].f1))[0]


def pooled(splits: Iterable[Split], setting: Setting) -> GroupCounts:
    total = GroupCounts()
    for split in splits:
        total += split.groups(setting)
    return total


def _pair_row(name: str, rule: str, split: str, s: Score) -> str:
    return (
        f"| {name} | {rule} | {split} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
        f"{s.true_positives} | {s.false_positives} | {s.false_negatives} |"
    )


def _group_row(name: str, split: str, c: GroupCounts) -> str:
    return (
        f"| {name} | {split} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | "
        f"{c.pure_share:.3f} | {c.groups} |"
    )


@dataclass(frozen=True)
class PairResult:
    lines: list[str]
    tuned: Thresholds  # best pair F1 at the floor, on the tuning split
    steps: list[Thresholds]  # the ladder the rules choose from


def pairs_section(tune: Split, test: Split, floor: float, with_configured: bool) -> PairResult:
    sweep = pair_sweep(tune.table)
    steps = [th for _, th in ladder(sweep, FLOORS)]
    default = configured(Rule.SINGLE_LINK).thresholds
    if with_configured:  # they fit EfficientNet's cosines only
        steps.append(default)
    tuned = dict(ladder(sweep, (floor,)))[floor]
    cnn = best((score(tune.table.cnn >= c, tune.table.duplicate, float(c)) for c in COSINES),
               floor)  # fmt: skip
    phash = best((score(tune.table.phash_distance <= d, tune.table.duplicate, d)
                  for d in range(25)), floor)  # fmt: skip

    def rows(name: str, th: Thresholds) -> list[str]:
        rule = Setting(Rule.SINGLE_LINK, th).describe()
        return [_pair_row(name, rule, label, score(predicted(s.table, th), s.table.duplicate))
                for label, s in ((TUNE, tune), (TEST, test))]  # fmt: skip

    test_cnn = score(test.table.cnn >= cnn.threshold, test.table.duplicate)
    test_phash = score(test.table.phash_distance <= phash.threshold, test.table.duplicate)
    lines = [
        "## Pairs: the decision alone",
        "",
        "| thresholds | rule | split | precision | recall | F1 | TP | FP | FN |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows("configured", default),
        *rows(f"tuned (best F1 at P >= {floor})", tuned),
        _pair_row("CNN alone, tuned", f"cos >= {cnn.threshold}", TEST, test_cnn),
        _pair_row("pHash alone, tuned", f"pHash <= {int(phash.threshold)}", TEST, test_phash),
        "",
    ]
    return PairResult(lines, tuned, steps)


@dataclass(frozen=True)
class RuleResult:
    lines: list[str]
    chosen: dict[Rule, Setting]
    counts: dict[Rule, dict[str, GroupCounts]]
    leader: Rule  # best group F1 on the tuning split, at the precision floor


def rules_section(
    tune: Split, test: Split, issue_sets: list[Split], steps: list[Thresholds], floor: float
) -> RuleResult:
    lines = [
        "## Groups: each rule",
        "",
        f"Each rule's setting is chosen on the tuning split: the best group F1 at group "
        f"precision >= {floor}, among the best pair thresholds at pair precision "
        f"{', '.join(map(str, FLOORS))} (and the configured ones, for EfficientNet) with "
        f"the rule's own settings. `{ISSUE_TEST}`: the test photos' halves, each with two "
        f"of the issue's edits, {len(issue_sets)} random draws pooled. `{AT_CONFIGURED}`: "
        "the deduper's configured thresholds, the rule's chosen setting otherwise.",
        "",
        "| rule | split | group precision | group recall | group F1 | pure groups | groups |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    chosen: dict[Rule, Setting] = {}
    counts: dict[Rule, dict[str, GroupCounts]] = {}
    for rule in Rule:
        setting = chosen[rule] = choose(tune, rule, steps, floor)
        at_configured = replace(configured(rule), min_density=setting.min_density)
        counts[rule] = {
            TUNE: tune.groups(setting),
            TEST: test.groups(setting),
            ISSUE_TEST: pooled(issue_sets, setting),
            AT_CONFIGURED: test.groups(at_configured),
        }
        lines += [_group_row(str(rule), split, c) for split, c in counts[rule].items()]
    lines += ["", "Settings chosen on the tuning split:", ""]
    lines += [f"- {rule}: {s.describe()}" for rule, s in chosen.items()]
    lines += ["", f"{Rule.AVERAGE_LINK} by its density, at its chosen pair thresholds "
              "(group precision / recall):", "",
              "| density | tune | test | issue test |", "| --- | --- | --- | --- |"]  # fmt: skip
    for density in DENSITIES:
        setting = replace(chosen[Rule.AVERAGE_LINK], min_density=density)
        cells = [tune.groups(setting), test.groups(setting), pooled(issue_sets, setting)]
        lines.append(f"| {density} | " + " | ".join(f"{c.precision:.3f} / {c.recall:.3f}"
                                                    for c in cells) + " |")  # fmt: skip
    eligible = [r for r in Rule if counts[r][TUNE].precision >= floor] or list(Rule)
    leader = max(eligible, key=lambda r: counts[r][TUNE].f1)
    lines += ["", f"Best on the tuning split: {leader}.", ""]
    return RuleResult(lines, chosen, counts, leader)


def errors_section(test: Split, items: Sequence[Sample], rule: Rule, setting: Setting) -> list[str]:
    """Which originals the rule's groups mix, and which edits stay out of their group."""
    groups = groups_of(test.table, setting)
    mixed: Counter[str] = Counter()
    for members in groups:
        by_label = sorted(Counter(test.labels[k] for k in members).items())
        for k, (a, na) in enumerate(by_label):
            for b, nb in by_label[k + 1 :]:
                mixed[f"{a} + {b}"] += na * nb
    member_of = {k: g for g, members in enumerate(groups) for k in members}
    missed: Counter[str] = Counter()
    t = test.table
    for k in np.flatnonzero(t.duplicate):
        a, b = int(t.i[k]), int(t.j[k])
        if member_of.get(a, -1) != member_of.get(b, -2):
            missed.update({items[test.nodes[a]].edit, items[test.nodes[b]].edit})
    return [
        f"## Where {rule} errs on the test split",
        "",
        "Wrong pairs in groups, by the originals mixed: "
        + (", ".join(f"{k} ({v})" for k, v in mixed.most_common(8)) or "none") + ".",
        "",
        "Edits most involved in duplicate pairs left out of a group: "
        + (", ".join(f"{e} {n}" for e, n in missed.most_common(8)) or "none") + ".",
        "",
    ]  # fmt: skip


def second_shots_section(shots: Split, chosen: dict[Rule, Setting]) -> list[str]:
    first, second = sorted(set(shots.labels))
    cross = shots.table.where(~shots.table.duplicate)
    grouped = ", ".join(
        f"{rule} {c.predicted_pairs - c.correct_pairs}/{len(cross.i)}"
        for rule, c in ((r, shots.groups(s)) for r, s in chosen.items())
    )
    return [
        "## Another shot of one scene (not scored)",
        "",
        f"{first} and {second}, a stereo pair a few centimetres apart, 20 images each: "
        f"their best CNN similarity {cross.cnn.max():.3f}, least pHash distance "
        f"{cross.phash_distance.min()}. Pairs across the two shots put in one group, by "
        f"rule: {grouped}.",
        "",
    ]
