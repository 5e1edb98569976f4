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

from imgflow_deduper.overlap import DETECTOR, Detector
from imgflow_deduper.settings import DedupeSettings
from imgflow_runtime.grouping import Rule
from tools.build_model import MODEL_FILE, ensure_model
from tools.dedupe_eval.dataset import Sample, overlap_sweep, samples
from tools.dedupe_eval.geometry import (
    ALIGN_BELOW_INLIERS,
    ALIGN_BELOW_IOU,
    NEAR_PHASH,
    PER_PAIR,
    PairGeometry,
    near,
    pair_geometry,
)
from tools.dedupe_eval.image_signals import ImageSignals, ModelSpec, image_signals
from tools.dedupe_eval.relations import (
    PROBE_COSINES,
    choose_geometry,
    outcome,
    separability,
    similar_breakdown,
    sweep_rows,
)
from tools.dedupe_eval.report import (
    ISSUE_TEST,
    Split,
    configured,
    errors_section,
    pairs_section,
    rules_section,
)
from tools.dedupe_eval.rules import Setting, check_against_decide, probed
from tools.dedupe_eval.signals import PairTable, pair_table
from tools.dedupe_eval.splits import TEST, TUNE, indices, issue_sets, split_of

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
    parser.add_argument(
        "--relations-only",
        action="store_true",
        help="skip the per-rule sections (the old decision on every rule)",
    )
    return parser.parse_args()


def with_geometry(
    samples: list[Sample],
    spec: ModelSpec,
    cache: Path | None,
    signals: ImageSignals | None = None,
    detector: Detector = DETECTOR,
    among: np.ndarray | None = None,
) -> tuple[PairTable, PairGeometry]:
    """Every pair's signals, the geometric check (with ``detector``'s keypoints) on those
    that look near at the lowest probe cosine tried (in two parts, each cached: the pairs
    near at the first probe cosine, then the others); with ``among`` (indices into
    ``samples``) only on the pairs of two of those, the others get no evidence."""
    signals = signals or image_signals(samples, spec, cache)
    plain = pair_table(samples, signals)
    first = near(plain.cnn, plain.phash_distance)
    wider = (plain.cnn >= min(PROBE_COSINES)) | (plain.phash_distance <= NEAR_PHASH)
    if among is not None:
        inside = np.isin(plain.i, among) & np.isin(plain.j, among)
        first, wider = first & inside, wider & inside
    geometry = pair_geometry(samples, plain.i, plain.j, np.flatnonzero(first), cache, detector)
    more = pair_geometry(samples, plain.i, plain.j, np.flatnonzero(wider & ~first), cache, detector)
    geometry = PairGeometry(
        **{
            f: np.where(more.inliers >= 0, getattr(more, f), getattr(geometry, f)) for f in PER_PAIR
        },
        feature_cpu_ms=geometry.feature_cpu_ms,
        match_cpu_ms=geometry.match_cpu_ms,
    )
    return pair_table(samples, signals, geometry), geometry


def relations_section(
    tune: Split,
    test: Split,
    issue: list[Split],
    everything: list[Sample],
    spec: ModelSpec,
    cache: Path | None,
    floor: float,
    geometry: PairGeometry,
    embed_ms: float,
) -> tuple[list[str], Setting]:
    def scenes(split: Split) -> list[str]:
        return [everything[k].scene for k in split.nodes]

    base = configured(Rule.AVERAGE_LINK)
    chosen, by_probe = choose_geometry(tune, scenes(tune), base, floor)
    for split in (tune, test):  # the vectorised relations are the deduper's relate()
        check_against_decide(split.table, chosen)
    rows = []
    for name, setting in (
        ("CNN + pHash only (before)", base),
        (
            f"geometric check from CNN >= {PROBE_COSINES[0]}",
            replace(chosen, probe_cosine=PROBE_COSINES[0]),
        ),
        (f"geometric check from CNN >= {chosen.probe_cosine}", chosen),
    ):
        for label, split in ((TUNE, tune), (TEST, test)):
            o = outcome(split, scenes(split), setting)
            g, st = o.groups, o.stacks
            rows.append(f"| {name} | {label} | {g.precision:.3f} | {g.recall:.3f} | "
                        f"{g.pure_share:.3f} | {st.precision:.3f} | {st.recall:.3f} | "
                        f"{st.groups} |")  # fmt: skip
        pooled = [outcome(s, scenes(s), setting).groups for s in issue]
        p = sum(c.correct_pairs for c in pooled) / max(1, sum(c.predicted_pairs for c in pooled))
        r = sum(c.correct_pairs for c in pooled) / max(1, sum(c.true_pairs for c in pooled))
        rows.append(f"| {name} | {ISSUE_TEST} | {p:.3f} | {r:.3f} | | | | |")
    # where duplicate ends: crops of the test photos at each overlap, unscored
    of = split_of([s.scene for s in everything])
    test_photos = {s.scene for s in everything if of[s.scene] == TEST and s.shot == "left"}
    swept = list(overlap_sweep(test_photos))
    sweep_samples = [s for _, s in swept]
    table, _ = with_geometry(sweep_samples, spec, cache)
    share = np.array([x for x, _ in swept])
    photo = np.array([s.group.split("#")[0] for s in sweep_samples])
    side = np.array([s.shot for s in sweep_samples])
    cross = (
        (photo[table.i] == photo[table.j])
        & (share[table.i] == share[table.j])
        & (side[table.i] != side[table.j])
    )
    shares = np.where(cross, share[table.i], np.nan)
    lines = [
        "## Duplicate or similar",
        "",
        *separability(tune.table, base),
        f"Geometric thresholds chosen on the tuning split (best duplicate-group F1 + stack F1 "
        f"at duplicate-group precision >= {floor}, at probe cosine {PROBE_COSINES[0]}; then "
        f"the probe cosine likewise): {chosen.describe()}.",
        "",
        "The probe cosine on the tuning split (the pairs checked, and what they make), and "
        "for reference the test split's stacks (not used to choose):",
        "",
        "| probe cosine | pairs checked | duplicate-group P / R | similar-stack P / R | "
        "similar-pair F1 | test: duplicate-group P / R | test: similar-stack P / R |",
        "| ---: | ---: | --- | --- | ---: | --- | --- |",
        *(
            f"| {p.probe_cosine} | "
            f"{int(probed(tune.table, chosen.thresholds, p.probe_cosine).sum())} | "
            f"{p.outcome.groups.precision:.3f} / {p.outcome.groups.recall:.3f} | "
            f"{p.outcome.stacks.precision:.3f} / {p.outcome.stacks.recall:.3f} | "
            f"{p.pair_f1:.3f} | {t.groups.precision:.3f} / {t.groups.recall:.3f} | "
            f"{t.stacks.precision:.3f} / {t.stacks.recall:.3f} |"
            for p, t in (
                (p, outcome(test, scenes(test), replace(chosen, probe_cosine=p.probe_cosine)))
                for p in by_probe
            )
        ),
        "",
        "| decision | split | duplicate-group precision | recall | pure groups | "
        "similar-stack precision | recall | stacks |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"Where duplicate ends: two crops of each test photo ({len(test_photos)}), the left "
        "and the right part, sharing a share of their width, each also as JPEG 15 and "
        "brighter (unscored). Shares of their cross pairs:",
        "",
        "| overlap | IoU | pairs | CNN + pHash say duplicate | duplicate | similar |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *sweep_rows(table, shares, chosen),
        "",
        "The test split's labelled similar pairs, by scene and shots (pairs between the "
        "two shots' groups, edits included): how many the check ran on, how it called them, "
        "and how many share a stack:",
        "",
        *similar_breakdown(test, everything, chosen),
        "",
        f"Cost (one thread, this process): embedding {embed_ms:.1f} CPU ms per image; the "
        f"geometric check {geometry.feature_cpu_ms:.1f} ms per image for its features "
        f"(decode, trim, ORB of the image and its mirror) and {geometry.match_cpu_ms:.2f} ms "
        "per pair checked (match, RANSAC, agreement, motion; and the thumbnails' "
        f"alignment where the fit has under {ALIGN_BELOW_INLIERS} inliers or IoU under "
        f"{ALIGN_BELOW_IOU}).",
        "",
    ]
    return lines, chosen


def main() -> None:
    args = parse()
    started = time.perf_counter()
    spec = model_spec(args)
    everything = items = list(samples())
    cache = None if args.no_cache else args.out / "cache"
    signals = image_signals(everything, spec, cache)
    full, geometry = with_geometry(everything, spec, cache, signals)
    tune = Split.of(full, everything, indices(items, TUNE))
    test = Split.of(full, everything, indices(items, TEST))
    for split in (tune, test):  # the vectorised decision is the deduper's
        check_against_decide(split.table, configured(Rule.SINGLE_LINK))
    issue = [Split.of(full, everything, nodes) for nodes in issue_sets(items, TEST, args.draws)]

    relations, chosen = relations_section(
        tune,
        test,
        issue,
        everything,
        spec,
        cache,
        args.min_precision,
        geometry,
        signals.embed_cpu_ms,
    )
    summary: dict[str, object] = {"model": {**asdict(spec), "path": str(spec.path)},
                                  "embed_cpu_ms": signals.embed_cpu_ms,
                                  "geometry": chosen.describe()}  # fmt: skip
    sections: list[str] = []
    if not args.relations_only:
        pairs = pairs_section(tune, test, args.min_precision, args.model == "configured")
        rules = rules_section(tune, test, issue, pairs.steps, args.min_precision)
        sections = [
            *pairs.lines,
            *rules.lines,
            *errors_section(test, everything, rules.leader, rules.chosen[rules.leader]),
        ]
        summary |= {
            "pairs_tuned": str(pairs.tuned),
            "best_on_tuning": str(rules.leader),
            "rules": {str(r): {"setting": rules.chosen[r].describe(),
                               **{k: {**asdict(c), "precision": c.precision, "recall": c.recall,
                                      "f1": c.f1, "pure_share": c.pure_share}
                                  for k, c in counts.items()}}
                      for r, counts in rules.counts.items()},
        }  # fmt: skip
    shot_counts = ", ".join(f"{n} {shot}" for shot, n in sorted(
        {s.shot: sum(x.shot == s.shot and x.edit == "original" for x in items)
         for s in items}.items()))  # fmt: skip
    inputs = 1 + spec.mirror_invariant + 5 * spec.sub_views
    lines = [
        f"# Duplicate detection: {spec.name}, {spec.input_size} px, {inputs} inputs per image",
        "",
        f"{len(items)} images in {len({s.group for s in items})} groups from "
        f"{len({s.scene for s in items})} photographs ({shot_counts} shots). Tuning split: "
        f"{len(tune.nodes)} images, {int(tune.table.duplicate.sum())} duplicate pairs, "
        f"{int(tune.table.similar.sum())} similar; test split: {len(test.nodes)} images, "
        f"{int(test.table.duplicate.sum())} duplicate pairs, {int(test.table.similar.sum())} "
        f"similar. Embedding: {signals.embed_cpu_ms:.0f} CPU ms per image (decode, views, "
        "inference; one thread).",
        "",
        *sections,
        *relations,
        f"Ran in {time.perf_counter() - started:.0f} s.",
    ]
    report = "\n".join(lines)
    print(report)
    name = "results" if args.model == "configured" else f"results-{spec.name}-{spec.input_size}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(report + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
