"""Duplicate groups from pairs: what each rule makes of the cases that hurt users, and the
properties a stored group needs (any input order, one component at a time, stable ids)."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction

import pytest

from imgflow_runtime.grouping import Pair, Rule, carry_ids, components, group, regroup

ALL_RULES = list(Rule)


def clique(names: str, score: float = 0.95, strong: bool = True) -> list[Pair[str]]:
    return [Pair(a, b, score, strong) for a, b in itertools.combinations(names, 2)]


def groups_of(pairs: list[Pair[str]], rule: Rule, **kw: object) -> set[frozenset[str]]:
    return set(group(pairs, rule, **kw).groups)  # type: ignore[arg-type]


# The case: the left half of a photo with two edited copies, the right half with
# two, and one weak pair between a letterboxed left copy and a hue-shifted right copy.
HALVES = [*clique("abc"), *clique("xyz"), Pair("b", "z", 0.83, strong=False)]
LEFT, RIGHT = frozenset("abc"), frozenset("xyz")


def test_single_link_fuses_two_photos_through_one_weak_pair() -> None:
    assert groups_of(HALVES, Rule.SINGLE_LINK) == {LEFT | RIGHT}


@pytest.mark.parametrize("rule", [Rule.STRONG_LINK, Rule.COMPLETE_LINK, Rule.AVERAGE_LINK])
def test_a_weak_pair_never_fuses_two_groups(rule: Rule) -> None:
    result = group(HALVES, rule)
    assert set(result.groups) == {LEFT, RIGHT}
    assert result.similar == (("b", "z"),)


def test_a_reference_takes_a_stray_match_from_the_other_group() -> None:
    # b has the most pairs (a, c and the stray z), so its group takes z: no fusion, but
    # one image of the right half is in the left half's group
    result = group(HALVES, Rule.REFERENCE)
    assert set(result.groups) == {LEFT | {"z"}, frozenset("xy")}


def test_strong_link_still_chains_through_one_strong_pair() -> None:
    bridged = [*clique("abc"), *clique("xyz"), Pair("b", "z", 0.93)]
    assert groups_of(bridged, Rule.STRONG_LINK) == {LEFT | RIGHT}
    for rule in (Rule.COMPLETE_LINK, Rule.AVERAGE_LINK):
        assert groups_of(bridged, rule) == {LEFT, RIGHT}, rule


def test_a_chain_of_pairs_is_not_one_group() -> None:
    chain = [Pair("a", "b", 0.95), Pair("b", "c", 0.94), Pair("c", "d", 0.95)]
    assert groups_of(chain, Rule.SINGLE_LINK) == {frozenset("abcd")}
    assert groups_of(chain, Rule.COMPLETE_LINK) == {frozenset("ab"), frozenset("cd")}
    assert groups_of(chain, Rule.AVERAGE_LINK) == {frozenset("ab"), frozenset("cd")}
    # a reference takes its own matches: b (most pairs, then the higher scores) takes a, c
    assert groups_of(chain, Rule.REFERENCE) == {frozenset("abc")}


def test_average_link_keeps_copies_that_miss_a_pair_with_a_sibling() -> None:
    # a crop and its mirror image often fail to match; both match the rest
    pairs = [p for p in clique("abcde") if {p.a, p.b} != {"d", "e"}]
    assert groups_of(pairs, Rule.AVERAGE_LINK) == {frozenset("abcde")}
    assert groups_of(pairs, Rule.COMPLETE_LINK) == {frozenset("abcd")}  # e left out


def test_average_link_density_is_the_share_of_pairs_between_groups() -> None:
    # {a, b} and c with one pair of two: half the pairs
    pairs = [Pair("a", "b", 0.99), Pair("b", "c", 0.95)]
    assert groups_of(pairs, Rule.AVERAGE_LINK, min_density=Fraction(1, 2)) == {frozenset("abc")}
    assert groups_of(pairs, Rule.AVERAGE_LINK, min_density=0.6) == {frozenset("ab")}
    with pytest.raises(ValueError, match="min_density"):
        group(pairs, Rule.AVERAGE_LINK, min_density=0)


def test_cannot_link_keeps_two_images_apart_under_every_rule() -> None:
    pairs = clique("abcd")
    for rule in ALL_RULES:
        result = group(pairs, rule, cannot_link=[("c", "a")])
        together = [g for g in result.groups if {"a", "c"} <= g]
        if rule in (Rule.SINGLE_LINK, Rule.STRONG_LINK):
            # closures ignore the pair itself but may still join a and c through others
            assert ("a", "c") not in result.similar, rule
            continue
        assert not together, rule


def test_repeated_and_reversed_pairs_count_once_with_their_best_score() -> None:
    once = group([Pair("a", "b", 0.9), Pair("b", "c", 0.9)], Rule.REFERENCE)
    twice = group(
        [Pair("b", "a", 0.5), Pair("a", "b", 0.9), Pair("c", "b", 0.9), Pair("a", "a", 1.0)],
        Rule.REFERENCE,
    )
    assert once == twice


def random_pairs(rng: random.Random, n: int) -> list[Pair[int]]:
    """Several true groups with missing pairs, plus stray weak and strong pairs between
    them; scores from a few values, so ties are common."""
    pairs = []
    nodes = list(range(n))
    rng.shuffle(nodes)
    cut = sorted(rng.sample(range(1, n), n // 5))
    true_groups = [nodes[i:j] for i, j in zip([0, *cut], [*cut, n], strict=True)]
    for members in true_groups:
        for a, b in itertools.combinations(members, 2):
            if rng.random() < 0.85:
                pairs.append(Pair(a, b, rng.choice([0.9, 0.95, 1.0]), rng.random() < 0.8))
    for _ in range(n // 3):
        a, b = rng.sample(range(n), 2)
        pairs.append(Pair(a, b, rng.choice([0.82, 0.9]), rng.random() < 0.3))
    return pairs


def shuffled(pairs: list[Pair[int]], rng: random.Random) -> list[Pair[int]]:
    out = [Pair(p.b, p.a, p.score, p.strong) if rng.random() < 0.5 else p for p in pairs]
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("rule", ALL_RULES)
@pytest.mark.parametrize("seed", range(5))
def test_groups_do_not_depend_on_the_order_of_pairs(rule: Rule, seed: int) -> None:
    rng = random.Random(seed)
    pairs = random_pairs(rng, 40)
    results = [group(shuffled(pairs, rng), rule, cannot_link=[(3, 7)]) for _ in range(3)]
    assert results[0] == results[1] == results[2]
    assert results[0].groups  # not trivially equal


@pytest.mark.parametrize("rule", ALL_RULES)
def test_a_component_alone_gets_the_groups_it_gets_among_all(rule: Rule) -> None:
    """What lets the deduper regroup only the component an image touches."""
    pairs = random_pairs(random.Random(7), 60)
    everything = set(group(pairs, rule).groups)
    one_by_one: set[frozenset[int]] = set()
    for component in components(pairs):
        inside = [p for p in pairs if p.a in component]
        one_by_one |= set(group(inside, rule).groups)
    assert one_by_one == everything


def test_every_image_is_in_one_group_at_most_and_groups_have_two() -> None:
    pairs = random_pairs(random.Random(3), 50)
    for rule in ALL_RULES:
        result = group(pairs, rule)
        seen = [n for g in result.groups for n in g]
        assert len(seen) == len(set(seen)), rule
        assert all(len(g) >= 2 for g in result.groups), rule


def test_ids_carry_over_as_images_join_leave_and_groups_split() -> None:
    previous = {101: frozenset("abc"), 102: frozenset("xyz")}
    # d joined the first group; z was deleted; then the first splits in two
    assert carry_ids(previous, [frozenset("abcd"), frozenset("xy")]) == [101, 102]
    assert carry_ids(previous, [frozenset("ab"), frozenset("cd"), frozenset("xyz")]) == [
        101,
        None,
        102,
    ]
    # two groups merged: the larger overlap keeps its id, the other id is retired
    merged = carry_ids({1: frozenset("ab"), 2: frozenset("cde")}, [frozenset("abcde")])
    assert merged == [2]
    assert carry_ids({}, [frozenset("ab")]) == [None]


def test_regroup_says_what_to_write_when_an_image_joins() -> None:
    before = {7: frozenset("abc"), 8: frozenset("xyz")}
    pairs = [*clique("abcd"), *clique("xyz"), Pair("d", "x", 0.83, strong=False)]
    result = regroup(pairs, before)
    assert result.kept == {7: frozenset("abcd"), 8: frozenset("xyz")}
    assert result.changed == {7}  # a new version of 7 only
    assert result.new == () and result.retired == frozenset()
    assert result.similar == (("d", "x"),)


def test_regroup_after_a_delete_that_splits_a_group() -> None:
    # b held a, c and d together (a matched only b); b deleted, its pairs gone with it
    before = {7: frozenset("abcd")}
    pairs = [Pair("c", "d", 0.95), Pair("a", "e", 0.92)]
    result = regroup(pairs, before)
    assert result.kept == {7: frozenset("cd")}  # the larger part keeps the id
    assert result.new == (frozenset("ae"),)
    assert result.changed == {7}


def test_regroup_retires_the_smaller_of_two_merged_groups() -> None:
    before = {1: frozenset("ab"), 2: frozenset("cde")}
    result = regroup(clique("abcde"), before)
    assert result.kept == {2: frozenset("abcde")}
    assert result.retired == {1}


def test_regroup_of_an_unchanged_component_changes_nothing() -> None:
    before = {3: frozenset("abc")}
    result = regroup(clique("abc"), before)
    assert (result.kept, result.changed, result.new, result.retired) == (
        before,
        frozenset(),
        (),
        frozenset(),
    )
