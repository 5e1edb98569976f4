"""Similar stacks: the sets of images that show one scene or moment (issue 28).

A stack is made of images joined by *related* pairs, duplicate or similar, grouped by the
duplicate groups' own rule (average linkage, ``imgflow_runtime.grouping``) at a low
density: two parts join when at least ``STACK_DENSITY`` of the pairs between them are
related, so one stray similar pair (a texture like another) cannot fuse two scenes, as
single link let it. The evaluation (``tools.dedupe_eval.relations``) chose the density on
its tuning split and scores the stacks this module makes; the deduper stores the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from fractions import Fraction
from typing import TypeVar

from imgflow_runtime.grouping import Grouping, Pair, Regrouped, Rule, group, regroup

N = TypeVar("N", bound=Hashable)
K = TypeVar("K", bound=Hashable)

# Chosen on the tuning split among 1/400, 1/200, 1/100, 1/50, 1/20, 1/10 (best stack F1
# there; single link: 0.912 / 0.833, more precise here at 0.969 / 0.833): about one
# related pair between two duplicate groups of 20 suffices, none between larger parts.
STACK_DENSITY = Fraction(1, 400)


def _pairs(related: Iterable[tuple[N, N]]) -> list[Pair[N]]:
    return [Pair(a, b, 1.0, True) for a, b in related]


def stacks(
    related: Iterable[tuple[N, N]], *, cannot_link: Iterable[tuple[N, N]] = ()
) -> Grouping[N]:
    """The stacks that the related (duplicate or similar) pairs make."""
    return group(
        _pairs(related), Rule.AVERAGE_LINK, min_density=STACK_DENSITY, cannot_link=cannot_link
    )


def restack(
    related: Iterable[tuple[N, N]],
    previous: Mapping[K, frozenset[N]],
    *,
    cannot_link: Iterable[tuple[N, N]] = (),
) -> Regrouped[N, K]:
    """One connected component's stacks again, against those stored for it (ids carried
    as for duplicate groups: a stack keeps its id while images join or leave it)."""
    return regroup(
        _pairs(related),
        previous,
        Rule.AVERAGE_LINK,
        min_density=STACK_DENSITY,
        cannot_link=cannot_link,
    )
