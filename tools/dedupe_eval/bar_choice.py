"""One bar of the geometric check chosen on the tuning split, as copy_agreement and
(second_)motion_choice do: a grid over one ``GeometryThresholds`` field (the configured value
first), ``tuning_choice.choose``, and the report with every bar after the choice on the
test split and the unseen sets (and their API draws, offline)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from tools.dedupe_eval.inlier_spread import OUT
from tools.dedupe_eval.keypoint_spread import UNSEEN
from tools.dedupe_eval.rules import check_against_decide
from tools.dedupe_eval.tool_report import after_choice_table, write_report
from tools.dedupe_eval.tuning_choice import (
    TuningSets,
    choose,
    criterion_line,
    geometry_grid,
    geometry_label,
    tried_table,
)


def choose_bar(
    title: str, field: str, grid: Sequence[float], header: str, report: Path, draws: bool = True
) -> None:
    """Choose ``field`` from ``grid`` and write the report to ``report`` (its geometry and
    signals cached beside it); ``header``: the bar's column in the candidates' table."""
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting

    started = time.perf_counter()
    spec, cache = configured_model(), report.parent / "cache"
    base = configured_setting()
    sets = TuningSets.load(spec, cache)
    candidates = geometry_grid(base, **{field: grid})
    tried = sets.try_all(candidates, draws=draws)
    chosen = choose(tried)
    check_against_decide(sets.hard_split.table, chosen)
    bar = geometry_label(field)
    lines = [
        f"# {title}",
        "",
        f"Base: {base.describe()}.",
        "",
        criterion_line(not draws),
        "",
        *tried_table([(header, "---:")], tried, chosen, bar, with_draws=True),
        "",
        f"Chosen: {bar(chosen)}. After the choice, every bar:",
        "",
    ]
    every_bar = {bar(s): s for s in candidates}
    test = (sets.test, sets.test_scenes)
    lines += after_choice_table(every_bar, test, UNSEEN, spec, cache, column=("bar", "---:"))
    write_report(lines, started, report)


def main(
    module: str, title: str, field: str, grid: Sequence[float], header: str, name: str
) -> None:
    """A choice tool's command line (``python -m tools.dedupe_eval.MODULE [--out DIR]``):
    ``choose_bar`` with the report ``name`` in ``--out``."""
    parser = argparse.ArgumentParser(prog=f"python -m tools.dedupe_eval.{module}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    choose_bar(title, field, grid, header, args.out / name)
