"""What a person sees: groups. Scored by the pairs they imply, and by how many are pure.

A group of n images says n(n-1)/2 pairs are duplicates. Precision is the share of those
that are; recall the share of the labelled duplicate pairs that share a group; F1 their
harmonic mean. A group is pure when every member comes from one original: a person who
keeps one image of an impure group and trashes the rest loses a different photo.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupCounts:
    true_pairs: int = 0  # labelled duplicate pairs
    predicted_pairs: int = 0  # pairs inside predicted groups
    correct_pairs: int = 0  # both
    groups: int = 0  # predicted groups (two members or more)
    pure_groups: int = 0

    def __add__(self, other: GroupCounts) -> GroupCounts:
        return GroupCounts(*(a + b for a, b in zip(self.row(), other.row(), strict=True)))

    def row(self) -> tuple[int, int, int, int, int]:
        return (self.true_pairs, self.predicted_pairs, self.correct_pairs, self.groups,
                self.pure_groups)  # fmt: skip

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def pure_share(self) -> float:
        return self.pure_groups / self.groups if self.groups else 1.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def group_counts(labels: Sequence[str], groups: Iterable[Iterable[int]]) -> GroupCounts:
    """Score predicted ``groups`` (of indices into ``labels``) against the labels."""
    true_pairs = sum(_pairs(n) for n in Counter(labels).values())
    predicted = correct = count = pure = 0
    for members in groups:
        by_label = Counter(labels[k] for k in members)
        size = sum(by_label.values())
        if size < 2:
            continue
        count += 1
        pure += len(by_label) == 1
        predicted += _pairs(size)
        correct += sum(_pairs(n) for n in by_label.values())
    return GroupCounts(true_pairs, predicted, correct, count, pure)


def stack_counts(
    labels: Sequence[str], scenes: Sequence[str], stacks: Iterable[Iterable[int]]
) -> GroupCounts:
    """Score similar ``stacks`` (of indices) on the pairs of different originals
    (``labels``): precision, the share of those in a stack that are of one scene;
    recall, the share of the labelled similar pairs (one scene, two originals) in one."""
    shots = Counter(zip(scenes, labels, strict=True))
    per_scene = Counter(scenes)
    true_pairs = sum(_pairs(n) for n in per_scene.values()) - sum(_pairs(n) for n in shots.values())
    predicted = correct = count = pure = 0
    for members in stacks:
        members = list(members)
        if len(members) < 2:
            continue
        count += 1
        pure += len({scenes[k] for k in members}) == 1
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if labels[a] != labels[b]:
                    predicted += 1
                    correct += scenes[a] == scenes[b]
    return GroupCounts(true_pairs, predicted, correct, count, pure)
