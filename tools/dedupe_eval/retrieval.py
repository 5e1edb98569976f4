"""Which pairs the running deduper ever judges: its retrieval step, replayed offline.

The offline eval judges every pair; the worker judges only the candidates its search
returns (``imgflow_deduper.repository.find_candidates``) when an image is checked, i.e.
each pair once, by the later of its two uploads: the ``k`` nearest earlier images by the
whole-frame cosine (HNSW), the ``k`` nearest by pHash within the loosest distance, and,
when ``per_group`` is on, the similar-check candidates (``repository.similar_candidates``):
the nearest image of each other duplicate group (or ungrouped image) among the ``wide``
nearest at least ``probe_cosine`` alike, at most ``k`` of them. A tenant with many copies
of each shot fills the ``k`` nearest with copies, and a shot that embeds apart from the
rest of its scene is never judged against it: this measures how much that costs the
stacks (``candidate_mask``), in a random upload order, with the groups known so far taken
as the labelled groups (the deduper's groups are exact on these sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tools.dedupe_eval.group_metrics import GroupCounts, stack_counts
from tools.dedupe_eval.relations import stacks_of
from tools.dedupe_eval.report import Split
from tools.dedupe_eval.rules import Setting
from tools.dedupe_eval.signals import PairTable


@dataclass(frozen=True)
class Retrieval:
    k: int = 20  # IMGFLOW_DEDUPE_CANDIDATES, per source
    phash_distance: int = 22  # the loosest pHash distance a rule accepts
    per_group: bool = False  # the similar-check candidates too
    wide: int = 200  # how many nearest the similar-check candidates are drawn from
    probe_cosine: float = 0.5


def _square(t: PairTable, n: int, values: np.ndarray, fill: float) -> np.ndarray:
    out = np.full((n, n), fill, np.float64)
    out[t.i, t.j] = values
    out[t.j, t.i] = values
    return out


def candidate_mask(
    t: PairTable, labels: list[str], retrieval: Retrieval, seed: int = 0
) -> np.ndarray:
    """For each pair of ``t``: whether the later upload's check would have it as a
    candidate (``labels``: each image's duplicate group)."""
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    cosine = _square(t, n, t.cosine.astype(np.float64), -2.0)
    distance = _square(t, n, t.phash_distance.astype(np.float64), 65.0)
    chosen = np.zeros((n, n), bool)
    group = np.array(labels)
    for position, me in enumerate(order):
        earlier = order[:position]
        if not len(earlier):
            continue
        by_cosine = earlier[np.argsort(-cosine[me, earlier], kind="stable")]
        chosen[me, by_cosine[: retrieval.k]] = True
        close = earlier[distance[me, earlier] <= retrieval.phash_distance]
        close = close[np.argsort(distance[me, close], kind="stable")]
        chosen[me, close[: retrieval.k]] = True
        if retrieval.per_group:
            wide = by_cosine[: retrieval.wide]
            wide = wide[cosine[me, wide] >= retrieval.probe_cosine]
            _, first = np.unique(group[wide], return_index=True)  # nearest of each group
            chosen[me, wide[np.sort(first)][: retrieval.k]] = True
    later_i = rank[t.i] > rank[t.j]
    return np.where(later_i, chosen[t.i, t.j], chosen[t.j, t.i])


def stacks_through(
    t: PairTable, labels: list[str], setting: Setting, retrieval: Retrieval | None, seed: int = 0
) -> list[frozenset[int]]:
    """The stacks the deduper stores (``relations.stacks_of``: its groups and related
    pairs) of the pairs that the retrieval lets it judge (``None``: every pair, as the
    offline eval)."""
    if retrieval is None:
        return stacks_of(t, setting)
    return stacks_of(t.where(candidate_mask(t, labels, retrieval, seed)), setting)


def retrieval_rows(
    split: Split, scenes: Sequence[str], setting: Setting, seeds: int = 3
) -> list[str]:
    """Stack P / R with every pair judged, and with the worker's retrieval (pooled over
    ``seeds`` upload orders), without and with the similar-check candidates."""
    rows = []
    ways: tuple[tuple[str, Retrieval | None], ...] = (
        ("every pair (offline)", None),
        ("the 20 nearest + pHash-near", Retrieval(probe_cosine=setting.probe_cosine)),
        (
            "+ the nearest of each other group (similar check)",
            Retrieval(per_group=True, probe_cosine=setting.probe_cosine),
        ),
    )
    for name, way in ways:
        total = GroupCounts()
        for seed in range(1 if way is None else seeds):
            found = stacks_through(split.table, split.labels, setting, way, seed)
            total += stack_counts(split.labels, scenes, [sorted(m) for m in found])
        rows.append(f"| {name} | {total.precision:.3f} | {total.recall:.3f} |")
    return rows


def main() -> None:
    """``python -m tools.dedupe_eval.retrieval``: the replay on the tuning and test splits
    and the unseen set (each at the rule as configured; signals from the eval's cache)."""
    from tools.dedupe_eval import unseen
    from tools.dedupe_eval.__main__ import OUT, with_geometry
    from tools.dedupe_eval.dataset import samples
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting
    from tools.dedupe_eval.splits import TEST, TUNE, indices

    setting, spec, cache = configured_setting(), configured_model(), OUT / "cache"
    lines = ["| set | candidates judged | stack precision | stack recall |",
             "| --- | --- | ---: | ---: |"]  # fmt: skip
    labelled = list(samples())
    full, _ = with_geometry(labelled, spec, cache)
    sets = [(name, labelled, full, indices(labelled, split)) for name, split in
            (("tune", TUNE), ("test", TEST))]  # fmt: skip
    others = unseen.samples()
    table, _ = with_geometry(others, spec, cache)
    sets.append(("unseen", others, table, np.arange(len(others))))
    for name, items, t, nodes in sets:
        split = Split.of(t, items, nodes)
        rows = retrieval_rows(split, [items[k].scene for k in nodes], setting)
        lines += [f"| {name} " + row for row in rows]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
