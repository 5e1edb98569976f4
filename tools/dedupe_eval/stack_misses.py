"""Why a library's draws miss similar pairs in stacks (stacks8): each missed pair's kind.

    .venv/bin/python -m tools.dedupe_eval.stack_misses [--unseen] [--out .bench/eval-dedupe]

A labelled similar pair (one scene, two shots) is *missed* when the rule as configured
puts its two images in different stacks. In each draw (the tuning split's draws,
``TuningSets.tune_draws``; with ``--unseen`` also the unseen sets' API draws, replayed
offline as ``tool_report.draws_offline`` does) every missed pair gets one kind, the
first that holds:

- *related, split by the stacking rule*: the pair is called duplicate or similar, yet its
  images end in two stacks (``imgflow_runtime.stacking``'s density);
- *not checked*: CNN < the probe cosine and pHash > 22 (the geometric check never ran;
  the eval's cache holds no geometry for it either);
- *overlay call*: a fit over most of both frames on few cells (``decision.overlay_fit``);
- *rich, no shared content, CNN not alike*, by the fit's inliers (0-4, 5-9, >= 10 but
  IoU < 0.05);
- *few keypoints, CNN not alike*: the check cannot tell and the CNN and pHash say no.

A pair called *duplicate* is related and joins a stack, so it is never missed here (it
costs the groups' precision instead). Retrieval is not replayed: at 3 images a shot the
API made what this offline rule makes, draw for draw (stacks3-7), so the worker's
candidate search (its k and the HNSW scan) loses none of these pairs.

Pairs are also counted by the two shots' kinds (``Sample.shot``: the halves share no
pixel by construction, so a left half joins its right half only through a third shot or
the CNN) and, per scene, by the shot left out of the scene's largest stack. Analysis only:
nothing is chosen here.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imgflow_deduper.decision import MIN_SHARED_IOU, SPREAD_MIN_IOU
from tools.dedupe_eval import unseen
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.image_signals import ModelSpec
from tools.dedupe_eval.inlier_spread import OUT
from tools.dedupe_eval.keypoint_spread import UNSEEN
from tools.dedupe_eval.relations import stacks_of
from tools.dedupe_eval.report import Split
from tools.dedupe_eval.rules import Setting, predicted, probed, related
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.tool_report import api_draws, write_report
from tools.dedupe_eval.tuning_choice import TuningSets

KINDS = (
    "related, split by the stacking rule",
    "not checked (CNN < probe cosine, pHash > 22)",
    "overlay call (keypoint spread)",
    "rich, no shared content (0-4 inliers), CNN not alike",
    "rich, no shared content (5-9 inliers), CNN not alike",
    "rich, >= 10 inliers but IoU < 0.05, CNN not alike",
    "few keypoints, CNN not alike",
)


def kinds(t: PairTable, setting: Setting) -> np.ndarray:
    """Each pair's kind (an index into ``KINDS``) as if it were missed; -1 where the rule
    relates it by shared content (it cannot be missed unless split)."""
    g, th = setting.geometry, setting.thresholds
    assert g is not None
    r = related(t, th, g, setting.probe_cosine)
    checked = probed(t, th, setting.probe_cosine)
    looks = predicted(t, th)
    by_corners = (t.keypoints >= g.keypoint_spread_keypoints) & (
        t.keypoint_spread < g.similar_keypoint_spread
    )
    by_cells = (t.keypoints >= g.rich_keypoints) & (t.spread < g.similar_spread)
    fit = t.inliers >= g.min_inliers
    marked = checked & (t.iou >= SPREAD_MIN_IOU) & fit & (by_cells | by_corners)
    rich = t.keypoints >= g.rich_keypoints
    conditions = [
        r.duplicate | r.similar,
        ~checked,
        marked,
        rich & (t.inliers < 5) & ~looks,
        rich & (t.inliers < g.min_inliers) & ~looks,
        rich & fit & (t.iou < MIN_SHARED_IOU) & ~looks,
        ~rich & ~looks,
    ]
    return np.select(conditions, list(range(len(KINDS))), default=-1)


class Tally:
    """Missed pairs by kind, by the two shots' kinds, and the shots left out per scene."""

    def __init__(self) -> None:
        self.by_kind: Counter[int] = Counter()
        self.by_shots: Counter[tuple[str, str]] = Counter()
        self.kind_by_shots: Counter[tuple[tuple[str, str], int]] = Counter()
        self.left_out: Counter[str] = Counter()
        self.similar = 0

    def add(self, split: Split, items: Sequence[Sample], setting: Setting) -> None:
        """``items``: the split's images, in its order."""
        t = split.table
        stack = np.arange(len(items))
        for n, members in enumerate(stacks_of(t, setting)):
            stack[list(members)] = len(items) + n
        missed = t.similar & (stack[t.i] != stack[t.j])
        self.similar += int(np.count_nonzero(t.similar))
        kind = kinds(t, setting)
        for k in np.flatnonzero(missed):
            a, b = items[t.i[k]], items[t.j[k]]
            shots = tuple(sorted((a.shot, b.shot)))
            self.by_kind[int(kind[k])] += 1
            self.by_shots[shots] += 1
            self.kind_by_shots[(shots, int(kind[k]))] += 1
        for scene in sorted({s.scene for s in items}):
            where = [p for p, s in enumerate(items) if s.scene == scene]
            largest = Counter(stack[where]).most_common(1)[0][0]
            for shot in sorted({items[p].shot for p in where if stack[p] != largest}):
                self.left_out[shot] += 1

    def lines(self, title: str) -> list[str]:
        missed = sum(self.by_kind.values())
        out = [
            f"### {title}",
            "",
            f"{missed} of {self.similar} labelled similar pairs missed "
            f"(stack recall on pairs {1 - missed / max(self.similar, 1):.3f}).",
            "",
            "| kind | missed pairs | share |",
            "| --- | ---: | ---: |",
        ]
        for k, name in enumerate(KINDS):
            if self.by_kind[k]:
                out.append(f"| {name} | {self.by_kind[k]} | {self.by_kind[k] / missed:.2f} |")
        if self.by_kind[-1]:
            out.append(f"| (related by shared content, yet missed) | {self.by_kind[-1]} | |")
        out += ["", "| the two shots | missed pairs | by kind |", "| --- | ---: | --- |"]
        for shots, n in self.by_shots.most_common():
            parts = ", ".join(
                f"{KINDS[k].split(' (')[0].split(',')[0]}"
                + (" 0-4" if k == 3 else " 5-9" if k == 4 else "")
                + f": {c}"
                for (s, k), c in sorted(self.kind_by_shots.items(), key=lambda x: -x[1])
                if s == shots
            )
            out.append(f"| {shots[0]} ~ {shots[1]} | {n} | {parts} |")
        out += [
            "",
            "Shots left out of their scene's largest stack (per scene and draw): "
            + ", ".join(f"{shot} {n}" for shot, n in self.left_out.most_common()),
            "",
        ]
        return out


def tune_tally(sets: TuningSets, setting: Setting) -> Tally:
    tally = Tally()
    for split, _ in sets.tune_draws():
        tally.add(split, [sets.everything[k] for k in split.nodes], setting)
    return tally


def unseen_tally(
    photo_set: unseen.PhotoSet, setting: Setting, spec: ModelSpec, cache: Path
) -> Tally:
    """The unseen set's API draws, replayed offline (``tool_report.api_draws``)."""
    tally = Tally()
    for split, items in api_draws(photo_set, spec, cache):
        tally.add(split, items, setting)
    return tally


def main() -> None:
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting

    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval.stack_misses")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--unseen", action="store_true",
                        help="the unseen sets' API draws too (read: kinds only)")  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    spec, cache = configured_model(), args.out / "cache"
    setting = configured_setting()
    sets = TuningSets.load(spec, cache)
    lines = [
        "# Why the draws' stacks miss similar pairs",
        "",
        f"Rule: {setting.describe()}.",
        "",
        *tune_tally(sets, setting).lines("The tuning split's 5 draws (seed 31)"),
    ]
    if args.unseen:
        for photo_set, label in UNSEEN:
            lines += unseen_tally(photo_set, setting, spec, cache).lines(
                f"{label}: the API's 3 draws, offline"
            )
    write_report(lines, started, args.out / "stack-misses.md")


if __name__ == "__main__":
    main()
