"""Duplicate groups from duplicate pairs, by a rule that cannot chain.

A pair is two images that ``decide()`` judged duplicates; a group is what a person is
shown as "one photo, several copies", and may act on (keep one, trash the rest). The
rules, measured against each other by ``make eval-dedupe``:

- ``SINGLE_LINK``: every connected component of the pairs is a group. One wrong pair
  fuses two groups, and a chain of pairs joins photos that share nothing: the baseline.
- ``STRONG_LINK``: components of the strong pairs only (the caller says which are
  strong); a weak pair between two groups is only reported as ``similar``.
- ``COMPLETE_LINK``: dupeGuru's rule: every member is a duplicate of every other.
- ``REFERENCE``: digiKam's and czkawka's: a reference image and the images that match it.
- ``AVERAGE_LINK``: two groups merge when at least ``min_density`` of the pairs between
  them are duplicates (half, by default). One pair between two groups of three is 1/9
  of theirs: no merge; a copy that matches only one of a photo's two other copies still
  joins them (at 3/5 it would not: ``make eval-dedupe`` measured 11 points less group
  recall on the issue's test for no gain in precision).

Every rule groups only images joined by pairs, so the groups inside one connected
component of the pairs (all of them, weak ones too) depend on that component alone:
whoever keeps groups regroups the component an image joins, leaves or changes, and
nothing else (``group`` of that component's pairs). Results never depend on the order of
the images or the pairs: every choice is ordered by strength and then by the images'
ids, and scores are compared as integers, so sums are exact in any order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any, Generic, Protocol, TypeVar


class _Ordered(Protocol):
    """An image id: hashable and ordered (UUIDs, ints and strings all are)."""

    def __lt__(self, other: Any, /) -> bool: ...

    def __hash__(self) -> int: ...


N = TypeVar("N", bound=_Ordered)
K = TypeVar("K", bound=_Ordered)

SCORE_SCALE = 1_000_000  # scores as integers: sums exact whatever the order


class Rule(StrEnum):
    SINGLE_LINK = "single-link"
    STRONG_LINK = "strong-link"
    COMPLETE_LINK = "complete-link"
    REFERENCE = "reference"
    AVERAGE_LINK = "average-link"


@dataclass(frozen=True)
class Pair(Generic[N]):
    a: N
    b: N
    score: float  # similarity in [0, 1]: breaks ties, higher first
    strong: bool = True  # enough on its own to group (STRONG_LINK uses only these)


@dataclass(frozen=True)
class Grouping(Generic[N]):
    groups: tuple[frozenset[N], ...]  # each of two images or more, ordered by least id
    similar: tuple[tuple[N, N], ...]  # pairs left between groups: shown, not grouped


@dataclass(frozen=True)
class _Link:
    score: int
    strong: bool


Links = dict[tuple[N, N], _Link]


def _canonical(pairs: Iterable[Pair[N]]) -> Links[N]:
    """One link per unordered pair: the higher score, strong if any copy is."""
    links: Links[N] = {}
    for p in pairs:
        if p.a == p.b:
            continue
        key = (p.a, p.b) if p.a < p.b else (p.b, p.a)
        link = _Link(round(p.score * SCORE_SCALE), p.strong)
        old = links.get(key)
        if old is not None:
            link = _Link(max(old.score, link.score), old.strong or link.strong)
        links[key] = link
    return links


class _UnionFind(Generic[N]):
    def __init__(self) -> None:
        self.parent: dict[N, N] = {}

    def find(self, x: N) -> N:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: N, y: N) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            # the least id is the root, so roots do not depend on the order of unions
            self.parent[max(rx, ry)] = min(rx, ry)

    def sets(self) -> list[frozenset[N]]:
        out: dict[N, set[N]] = {}
        for x in self.parent:
            out.setdefault(self.find(x), set()).add(x)
        return [frozenset(s) for s in out.values()]


def components(pairs: Iterable[Pair[N]]) -> list[frozenset[N]]:
    """Connected components of the pairs, ordered by least id."""
    uf: _UnionFind[N] = _UnionFind()
    for a, b in _canonical(pairs):
        uf.union(a, b)
    return sorted(uf.sets(), key=min)


def group(
    pairs: Iterable[Pair[N]],
    rule: Rule,
    *,
    min_density: float | Fraction = Fraction(1, 2),
    cannot_link: Iterable[tuple[N, N]] = (),
) -> Grouping[N]:
    """The groups ``rule`` makes of ``pairs``, and the pairs it leaves between groups.

    ``cannot_link``: pairs of images that must never share a group (a person said "not
    duplicates"); their pair, if any, is ignored. ``min_density`` is AVERAGE_LINK's share.
    """
    forbidden = {(a, b) if a < b else (b, a) for a, b in cannot_link}
    links = {k: v for k, v in _canonical(pairs).items() if k not in forbidden}
    uf: _UnionFind[N] = _UnionFind()
    for a, b in links:
        uf.union(a, b)
    by_root: dict[N, Links[N]] = {}
    for key, link in links.items():
        by_root.setdefault(uf.find(key[0]), {})[key] = link
    groups: list[frozenset[N]] = []
    for component in uf.sets():
        inside = by_root[uf.find(next(iter(component)))]
        groups += _group_component(sorted(component), inside, rule, min_density, forbidden)
    groups = sorted((g for g in groups if len(g) > 1), key=min)
    member_of = {n: i for i, g in enumerate(groups) for n in g}
    similar = tuple(
        sorted(
            (a, b)
            for a, b in links
            if a not in member_of or b not in member_of or member_of[a] != member_of[b]
        )
    )
    return Grouping(tuple(groups), similar)


def _group_component(
    nodes: list[N],
    links: Links[N],
    rule: Rule,
    min_density: float | Fraction,
    forbidden: set[tuple[N, N]],
) -> list[frozenset[N]]:
    if rule is Rule.SINGLE_LINK:
        return [frozenset(nodes)]
    if rule is Rule.STRONG_LINK:
        uf: _UnionFind[N] = _UnionFind()
        for (a, b), link in links.items():
            if link.strong:
                uf.union(a, b)
        return uf.sets()
    if rule is Rule.REFERENCE:
        return _around_references(nodes, links, forbidden)
    share = Fraction(1) if rule is Rule.COMPLETE_LINK else Fraction(min_density)
    if not 0 < share <= 1:
        raise ValueError(f"min_density must be in (0, 1], got {min_density}")
    return _agglomerate(nodes, links, share, forbidden)


def _agglomerate(
    nodes: list[N], links: Links[N], share: Fraction, forbidden: set[tuple[N, N]]
) -> list[frozenset[N]]:
    """Average linkage on the pair graph (complete linkage at share 1).

    Start from single images; repeatedly merge the two groups with the densest pairs
    between them (then the higher mean score, then the least ids) while that density is
    at least ``share`` and no forbidden pair would share a group. A heap holds every
    mergeable couple; an entry whose groups changed since it was pushed is skipped.
    """
    members: dict[N, list[N]] = {n: [n] for n in nodes}  # keyed by the least member
    # between[x][y] = [pairs between groups x and y, sum of their scores]
    between: dict[N, dict[N, list[int]]] = {n: {} for n in nodes}
    for (a, b), link in links.items():
        between[a][b] = [1, link.score]
        between[b][a] = [1, link.score]
    apart: dict[N, set[N]] = {n: set() for n in nodes}
    for a, b in forbidden:
        if a in apart and b in apart:
            apart[a].add(b)
            apart[b].add(a)
    num, den = share.numerator, share.denominator

    def entry(x: N, y: N) -> tuple[float, float, N, N] | None:
        """The heap's order: densest first, then the best mean score, then least ids."""
        count, total = between[x][y]
        size = len(members[x]) * len(members[y])
        if count * den < num * size:  # exact: density below the share
            return None
        # floats of the same integers: the same in any order
        return (-(count / size), -(total / count), x, y)

    heap = [e for a, b in links if (e := entry(a, b)) is not None]
    heapq.heapify(heap)
    while heap:
        popped = heapq.heappop(heap)
        x, y = popped[2], popped[3]
        if y not in between.get(x, {}) or entry(x, y) != popped or y in apart[x]:
            continue  # gone, changed since (a fresher entry exists), or forbidden
        _merge(x, y, members, between, apart)
        for other in between[x]:
            low, high = (x, other) if x < other else (other, x)
            if (e := entry(low, high)) is not None:
                heapq.heappush(heap, e)
    return [frozenset(m) for m in members.values()]


def _merge(
    keep: N,
    gone: N,
    members: dict[N, list[N]],
    between: dict[N, dict[N, list[int]]],
    apart: dict[N, set[N]],
) -> None:
    members[keep] += members.pop(gone)
    for other, (count, total) in between.pop(gone).items():
        del between[other][gone]
        if other == keep:
            continue
        sums = between[keep].setdefault(other, [0, 0])
        sums[0] += count
        sums[1] += total
        between[other][keep] = sums
    for other in apart.pop(gone):
        apart[other].discard(gone)
        if other != keep:
            apart[other].add(keep)
            apart[keep].add(other)


def _around_references(
    nodes: list[N], links: Links[N], forbidden: set[tuple[N, N]]
) -> list[frozenset[N]]:
    """Reference groups: the image with the most pairs among those left (then the higher
    score sum, then the least id) takes every image left that pairs with it."""
    neighbours: dict[N, dict[N, int]] = {n: {} for n in nodes}
    for (a, b), link in links.items():
        neighbours[a][b] = link.score
        neighbours[b][a] = link.score
    left = set(nodes)
    groups = []
    while True:
        ranked = [
            (len(near), sum(near.values()), n)
            for n in sorted(left)
            if (near := {m: s for m, s in neighbours[n].items() if m in left})
        ]
        if not ranked:
            return groups + [frozenset({n}) for n in left]
        degree, score_sum, reference = ranked[0]
        for d, s, n in ranked[1:]:
            if (d, s) > (degree, score_sum):
                degree, score_sum, reference = d, s, n
        chosen = [reference]
        # best matches first, so a forbidden pair keeps the closer of its two images
        for m in sorted(
            (m for m in neighbours[reference] if m in left),
            key=lambda m: (-neighbours[reference][m], m),
        ):
            if not any(((m, c) if m < c else (c, m)) in forbidden for c in chosen):
                chosen.append(m)
        groups.append(frozenset(chosen))
        left -= set(chosen)


def carry_ids(previous: Mapping[K, frozenset[N]], groups: Sequence[frozenset[N]]) -> list[K | None]:
    """For each new group, the id of the previous group it continues, or None (a new one).

    A previous id goes to the new group sharing the most members with it (ties: the
    new group with the least id, then the least previous id), each id at most once, so
    a group keeps its id while images join or leave it and a split keeps it on the
    larger part.
    """
    overlaps = sorted(
        (-len(old & new), min(new), old_id, index)
        for index, new in enumerate(groups)
        for old_id, old in previous.items()
        if old & new
    )
    out: list[K | None] = [None] * len(groups)
    used: set[K] = set()
    for _, _, old_id, index in overlaps:
        if out[index] is None and old_id not in used:
            out[index] = old_id
            used.add(old_id)
    return out


@dataclass(frozen=True)
class Regrouped(Generic[N, K]):
    """A component's groups against the groups stored for it: what to write."""

    kept: dict[K, frozenset[N]]  # stored ids that go on, with their members now
    changed: frozenset[K]  # of those, the ones whose members changed (a new version)
    new: tuple[frozenset[N], ...]  # groups to store under new ids
    retired: frozenset[K]  # stored ids with no group any more (merged away or emptied)
    similar: tuple[tuple[N, N], ...]  # pairs left between groups


def regroup(
    pairs: Iterable[Pair[N]],
    previous: Mapping[K, frozenset[N]],
    rule: Rule = Rule.AVERAGE_LINK,
    *,
    min_density: float | Fraction = Fraction(1, 2),
    cannot_link: Iterable[tuple[N, N]] = (),
) -> Regrouped[N, K]:
    """Group one connected component's pairs again and say what changed.

    ``pairs``: every duplicate pair among the images of the components touched (the one
    an image joined or was reprocessed in; the parts of the one a deleted image left,
    its own pairs gone with it). ``previous``: the stored groups that had any of their
    images, by id. Components are independent, so one call may hold several.
    """
    result = group(pairs, rule, min_density=min_density, cannot_link=cannot_link)
    ids = carry_ids(previous, result.groups)
    kept = {i: g for i, g in zip(ids, result.groups, strict=True) if i is not None}
    return Regrouped(
        kept=kept,
        changed=frozenset(i for i, g in kept.items() if previous[i] != g),
        new=tuple(g for i, g in zip(ids, result.groups, strict=True) if i is None),
        retired=frozenset(previous) - frozenset(kept),
        similar=result.similar,
    )
