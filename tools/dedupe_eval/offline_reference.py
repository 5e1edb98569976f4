"""What the offline eval makes of the very images a through-API run uploaded: every pair
scored by the deduper's decision at its configured thresholds (the geometric check
included, on the pairs the deduper checks), grouped by its rule and stacked by the stack
rule, with no retrieval step and every pHash present. Against it, a through-API mistake
is either the decision's (made offline too) or the running system's (retrieval, timing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgflow_deduper.settings import DedupeSettings
from imgflow_runtime.grouping import Rule
from tools.build_model import ensure_model
from tools.dedupe_eval.dataset import Sample
from tools.dedupe_eval.geometry import NEAR_PHASH, pair_geometry
from tools.dedupe_eval.group_metrics import group_counts, stack_counts
from tools.dedupe_eval.image_signals import ModelSpec, image_signals
from tools.dedupe_eval.relations import stacks_of
from tools.dedupe_eval.report import configured, subset
from tools.dedupe_eval.rules import Setting, groups_of
from tools.dedupe_eval.signals import pair_table

if TYPE_CHECKING:  # through_api imports this module
    from tools.dedupe_eval.through_api import DrawResult


def configured_model() -> ModelSpec:
    """The model and pixel settings the system's deduper runs with (through_api starts it
    with the model ``ensure_model`` builds)."""
    s = DedupeSettings()
    mean, std = s.dedupe_mean, s.dedupe_std
    return ModelSpec(s.dedupe_model_name, ensure_model(), s.dedupe_input_size,
                     (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]),
                     s.dedupe_sub_views, s.dedupe_mirror_invariant)  # fmt: skip


def configured_setting() -> Setting:
    """The deduper's rule as configured: average linkage, its thresholds, its geometric
    check (when on) from its probe cosine."""
    s = DedupeSettings()
    base = configured(Rule.AVERAGE_LINK)
    return replace(base, geometry=s.geometry(), probe_cosine=s.dedupe_probe_cosine)


def offline_results(results: Sequence[DrawResult], cache: Path | None) -> list[DrawResult]:
    """Each run's uploads, grouped offline (its ``groups`` and ``counts`` replaced)."""
    unique = {(u.group, u.edit): u for r in results for u in r.uploads}
    keys = sorted(unique)
    samples = [Sample(g, e, unique[(g, e)].data, g.split("#")[0], g.split("#")[-1])
               for g, e in keys]  # fmt: skip
    signals = image_signals(samples, configured_model(), cache)
    table = pair_table(samples, signals)
    setting = configured_setting()
    if setting.geometry is not None:
        near = (table.cnn >= setting.probe_cosine) | (table.phash_distance <= NEAR_PHASH)
        found = pair_geometry(samples, table.i, table.j, np.flatnonzero(near), cache)
        table = pair_table(samples, signals, found)
    position = {key: k for k, key in enumerate(keys)}
    out = []
    for r in results:
        nodes = np.array(sorted(position[(u.group, u.edit)] for u in r.uploads))
        upload_of = {position[(u.group, u.edit)]: k for k, u in enumerate(r.uploads)}
        among = subset(table, len(samples), nodes)
        groups = [sorted(upload_of[int(nodes[m])] for m in g) for g in groups_of(among, setting)]
        stacked = [sorted(upload_of[int(nodes[m])] for m in g) for g in stacks_of(among, setting)]
        labels = [u.group for u in r.uploads]
        scored = stack_counts(labels, [u.scene_name for u in r.uploads], stacked)
        out.append(replace(r, groups=groups, counts=group_counts(labels, groups),
                           stacks=stacked, stack_counts=scored))  # fmt: skip
    return out
