"""``make eval-dedupe``: duplicate detection as users see it, pairs and groups.

    .venv/bin/python -m tools.dedupe_eval [--model configured|sscd|sscd-distilled]
        [--input-size N] [--no-sub-views] [--no-mirror] [--out .bench/eval-dedupe]

Every pair of the labelled set (dataset.py) is scored by the deduper's decision, and the
pairs are grouped by each rule of ``imgflow_runtime.grouping``. The photos are split in
two (splits.py): every threshold and rule setting is chosen on the tuning split alone,
and both splits are reported, with the issue's own test drawn from the test split (the
halves of its photos, each with two of the issue's edits). No retrieval step: the HNSW
search's recall is measured by ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from imgflow_deduper.settings import DedupeSettings
from imgflow_runtime.grouping import Rule
from tools.build_model import MODEL_FILE, ensure_model
from tools.dedupe_eval.dataset import samples, second_shots
from tools.dedupe_eval.image_signals import ModelSpec, image_signals
from tools.dedupe_eval.report import (
    Split,
    configured,
    errors_section,
    pairs_section,
    rules_section,
    second_shots_section,
)
from tools.dedupe_eval.rules import check_against_decide
from tools.dedupe_eval.signals import pair_table
from tools.dedupe_eval.splits import TEST, TUNE, indices, issue_sets

OUT = Path(__file__).resolve().parent.parent.parent / ".bench" / "eval-dedupe"
RAW_PIXELS = ((0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255))  # models that take 0-255 bytes


def model_spec(args: argparse.Namespace) -> ModelSpec:
    if args.model == "configured":
        s = DedupeSettings()
        path = Path(s.dedupe_model_path)
        if path.name == MODEL_FILE and not path.exists():
            ensure_model(path)
        mean, std = s.dedupe_mean, s.dedupe_std
        spec = ModelSpec(s.dedupe_model_name, path, s.dedupe_input_size,
                         (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]),
                         s.dedupe_sub_views, s.dedupe_mirror_invariant)  # fmt: skip
    else:
        from tools import sscd_model

        if not sscd_model.verified():
            raise SystemExit("SSCD is not installed: run `make model-sscd` first")
        spec = ModelSpec(args.model, sscd_model.model_path(args.model), 224, *RAW_PIXELS)
    if args.input_size:
        spec = replace(spec, input_size=args.input_size)
    return replace(
        spec,
        sub_views=spec.sub_views and not args.no_sub_views,
        mirror_invariant=spec.mirror_invariant and not args.no_mirror,
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval", description=__doc__)
    parser.add_argument("--model", choices=["configured", "sscd", "sscd-distilled"],
                        default="configured")  # fmt: skip
    parser.add_argument("--input-size", type=int, default=0, help="the model's, by default")
    parser.add_argument("--no-sub-views", action="store_true")
    parser.add_argument("--no-mirror", action="store_true")
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument("--draws", type=int, default=30, help="draws of the issue's test")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-cache", action="store_true", help="compute every signal again")
    return parser.parse_args()


def main() -> None:
    args = parse()
    started = time.perf_counter()
    spec = model_spec(args)
    items = list(samples())
    extra = list(second_shots())
    everything = items + extra
    signals = image_signals(everything, spec, None if args.no_cache else args.out / "cache")
    full = pair_table(everything, signals)
    tune = Split.of(full, everything, indices(items, TUNE))
    test = Split.of(full, everything, indices(items, TEST))
    for split in (tune, test):  # the vectorised decision is the deduper's
        check_against_decide(split.table, configured(Rule.SINGLE_LINK))
    issue = [Split.of(full, everything, nodes) for nodes in issue_sets(items, TEST, args.draws)]
    scenes_with_second = {s.scene for s in extra}
    shots = Split.of(full, everything, np.array(
        [k for k, s in enumerate(everything) if s.scene in scenes_with_second]))  # fmt: skip

    pairs = pairs_section(tune, test, args.min_precision, args.model == "configured")
    rules = rules_section(tune, test, issue, pairs.steps, args.min_precision)
    shot_counts = ", ".join(f"{n} {shot}" for shot, n in sorted(
        {s.shot: sum(x.shot == s.shot and x.edit == "original" for x in items)
         for s in items}.items()))  # fmt: skip
    inputs = 1 + spec.mirror_invariant + 5 * spec.sub_views
    lines = [
        f"# Duplicate detection: {spec.name}, {spec.input_size} px, {inputs} inputs per image",
        "",
        f"{len(items)} images in {len({s.group for s in items})} groups from "
        f"{len({s.scene for s in items})} photographs ({shot_counts} shots). Tuning split: "
        f"{len(tune.nodes)} images, {int(tune.table.duplicate.sum())} duplicate pairs; "
        f"test split: {len(test.nodes)} images, {int(test.table.duplicate.sum())}. "
        f"Embedding: {signals.embed_cpu_ms:.0f} CPU ms per image (decode, views, inference; "
        "one thread).",
        "",
        *pairs.lines,
        *rules.lines,
        *errors_section(test, everything, rules.leader, rules.chosen[rules.leader]),
        *second_shots_section(shots, rules.chosen),
        f"Ran in {time.perf_counter() - started:.0f} s.",
    ]
    report = "\n".join(lines)
    print(report)
    name = "results" if args.model == "configured" else f"results-{spec.name}-{spec.input_size}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(report + "\n")
    (args.out / f"{name}.json").write_text(json.dumps({
        "model": {**asdict(spec), "path": str(spec.path)},
        "embed_cpu_ms": signals.embed_cpu_ms,
        "pairs_tuned": str(pairs.tuned),
        "best_on_tuning": str(rules.leader),
        "rules": {str(r): {"setting": rules.chosen[r].describe(),
                           **{k: {**asdict(c), "precision": c.precision, "recall": c.recall,
                                  "f1": c.f1, "pure_share": c.pure_share}
                              for k, c in counts.items()}}
                  for r, counts in rules.counts.items()},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
