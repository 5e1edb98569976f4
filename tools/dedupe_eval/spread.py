"""How far the deduper's embeddings of a photo's copies lie from each other: the spread
the scale bench draws its synthetic near-duplicates with (bench/scale.py).

On the evaluation set (tools/dedupe_eval: 52 groups of one shot and 19 edited copies,
the configured model and its inputs), per group: each copy's cosine to the group's
original and to the group's mean direction, and the cosine between two copies of one
shot; the burst frames' cosine to their shot (a near but distinct photo). Prints a JSON
summary (percentiles) and writes it to .bench/eval-dedupe/spread.json.

    python -m tools.dedupe_eval.spread
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from tools.dedupe_eval.__main__ import OUT, model_spec
from tools.dedupe_eval.dataset import samples, second_shots
from tools.dedupe_eval.image_signals import image_signals

PERCENTILES = (1, 5, 10, 25, 50, 75, 90)


def _summary(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    out = {f"p{p}": round(float(np.percentile(a, p)), 4) for p in PERCENTILES}
    return {**out, "mean": round(float(a.mean()), 4), "n": len(values)}


def main() -> None:
    args = argparse.Namespace(model="configured", input_size=0, no_sub_views=False, no_mirror=False)
    spec = model_spec(args)
    items = list(samples()) + list(second_shots())
    signals = image_signals(items, spec, OUT / "cache")
    e = signals.embeddings / np.linalg.norm(signals.embeddings, axis=1, keepdims=True)
    to_original, to_centre, between, burst = [], [], [], []
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(items):
        groups.setdefault(s.group, []).append(k)
    originals = {s.group: k for k, s in enumerate(items) if s.edit == "original"}
    centres: dict[str, np.ndarray] = {}  # the left half's shot, by scene
    for group, members in groups.items():
        copies = [k for k in members if items[k].shot != "burst"]
        if not copies:
            continue
        centre = e[copies].mean(axis=0)
        centre /= np.linalg.norm(centre)
        if items[copies[0]].shot == "left":
            centres[items[copies[0]].scene] = centre
        for k in copies:
            if k != originals.get(group):
                to_original.append(float(e[k] @ e[originals[group]]))
            to_centre.append(float(e[k] @ centre))
        sims = e[copies] @ e[copies].T
        between += sims[np.triu_indices(len(copies), 1)].tolist()
    # a burst frame and its copies (the camera moved by 40 %, rolled 2 degrees) against
    # the mean direction of the shot it was taken beside (the left half)
    burst = [
        float(e[k] @ centres[s.scene])
        for k, s in enumerate(items)
        if s.shot == "burst" and s.scene in centres
    ]
    result = {
        "model": spec.name,
        "images": len(items),
        "groups": len(groups),
        "copy_to_original": _summary(to_original),
        "copy_to_centre": _summary(to_centre),
        "copy_to_copy": _summary(between),
        "burst_frame_to_centre": _summary(burst) if burst else None,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "spread.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
