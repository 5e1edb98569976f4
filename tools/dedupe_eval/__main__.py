"""``make eval-dedupe``: P/R/F1 over duplicate pairs for pHash alone, the CNN alone and the
combined decision, at the configured thresholds and at the best ones the sweep finds.

    .venv/bin/python -m tools.dedupe_eval [--min-precision 0.98] [--out .bench/eval-dedupe]

Every pair of the labelled set is scored (no retrieval step: the HNSW search's recall is
measured separately by `make bench`). Thresholds are also picked on half the scenes and
scored on the other half, so the report shows how far the defaults are tuned to this set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from imgflow_deduper.decision import PairSignals, Thresholds, decide
from imgflow_deduper.encoder import Encoder
from imgflow_deduper.pixels import Normalisation
from imgflow_deduper.settings import DedupeSettings
from tools.build_model import MODEL_FILE, ensure_model
from tools.dedupe_eval.dataset import Sample, samples
from tools.dedupe_eval.metrics import Score, best, score
from tools.dedupe_eval.signals import PairTable, embed_all, pair_table, phash64

OUT = Path(__file__).resolve().parent.parent.parent / ".bench" / "eval-dedupe"
COSINES = np.round(np.arange(0.70, 0.991, 0.005), 3)
DISTANCES = range(0, 25)
GRID = {
    "cosine": np.round(np.arange(0.85, 0.99, 0.005), 3),
    "phash_distance": range(0, 17, 2),
    "combined_cosine": np.round(np.arange(0.70, 0.95, 0.02), 2),
    "combined_phash_distance": range(12, 27, 2),
}


def subset(t: PairTable, mask: np.ndarray) -> PairTable:
    return PairTable(**{f.name: getattr(t, f.name)[mask] for f in fields(t)})


def combined_predictions(t: PairTable, th: Thresholds) -> np.ndarray:
    """Vectorised decide(); the report checks it agrees with decide() pair by pair."""
    return (
        t.same_sha256
        | (t.cnn >= th.cosine)
        | ((t.cnn >= th.combined_cosine) & (t.phash_distance <= th.combined_phash_distance))
        | (t.phash_distance <= th.phash_distance)
    )


def search_combined(
    t: PairTable, mask: np.ndarray, min_precision: float
) -> tuple[Thresholds, Score]:
    # Pairs far on both signals are negatives for every grid point: score only the rest,
    # and add their fixed contribution (their positives are false negatives throughout).
    near = mask & ((t.cnn >= 0.55) | (t.phash_distance <= 26) | t.same_sha256)
    far_fn = int(np.count_nonzero(mask & ~near & t.duplicate))
    sub = subset(t, near)
    results = []
    for values in itertools.product(*GRID.values()):
        th = Thresholds(*values)
        s = score(combined_predictions(sub, th), sub.duplicate)
        fn = s.false_negatives + far_fn
        recall = s.true_positives / (s.true_positives + fn) if s.true_positives + fn else 1.0
        f1 = 2 * s.precision * recall / (s.precision + recall) if s.precision + recall else 0.0
        results.append((th, Score(0, s.precision, recall, f1, s.true_positives,
                                  s.false_positives, fn)))  # fmt: skip
    chosen = best((r[1] for r in results), min_precision)
    return next(th for th, s in results if s is chosen), chosen


def sweeps(t: PairTable, mask: np.ndarray, min_precision: float) -> dict[str, tuple[object, Score]]:
    actual = t.duplicate[mask]
    cnn = best((score(t.cnn[mask] >= c, actual, float(c)) for c in COSINES), min_precision)
    phash = best((score(t.phash_distance[mask] <= d, actual, d) for d in DISTANCES), min_precision)
    th, combined = search_combined(t, mask, min_precision)
    return {"phash": (int(phash.threshold), phash), "cnn": (cnn.threshold, cnn),
            "combined": (th, combined)}  # fmt: skip


def held_out(t: PairTable, items: list[Sample], min_precision: float) -> dict[str, Score]:
    """Fit on half the scenes, score on the other half, both ways; pooled counts."""
    scenes = sorted({s.scene for s in items})
    halves = [set(scenes[0::2]), set(scenes[1::2])]
    scene_of = np.array([s.scene for s in items])
    pooled: dict[str, Counter[str]] = {m: Counter() for m in ("phash", "cnn", "combined")}
    for fit, test in (halves, halves[::-1]):
        in_fit = np.isin(scene_of[t.i], list(fit)) & np.isin(scene_of[t.j], list(fit))
        in_test = np.isin(scene_of[t.i], list(test)) & np.isin(scene_of[t.j], list(test))
        chosen = sweeps(t, in_fit, min_precision)
        actual = t.duplicate[in_test]
        predictions = {
            "phash": t.phash_distance[in_test] <= chosen["phash"][0],
            "cnn": t.cnn[in_test] >= chosen["cnn"][0],
        }
        sub = subset(t, in_test)
        predictions["combined"] = combined_predictions(sub, chosen["combined"][0])
        for method, predicted in predictions.items():
            s = score(predicted, actual)
            pooled[method].update(tp=s.true_positives, fp=s.false_positives, fn=s.false_negatives)
    out = {}
    for method, c in pooled.items():
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        out[method] = Score(float("nan"), p, r, 2 * p * r / (p + r) if p + r else 0.0,
                            c["tp"], c["fp"], c["fn"])  # fmt: skip
    return out


def _row(name: str, rule: str, s: Score) -> str:
    return (f"| {name} | {rule} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | "
            f"{s.true_positives} | {s.false_positives} | {s.false_negatives} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval", description=__doc__)
    parser.add_argument("--min-precision", type=float, default=0.98)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    settings = DedupeSettings()
    model_path = Path(settings.dedupe_model_path)
    if model_path.name == MODEL_FILE and not model_path.exists():
        ensure_model(model_path)

    started = time.perf_counter()
    items = list(samples())
    norm = Normalisation.of(
        settings.dedupe_input_size,
        settings.dedupe_mean,
        settings.dedupe_std,
        settings.dedupe_detail_size,
    )
    encoder = Encoder(
        settings.dedupe_model_path, settings.dedupe_providers, settings.dedupe_threads
    )
    embeddings, views = embed_all(
        items,
        encoder,
        norm,
        mirror_invariant=settings.dedupe_mirror_invariant,
        sub_views=settings.dedupe_sub_views,
    )
    table = pair_table(items, embeddings, [phash64(s.data) for s in items], views)
    everything = np.ones_like(table.duplicate)

    configured = Thresholds(
        settings.dedupe_cosine_threshold,
        settings.dedupe_phash_max_distance,
        settings.dedupe_combined_cosine,
        settings.dedupe_combined_phash_distance,
    )
    decided = np.array(
        [
            decide(
                PairSignals(bool(sh), float(c), int(d), None if np.isnan(v) else float(v)),
                configured,
            )
            is not None
            for sh, c, d, v in zip(
                table.same_sha256,
                table.cosine,
                table.phash_distance,
                table.view_cosine,
                strict=True,
            )
        ]
    )  # fmt: skip
    assert (decided == combined_predictions(table, configured)).all(), "vectorised != decide()"
    at_defaults = {
        "phash": score(table.phash_distance <= configured.phash_distance, table.duplicate),
        "cnn": score(table.cnn >= configured.cosine, table.duplicate),
        "combined": score(decided, table.duplicate),
    }
    swept = sweeps(table, everything, args.min_precision)
    honest = held_out(table, items, args.min_precision)

    groups = len({s.group for s in items})
    lines = [
        f"{len(items)} images in {groups} groups from {len({s.scene for s in items})} "
        f"photographs; {int(table.duplicate.sum())} duplicate pairs among {len(table.i)}.",
        "",
        "| method | rule | precision | recall | F1 | TP | FP | FN |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _row("pHash alone (defaults)", f"distance <= {configured.phash_distance}",
             at_defaults["phash"]),
        _row("CNN alone (defaults)", f"cosine >= {configured.cosine}", at_defaults["cnn"]),
        _row("combined (defaults)", str(configured), at_defaults["combined"]),
        _row("pHash alone (best)", f"distance <= {swept['phash'][0]}", swept["phash"][1]),
        _row("CNN alone (best)", f"cosine >= {swept['cnn'][0]}", swept["cnn"][1]),
        _row("combined (best)", str(swept["combined"][0]), swept["combined"][1]),
        *(_row(f"{m} (held out)", "fit on other half of scenes", s) for m, s in honest.items()),
        "",
    ]  # fmt: skip
    misses = Counter()
    for k in np.flatnonzero(table.duplicate & ~decided):
        misses.update({items[table.i[k]].edit, items[table.j[k]].edit})
    false_pairs = Counter()
    for k in np.flatnonzero(~table.duplicate & decided):
        false_pairs[(items[table.i[k]].group, items[table.j[k]].group)] += 1
    lines += [
        "Edits most involved in missed pairs (defaults): "
        + ", ".join(f"{e} {n}" for e, n in misses.most_common(6)),
        "Group pairs confused (defaults): "
        + ", ".join(f"{a} ~ {b} ({n})" for (a, b), n in false_pairs.most_common(6)),
        f"Ran in {time.perf_counter() - started:.0f} s; precision floor {args.min_precision}.",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report + "\n")
    (args.out / "results.json").write_text(json.dumps({
        "defaults": {k: asdict(v) for k, v in at_defaults.items()},
        "best": {k: {"rule": str(v[0]), **asdict(v[1])} for k, v in swept.items()},
        "held_out": {k: asdict(v) for k, v in honest.items()},
    }, indent=2, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
