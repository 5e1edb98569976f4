"""A bar of the geometric check chosen on the tuning split, as copy_agreement,
(second_)motion_choice and alignment_choice do: a grid over one ``GeometryThresholds`` field
or more (the configured value or off first), ``tuning_choice.choose``, and the report with
every candidate after the choice on the test split and the unseen sets (and their API
draws, offline)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
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
    title: str,
    grids: Mapping[str, Sequence[object]],
    headers: Sequence[str],
    report: Path,
    draws: bool = True,
) -> None:
    """Choose the fields of ``grids`` from their values (every combination, the first field
    outermost) and write the report to ``report`` (its geometry and signals cached beside
    it); ``headers``: the fields' columns in the candidates' table."""
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting

    started = time.perf_counter()
    spec, cache = configured_model(), report.parent / "cache"
    base = configured_setting()
    sets = TuningSets.load(spec, cache)
    candidates = geometry_grid(base, **grids)
    tried = sets.try_all(candidates, draws=draws)
    chosen = choose(tried)
    check_against_decide(sets.hard_split.table, chosen)
    bar = geometry_label(*grids)
    lines = [
        f"# {title}",
        "",
        f"Base: {base.describe()}.",
        "",
        criterion_line(not draws),
        "",
        *tried_table([(h, "---:") for h in headers], tried, chosen, bar, with_draws=True),
        "",
        f"Chosen: {bar(chosen)}. After the choice, every bar:",
        "",
    ]
    every_bar = {bar(s): s for s in candidates}
    test = (sets.test, sets.test_scenes)
    column = (" | ".join(headers), " | ".join("---:" for _ in headers))
    lines += after_choice_table(every_bar, test, UNSEEN, spec, cache, column=column)
    write_report(lines, started, report)


def main(
    module: str,
    title: str,
    grids: Mapping[str, Sequence[object]],
    headers: Sequence[str],
    name: str,
) -> None:
    """A choice tool's command line (``python -m tools.dedupe_eval.MODULE [--out DIR]``):
    ``choose_bar`` with the report ``name`` in ``--out``."""
    parser = argparse.ArgumentParser(prog=f"python -m tools.dedupe_eval.{module}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    choose_bar(title, grids, headers, args.out / name)
