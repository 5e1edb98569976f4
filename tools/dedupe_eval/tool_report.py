"""What the tuning tools' reports end with (overlay_floor, copy_agreement, inlier_spread,
keypoint_spread, similar_cosine): the table after the choice, with the unseen sets' API
draws replayed offline, and the report printed and written out with its run time.
stack_misses reads the same draws (``api_draws``) and writes its report the same way.

Each tool keeps its own choices (which rules it compares and under what names, which
unseen sets, its report's file name); only how they are scored and written is here, so
every report reads the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from tools.dedupe_eval import unseen
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.image_signals import ModelSpec
from tools.dedupe_eval.relations import Outcome, outcome
from tools.dedupe_eval.report import Split, subset
from tools.dedupe_eval.rules import Setting
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.tuning_choice import pooled, pr, unseen_split


def _same(t: PairTable) -> PairTable:
    return t


def api_draws(
    photo_set: unseen.PhotoSet,
    spec: ModelSpec,
    cache: Path,
    n: int = 3,
    table_of: Callable[[PairTable], PairTable] = _same,
) -> list[tuple[Split, list[Sample]]]:
    """The through-API run's draws of an unseen set (3 images a shot: ``unseen_draws``),
    each as a split (on ``table_of`` the pairs' table) with its images, in its order."""
    from tools.dedupe_eval.__main__ import with_geometry
    from tools.dedupe_eval.through_api import unseen_draws

    draws = unseen_draws(n, photo_set.name)
    unique = {(u.group, u.edit): u for d in draws for u in d}
    keys = sorted(unique)
    items = [Sample(g, e, unique[(g, e)].data, unique[(g, e)].scene_name, g.split("#")[-1])
             for g, e in keys]  # fmt: skip
    table = table_of(with_geometry(items, spec, cache)[0])
    position = {key: k for k, key in enumerate(keys)}
    out = []
    for d in draws:
        nodes = np.array(sorted(position[(u.group, u.edit)] for u in d))
        split = Split(nodes, subset(table, len(items), nodes), [items[k].group for k in nodes])
        out.append((split, [items[k] for k in nodes]))
    return out


def draws_offline(
    photo_set: unseen.PhotoSet,
    rules: list[Setting],
    spec: ModelSpec,
    cache: Path,
    n: int = 3,
    table_of: Callable[[PairTable], PairTable] = _same,
) -> list[Outcome]:
    """The through-API run's draws of an unseen set (``api_draws``), grouped and stacked
    offline by each rule and pooled over the draws. stacks3 and stacks4 found the API makes
    what the offline rule makes of the same images, draw for draw; a stray pair weighs far
    more at 3 images a shot than at 20."""
    drawn = api_draws(photo_set, spec, cache, n, table_of)
    return [
        pooled([outcome(split, [s.scene for s in items], rule) for split, items in drawn])
        for rule in rules
    ]


def after_choice_table(
    rules: Mapping[str, Setting],
    test: tuple[Split, Sequence[str]],
    unseen_sets: Sequence[tuple[unseen.PhotoSet, str]],
    spec: ModelSpec,
    cache: Path,
    *,
    draws: bool = True,
    table_of: Callable[[PairTable], PairTable] = _same,
    column: tuple[str, str] = ("rule", "---"),
) -> list[str]:
    """The table after the choice: each of ``rules`` (by its row name) on the test split
    (with its scenes), then on each unseen set whole (labelled), then, with ``draws``, on
    each unseen set's API draws offline (pooled). ``table_of`` maps the unseen sets' pair
    tables as the test split's already are; ``column``: the rule column's title and
    alignment."""
    title, align = column
    lines = [
        f"| set | {title} | groups P / R | stacks P / R |",
        f"| --- | {align} | --- | --- |",
    ]
    scored = [("test", *test)]
    for photo_set, label in unseen_sets:
        split, scenes = unseen_split(photo_set, spec, cache)
        scored.append((label, replace(split, table=table_of(split.table)), scenes))
    for label, split, scenes in scored:
        for name, s in rules.items():
            lines.append(f"| {label} | {name} | {pr(outcome(split, scenes, s))} |")
    if draws:
        for photo_set, label in unseen_sets:
            found = draws_offline(photo_set, list(rules.values()), spec, cache, table_of=table_of)
            for name, o in zip(rules, found, strict=True):
                lines.append(f"| {label}, the API's 3 draws offline | {name} | {pr(o)} |")
    return lines


def write_report(lines: Sequence[str], started: float, path: Path) -> None:
    """Print the report and write it to ``path``, ending with the run's time since
    ``started`` (``time.perf_counter``) after a blank line."""
    gap = [""] if lines and lines[-1] else []
    text = "\n".join([*lines, *gap, f"Ran in {time.perf_counter() - started:.0f} s."])
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
