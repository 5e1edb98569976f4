"""How many ORB keypoints a frame keeps, and where (``overlap.Detector``), chosen on the
tuning split and its hard cases with the rule as configured.

    .venv/bin/python -m tools.dedupe_eval.keypoint_choice [--out .bench/eval-dedupe]

stacks8 found most similar pairs the tuning draws miss are two shots rich in corners that
share a strip of the frame, on which ORB's 400 keypoints (ranked over the whole frame, so
few on the strip) find no fit. The candidates, fixed before this tool's figures (an
ad-hoc probe of fits on the tuning draws' images was seen first; stacks9): ORB's own pick
of 400 (as configured), a 4 x 4 grid's equal shares of 400 and of 800, ORB's own 1,000
and 2,000, in that order, the cheapest check first, so ``tuning_choice.choose``'s ties go
to the cheaper. Each candidate's geometry is computed on the tuning split's pairs and the
hard cases only (the test split's pairs are not checked); the criterion is
``tuning_choice``'s with the tuning draws (stacks7). After the choice the test split, as
configured and as chosen, not used to choose.

Each candidate's cost, the eval's measure (one thread, CPU): its features per image and
its check per pair, on the tuning split; and the bytes its features take stored
(``stored_features.encode``) for the tuning split's originals.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from imgflow_deduper import stored_features
from imgflow_deduper.overlap import DETECTOR, Detector
from tools.dedupe_eval.geometry import image_features
from tools.dedupe_eval.image_signals import ModelSpec
from tools.dedupe_eval.inlier_spread import OUT
from tools.dedupe_eval.relations import outcome
from tools.dedupe_eval.rules import check_against_decide
from tools.dedupe_eval.tool_report import write_report
from tools.dedupe_eval.tuning_choice import (
    Tried,
    TuningSets,
    choose,
    criterion_line,
    pr,
    tried_table,
)

# fixed beforehand; the configured one first, then by the check's cost
CANDIDATES = (
    Detector(400, 0),
    Detector(400, 4),
    Detector(800, 4),
    Detector(1000, 0),
    Detector(2000, 0),
)


def name(d: Detector) -> str:
    return f"{d.keypoints}, " + (f"{d.grid} x {d.grid} grid" if d.grid else "ORB's pick")


@dataclass(frozen=True)
class Cost:
    feature_ms: float  # per image
    match_ms: float  # per pair checked
    stored_bytes: tuple[float, float]  # median and largest over the tuning originals


def cost(sets: TuningSets, spec: ModelSpec, cache: Path, detector: Detector) -> Cost:
    """The candidate's cost (its geometry is cached by then)."""
    from tools.dedupe_eval.__main__ import with_geometry

    tune = sets.tune.nodes
    _, geometry = with_geometry(sets.everything, spec, cache, detector=detector, among=tune)
    originals = [sets.everything[k] for k in tune if sets.everything[k].edit == "original"]
    sizes = [len(stored_features.encode(image_features(s.data, detector))) for s in originals]
    return Cost(geometry.feature_cpu_ms, geometry.match_cpu_ms,
                (float(np.median(sizes)), float(max(sizes))))  # fmt: skip


def main() -> None:
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting

    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval.keypoint_choice")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    spec, cache, base = configured_model(), args.out / "cache", configured_setting()
    tried: list[Tried] = []
    costs: dict[Detector, Cost] = {}
    named: dict[int, str] = {}  # the same rule for every candidate: one copy each, by id
    for detector in CANDIDATES:
        sets = TuningSets.load(spec, cache, detector, test=False)
        setting = replace(base)
        named[id(setting)] = name(detector)
        tried += sets.try_all([setting], draws=True)
        costs[detector] = cost(sets, spec, cache, detector)
        print(f"{name(detector)}: {time.perf_counter() - started:.0f} s", flush=True)
    best = choose(tried)
    chosen = CANDIDATES[next(k for k, x in enumerate(tried) if x.setting is best)]
    lines = [
        "# ORB keypoints a frame, and where: chosen on the tuning split",
        "",
        f"Rule: {base.describe()} (as configured, for every candidate).",
        "",
        criterion_line(False),
        "",
        *tried_table([("keypoints", "---")], tried, best, lambda s: named[id(s)], True),
        "",
        f"Chosen: {name(chosen)}. Cost, the eval's measure (one thread, CPU time, tuning "
        "split) and the stored features (tuning originals):",
        "",
        "| keypoints | features per image | check per pair | stored bytes, median / largest |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {name(d)} | {c.feature_ms:.1f} ms | {c.match_ms:.2f} ms | "
            f"{c.stored_bytes[0] / 1000:.1f} / {c.stored_bytes[1] / 1000:.1f} KB |"
            for d, c in costs.items()
        ),
        "",
        "After the choice (not used to choose):",
        "",
        "| set | keypoints | groups P / R | stacks P / R |",
        "| --- | --- | --- | --- |",
    ]
    for detector in dict.fromkeys((DETECTOR, chosen)):
        sets = TuningSets.load(spec, cache, detector)
        check_against_decide(sets.test.table, base)
        lines.append(
            f"| test | {name(detector)} | {pr(outcome(sets.test, sets.test_scenes, base))} |"
        )
    write_report(lines, started, args.out / "keypoint-choice.md")


if __name__ == "__main__":
    main()
