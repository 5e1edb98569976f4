"""A CNN bar for *similar* where the geometric check finds nothing in common, chosen on the
tuning split (stacks8).

    .venv/bin/python -m tools.dedupe_eval.similar_cosine [--out .bench/eval-dedupe]

``stack_misses`` found that the library draws' stacks miss similar pairs because every
pair between two shots of a scene is *neither*: the check ran, found < 10 inliers (a shot
sharing a strip of its scene), and the CNN and pHash call no duplicate (CNN 0.7-0.9 against
the duplicate bar 0.91). None is split by the stacking rule, none is lost to retrieval.
The candidate fix: such a pair is similar when the CNN alone is at least
``GeometryThresholds.similar_cosine`` alike (``decision.alike_scene``), on images with at
least ``similar_cosine_keypoints`` keypoints (R: rich, 75; A: any).

The grid and the criterion were fixed and committed before any figure: off first, then R
and A at 0.85, 0.8, 0.75, 0.7; ``tuning_choice.choose`` with the tuning split's draws
(stacks7's criterion), base the rule as configured. The test split, the unseen sets and
their API draws (offline) are printed after the choice for off, the chosen one and both
forms at ``COMPARED``; all three unseen sets were read before.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tools.dedupe_eval.inlier_spread import OUT
from tools.dedupe_eval.keypoint_spread import UNSEEN
from tools.dedupe_eval.rules import Setting, check_against_decide
from tools.dedupe_eval.tool_report import after_choice_table, write_report
from tools.dedupe_eval.tuning_choice import (
    TuningSets,
    choose,
    criterion_line,
    geometry_grid,
    tried_table,
)

BARS = (0.85, 0.8, 0.75, 0.7)  # fixed beforehand
COMPARED = 0.8  # both forms at this bar are reported after the choice, chosen or not


def candidates(base: Setting) -> list[Setting]:
    """Off first, then R (rich images only) and A (any) at each bar."""
    assert base.geometry is not None
    kinds = (base.geometry.rich_keypoints, 0)
    return [base, *geometry_grid(base, similar_cosine_keypoints=kinds, similar_cosine=BARS)]


def name(s: Setting) -> str:
    g = s.geometry
    assert g is not None
    if g.similar_cosine == 0:
        return "off"
    return f"{'A (any)' if g.similar_cosine_keypoints == 0 else 'R (rich)'} {g.similar_cosine}"


def main() -> None:
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting

    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval.similar_cosine")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    spec, cache = configured_model(), args.out / "cache"
    base = configured_setting()
    sets = TuningSets.load(spec, cache)
    grid = candidates(base)
    for s in grid:
        check_against_decide(sets.hard_split.table, s)
    tried = sets.try_all(grid, draws=True)
    chosen = choose(tried)
    check_against_decide(sets.tune.table, chosen)
    lines = [
        "# The similar call's CNN bar where the check finds nothing in common",
        "",
        f"Tuning split: {len(sets.tune.nodes)} images; its hard cases: {len(sets.hard)} images. "
        f"Base: {base.describe()}.",
        "",
        criterion_line(False),
        "",
        *tried_table([("CNN bar", "---")], tried, chosen, name, with_draws=True),
        "",
        f"Chosen: {name(chosen)}.",
        "",
        f"After the choice: off, the chosen one, and both forms at {COMPARED} (fixed "
        "beforehand, chosen or not):",
        "",
    ]
    compared = [s for s in grid[1:] if s.geometry and s.geometry.similar_cosine == COMPARED]
    rules = {name(s): s for s in [base, chosen, *compared]}
    test = (sets.test, sets.test_scenes)
    lines += after_choice_table(rules, test, UNSEEN, spec, cache)
    write_report(lines, started, args.out / "similar-cosine.md")


if __name__ == "__main__":
    main()
