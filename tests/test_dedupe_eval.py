"""The eval's own arithmetic: group scores, pair subsets, splits by photograph."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from imgflow_deduper.decision import GeometryThresholds, Thresholds
from imgflow_runtime.grouping import Rule
from tools.dedupe_eval.dataset import SPLIT_SCENES, Sample
from tools.dedupe_eval.edits import ISSUE_EDITS
from tools.dedupe_eval.group_metrics import GroupCounts, group_counts, stack_counts
from tools.dedupe_eval.relations import Outcome, stored_stacks
from tools.dedupe_eval.report import Split, subset
from tools.dedupe_eval.retrieval import Retrieval, candidate_mask, stacks_through
from tools.dedupe_eval.rules import Setting, check_against_decide, groups_of, related
from tools.dedupe_eval.signals import PairTable
from tools.dedupe_eval.splits import TEST, TUNE, indices, issue_sets, split_of
from tools.dedupe_eval.stack_misses import KINDS, kinds
from tools.dedupe_eval.tool_report import after_choice_table, write_report
from tools.dedupe_eval.tuning_choice import (
    Tried,
    TuningSets,
    choose,
    geometry_grid,
    geometry_label,
)


def test_group_scores_count_the_pairs_a_group_implies() -> None:
    labels = ["L", "L", "L", "R", "R", "R"]
    # the issue's failure: both halves' copies in one group
    fused = group_counts(labels, [range(6)])
    assert (fused.true_pairs, fused.predicted_pairs, fused.correct_pairs) == (6, 15, 6)
    assert fused.precision == pytest.approx(0.4)
    assert fused.recall == 1.0
    assert fused.pure_share == 0.0
    # right, but one copy of R left alone: singletons are not groups
    split = group_counts(labels, [[0, 1, 2], [3, 4], [5]])
    assert (split.precision, split.recall, split.groups, split.pure_share) == (1.0, 4 / 6, 2, 1.0)


def table(n: int, groups: list[str], cosine: np.ndarray) -> PairTable:
    i, j = np.triu_indices(n, k=1)
    labels = np.array(groups)
    none = np.full(len(i), np.nan, np.float32)
    return PairTable(i, j, labels[i] == labels[j], cosine.astype(np.float32),
                     np.full(len(i), 64), np.zeros(len(i), bool), none,
                     np.zeros(len(i), bool), np.full(len(i), -1), np.full(len(i), -1),
                     none, none, none, none, none, none, np.full(len(i), -1),
                     none, np.full(len(i), -1), none)  # fmt: skip


def test_a_subset_keeps_its_pairs_signals_renumbered() -> None:
    n = 6
    i, j = np.triu_indices(n, k=1)
    full = table(n, list("aabbcc"), i * 10 + j)  # the cosine names the pair
    sub = subset(full, n, np.array([1, 3, 4]))
    assert sub.i.tolist() == [0, 0, 1] and sub.j.tolist() == [1, 2, 2]
    assert sub.cosine.tolist() == [13, 14, 34]


def test_the_eval_groups_with_the_deduper_decision_and_grouping() -> None:
    # two groups of three, one cross pair above the CNN threshold
    n = 6
    i, j = np.triu_indices(n, k=1)
    same = np.array(list("aaabbb"))
    cosine = np.where(same[i] == same[j], 0.97, 0.2)
    cosine[(i == 2) & (j == 3)] = 0.95
    t = table(n, list(same), cosine)
    th = Thresholds(0.93, 0, 0.9, 0)
    for rule, expected in [(Rule.SINGLE_LINK, 1), (Rule.AVERAGE_LINK, 2)]:
        setting = Setting(rule, th)
        check_against_decide(t, setting)
        assert len(groups_of(t, setting)) == expected


def sample(scene: str, group: str, edit: str, shot: str) -> Sample:
    return Sample(group, edit, b"", scene, shot)


def test_every_photo_is_in_one_split_and_both_splits_have_halves() -> None:
    of = split_of([*sorted(SPLIT_SCENES), "skimage/brick.png", "skimage/grass.png"])
    assert set(of.values()) == {TUNE, TEST}
    assert {of[s] for s in SPLIT_SCENES} == {TUNE, TEST}


def test_the_issue_sets_are_halves_with_two_of_the_issue_edits() -> None:
    items = [
        sample(scene, f"{scene}#{side}", edit, side)
        for scene in sorted(SPLIT_SCENES)[:4]
        for side in ("left", "right")
        for edit in ("original", *ISSUE_EDITS, "grey")
    ]
    of = split_of([s.scene for s in items])
    for draw in issue_sets(items, TEST, draws=3):
        chosen = [items[k] for k in draw]
        assert all(of[s.scene] == TEST for s in chosen)
        assert {s.edit for s in chosen} <= {"original", *ISSUE_EDITS}
        per_group = {g: sum(s.group == g for s in chosen) for g in {s.group for s in chosen}}
        assert set(per_group.values()) == {3}


def test_stacks_are_scored_on_the_pairs_of_different_shots() -> None:
    labels = ["L", "L", "R", "R", "X"]  # two shots of scene s, one of scene t
    scenes = ["s", "s", "s", "s", "t"]
    # the four shots of s in one stack: all 4 similar pairs, no wrong one
    right = stack_counts(labels, scenes, [[0, 1, 2, 3]])
    assert (right.true_pairs, right.predicted_pairs, right.correct_pairs) == (4, 4, 4)
    # X stacked with them: 4 wrong pairs more; R alone: nothing found
    assert stack_counts(labels, scenes, [range(5)]).precision == pytest.approx(0.5)
    assert stack_counts(labels, scenes, [[0, 1], [2, 3]]).recall == 0.0


def test_the_check_counts_only_on_pairs_as_alike_as_the_probe_cosine() -> None:
    # two shots of three images each; a cross pair shares content but embeds apart
    n = 6
    i, j = np.triu_indices(n, k=1)
    same = np.array(list("aaabbb"))
    cosine = np.where(same[i] == same[j], 0.97, 0.2)
    cross = (i == 2) & (j == 3)
    cosine[cross] = 0.6
    t = table(n, list(same), cosine)
    evidence = {"inliers": 40, "keypoints": 300, "iou": 0.25, "agreement": 1.0}
    unchecked = {"inliers": -1, "keypoints": -1, "iou": np.nan, "agreement": np.nan}
    t = replace(t, **{f: np.where(cross, v, unchecked[f]) for f, v in evidence.items()})
    th = Thresholds(0.93, 0, 0.9, 0)
    geometry = GeometryThresholds(10, 0.5, 0.7, 150)
    for probe, similar in [(0.75, False), (0.55, True)]:
        setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=probe)
        check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
        assert related(t, th, geometry, probe).similar[cross].item() is similar
        assert len(groups_of(t, setting)) == 2  # duplicate groups stay apart either way


def test_a_fit_held_by_few_cells_is_no_shared_content_in_the_eval_as_in_the_deduper() -> None:
    # two photos of a scene each with one copy; the two photos' copies carry one watermark
    n = 4
    i, j = np.triu_indices(n, k=1)
    groups = list("aabb")
    t = table(n, groups, np.where(np.array(groups)[i] == np.array(groups)[j], 0.97, 0.6))
    mark = (i == 1) & (j == 3)  # the watermark pair: the identity fit, 2 of 36 cells
    evidence = {"inliers": np.where(mark, 30, -1), "keypoints": np.where(mark, 300, -1),
                "iou": np.where(mark, 0.98, np.nan), "agreement": np.where(mark, 1.0, np.nan),
                "spread": np.where(mark, 2 / 36, np.nan)}  # fmt: skip
    t = replace(t, **evidence)
    th = Thresholds(0.93, 0, 0.9, 0)
    for floor, joined in [(0.0, True), (0.15, False)]:
        geometry = GeometryThresholds(10, 0.5, 0.7, 150, similar_spread=floor)
        setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=0.5)
        check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
        r = related(t, th, geometry, 0.5)
        assert bool(r.duplicate[mark].item() or r.similar[mark].item()) is joined


def test_a_fit_held_by_few_cells_with_keypoints_is_no_shared_content_in_eval_and_deduper() -> None:
    # as above; besides the watermark pair, a flat copy whose few corners hold its inliers
    n = 4
    i, j = np.triu_indices(n, k=1)
    groups = list("aabb")
    t = table(n, groups, np.where(np.array(groups)[i] == np.array(groups)[j], 0.97, 0.6))
    mark, flat = (i == 1) & (j == 3), (i == 0) & (j == 1)
    fitted = mark | flat
    evidence = {"inliers": np.where(fitted, 30, -1), "iou": np.where(fitted, 0.98, np.nan),
                "keypoints": np.where(mark, 300, np.where(flat, 20, -1)),
                "agreement": np.where(fitted, 1.0, np.nan),
                "spread": np.where(fitted, 2 / 36, np.nan),
                "keypoint_spread": np.where(mark, 0.1, np.where(flat, 0.7, np.nan))}  # fmt: skip
    t = replace(t, **evidence)
    th = Thresholds(0.93, 0, 0.9, 0)
    for floor, joined in [(0.0, True), (0.2, False)]:
        geometry = GeometryThresholds(10, 0.5, 0.7, 150, similar_keypoint_spread=floor)
        setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=0.5)
        check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
        r = related(t, th, geometry, 0.5)
        assert bool(r.duplicate[mark].item() or r.similar[mark].item()) is joined
        assert r.duplicate[flat].item()  # the flat copy stays a copy either way


def _would_be_copies(moved: dict[str, tuple[float, float]]) -> tuple[PairTable, np.ndarray]:
    """One photo's copy and a second view of it (the pairs with image 2): every pair fits
    over the frame and agrees, alike to the CNN; ``moved``: each motion signal's value
    (the view's pairs, the copy's)."""
    n = 3
    i, j = np.triu_indices(n, k=1)
    view = j == 2
    t = table(n, list("aab"), np.full(len(i), 0.97))
    evidence = {"inliers": np.full(len(i), 80), "keypoints": np.full(len(i), 300),
                "iou": np.full(len(i), 0.9), "agreement": np.full(len(i), 0.9),
                "spread": np.full(len(i), 0.8), "keypoint_spread": np.full(len(i), 0.8),
                **{k: np.where(view, *v) for k, v in moved.items()}}  # fmt: skip
    return replace(t, **evidence), view


@pytest.mark.parametrize(
    ("moved", "bars", "view_is_copy"),
    [
        # only the second view's cells move
        ({"motion": (9.0, 1.5)}, {"duplicate_motion": 0.0}, True),
        ({"motion": (9.0, 1.5)}, {"duplicate_motion": 6.0}, False),
        # its cells do not (a subject flat at the thumbnail's size), but 20 of the matches
        # the fit left out move together
        ({"motion": (2.0, 2.0), "second_motion": (20, 3)}, {"duplicate_second_motion": 0}, True),
        ({"motion": (2.0, 2.0), "second_motion": (20, 3)}, {"duplicate_second_motion": 10}, False),
        ({"motion": (2.0, 2.0), "second_motion": (20, 3)}, {"duplicate_second_motion": 21}, True),
    ],
)
def test_a_copy_that_moves_is_similar_in_the_eval_as_in_the_deduper(
    moved: dict[str, tuple[float, float]], bars: dict[str, float], view_is_copy: bool
) -> None:
    t, view = _would_be_copies(moved)
    th = Thresholds(0.93, 0, 0.9, 0)
    geometry = GeometryThresholds(10, 0.5, 0.7, 150, duplicate_motion=8.0)
    geometry = replace(geometry, **bars)
    setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=0.5)
    check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
    r = related(t, th, geometry, 0.5)
    assert r.duplicate[~view].all()  # the copy stays a copy
    assert bool(r.duplicate[view].all()) is view_is_copy
    assert bool(r.similar[view].all()) is not view_is_copy


@pytest.mark.parametrize(
    ("aligned", "bars", "joined"),
    [
        # (agreement, cells, IoU) of the thumbnails' alignment; the bars (agreement, cells)
        ((0.8, 8, 0.25), (0.0, 0), False),  # off
        ((0.8, 8, 0.25), (0.7, 6), True),
        ((0.6, 8, 0.25), (0.7, 6), False),  # agrees too little
        ((0.8, 4, 0.25), (0.7, 6), False),  # on too few cells
        ((0.8, 8, 0.6), (0.7, 6), False),  # over a copy's IoU: the keypoints' business
        ((0.8, 8, 0.02), (0.7, 6), False),  # a sliver
    ],
)
def test_thumbnails_that_align_make_a_similar_pair_in_the_eval_as_in_the_deduper(
    aligned: tuple[float, int, float], bars: tuple[float, int], joined: bool
) -> None:
    # two shots of one scene (a, b) checked, no fit; a third image (c) not checked
    n = 3
    i, j = np.triu_indices(n, k=1)
    pair = (i == 0) & (j == 1)
    t = table(n, list("abc"), np.where(pair, 0.6, 0.2))
    agreement, cells, iou = aligned
    evidence = {"inliers": np.where(pair, 3, -1), "keypoints": np.where(pair, 300, -1),
                "iou": np.where(pair, 0.01, np.nan),
                "aligned_agreement": np.where(pair, agreement, np.nan),
                "aligned_cells": np.where(pair, cells, -1),
                "aligned_iou": np.where(pair, iou, np.nan)}  # fmt: skip
    t = replace(t, **evidence, similar=pair)
    th = Thresholds(0.93, 0, 0.9, 0)
    geometry = GeometryThresholds(
        10, 0.5, 0.7, 150, similar_alignment=bars[0], similar_alignment_cells=bars[1]
    )
    setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=0.5)
    check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
    r = related(t, th, geometry, 0.5)
    assert bool(r.similar[pair].item()) is joined
    assert not r.duplicate.any()  # an alignment never makes a copy


def test_the_tuning_draws_hold_tuning_shots_three_images_each() -> None:
    scenes = sorted(SPLIT_SCENES)[:4]
    items = [
        sample(scene, f"{scene}#{side}", edit, side)
        for scene in scenes
        for side in ("left", "right")
        for edit in ("original", *ISSUE_EDITS, "grey")
    ]
    n = len(items)
    i, j = np.triu_indices(n, k=1)
    full = table(n, [s.group for s in items], i * 1000.0 + j)  # the cosine names the pair
    tune = Split.of(full, items, indices(items, TUNE))
    sets = TuningSets(items, tune, Split.of(full, items, indices(items, TEST)), [], full, tune)
    of = split_of(scenes)
    draws = sets.tune_draws(draws=3, seed=5)
    assert len(draws) == 3
    for split, drawn_scenes in draws:
        chosen = [items[k] for k in split.nodes]
        assert all(of[s.scene] == TUNE for s in chosen)
        assert {s.edit for s in chosen} <= {"original", *ISSUE_EDITS}
        assert sorted(split.labels) == sorted(s.group for s in chosen)
        assert drawn_scenes == [s.scene for s in chosen]
        per_group = {g: sum(s.group == g for s in chosen) for g in {s.group for s in chosen}}
        assert set(per_group.values()) == {3}
        assert len(per_group) == 2 * sum(of[s] == TUNE for s in scenes)
        a, b = split.nodes[split.table.i], split.nodes[split.table.j]
        assert split.table.cosine.tolist() == (a * 1000.0 + b).tolist()  # the drawn pairs


def test_the_tuning_draws_count_in_the_choice_as_one_more_set() -> None:
    th = Thresholds(0.93, 0, 0.9, 0)
    good, bridged = GroupCounts(10, 10, 10, 1, 1), GroupCounts(10, 20, 10, 1, 0)
    same = Outcome(good, good)

    def tried(floor: float, draws: Outcome | None) -> Tried:
        geometry = GeometryThresholds(10, 0.5, 0.7, 75, similar_spread=floor)
        return Tried(Setting(Rule.AVERAGE_LINK, th, geometry=geometry), same, same, 1.0, draws)

    off, floor = tried(0.0, None), tried(0.1, None)
    assert choose([off, floor]) is off.setting  # a tie keeps the grid's first
    off, floor = tried(0.0, Outcome(good, bridged)), tried(0.1, same)
    assert choose([off, floor]) is floor.setting


def test_a_geometry_grid_varies_only_its_fields_first_field_outermost() -> None:
    base = Setting(Rule.AVERAGE_LINK, Thresholds(0.93, 0, 0.9, 0),
                   geometry=GeometryThresholds(10, 0.5, 0.7, 75))  # fmt: skip
    grid = geometry_grid(base, rich_keypoints=(75, 0), similar_spread=(0.0, 0.1, 0.2))
    label = geometry_label("rich_keypoints", "similar_spread")
    assert [label(s) for s in grid] == [
        "75 | 0.0", "75 | 0.1", "75 | 0.2", "0 | 0.0", "0 | 0.1", "0 | 0.2",
    ]  # fmt: skip
    assert grid[0] == base  # the configured values first: ties keep the rule as it is
    assert {replace(s.geometry, rich_keypoints=75, similar_spread=0.0) for s in grid} == {
        base.geometry
    }


def missed_strip() -> tuple[PairTable, np.ndarray]:
    """Two shots of one scene (groups a, b), each with a copy; between the shots ORB fit 3
    inliers and the CNN reads 0.8. The table, and which pairs are across the shots."""
    n = 4
    i, j = np.triu_indices(n, k=1)
    groups = np.array(list("aabb"))
    t = table(n, list(groups), np.where(groups[i] == groups[j], 0.97, 0.8))
    cross = groups[i] != groups[j]
    t = replace(t, similar=cross, inliers=np.where(cross, 3, 200),
                keypoints=np.full(len(i), 300), iou=np.where(cross, 0.2, 1.0),
                agreement=np.where(cross, np.nan, 1.0))  # fmt: skip
    return t, cross


def test_a_missed_strip_is_rich_with_no_fit_and_the_cnn_bar_stacks_it_as_relate_does() -> None:
    t, cross = missed_strip()
    th = Thresholds(0.93, 0, 0.9, 0)
    for bar, kind in [(0.0, "rich, no shared content (0-4 inliers), CNN not alike"),
                      (0.75, "related, split by the stacking rule")]:  # fmt: skip
        geometry = GeometryThresholds(10, 0.5, 0.7, 75, similar_cosine=bar)
        setting = Setting(Rule.AVERAGE_LINK, th, geometry=geometry, probe_cosine=0.5)
        check_against_decide(t, setting)  # the deduper's relate() sees the same evidence
        assert {KINDS[k] for k in kinds(t, setting)[cross]} == {kind}
        assert bool(related(t, th, geometry, 0.5).similar[cross].all()) is (bar > 0)


def test_the_table_after_the_choice_scores_each_rule_on_the_test_split_by_name() -> None:
    t, _ = missed_strip()  # the CNN bar stacks its two shots, off does not
    th = Thresholds(0.93, 0, 0.9, 0)
    rules = {
        f"bar {bar}": Setting(Rule.AVERAGE_LINK, th, probe_cosine=0.5,
                              geometry=GeometryThresholds(10, 0.5, 0.7, 75, similar_cosine=bar))
        for bar in (0.0, 0.75)
    }  # fmt: skip
    test = (Split(np.arange(4), t, list("aabb")), ["scene"] * 4)
    # no unseen sets: the model and its cache are never read
    lines = after_choice_table(rules, test, (), None, Path("unused"), column=("bar", "---:"))
    assert lines[:2] == ["| set | bar | groups P / R | stacks P / R |",
                         "| --- | ---: | --- | --- |"]  # fmt: skip
    assert [line.split(" | ")[:2] for line in lines[2:]] == [["| test", "bar 0.0"],
                                                             ["| test", "bar 0.75"]]  # fmt: skip
    stack_recall = [line.removesuffix(" |").rsplit(" / ", 1)[1] for line in lines[2:]]
    assert stack_recall == ["0.000", "1.000"]  # off leaves the strip out, the bar stacks it


@pytest.mark.parametrize("tail", [["| a |"], ["| a |", ""]])
def test_a_report_ends_with_one_blank_line_and_its_time(
    tmp_path: Path, tail: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new" / "report.md"
    write_report(["# Title", "", *tail], time.perf_counter(), path)
    text = path.read_text()
    assert re.fullmatch(r"# Title\n\n\| a \|\n\nRan in \d+ s\.\n", text)
    assert capsys.readouterr().out == text


def test_the_geometry_cache_is_keyed_by_the_keypoint_detector() -> None:
    """keypoint_choice computes each candidate's geometry into one cache: a candidate's
    figures must never be read back as another's."""
    from imgflow_deduper.overlap import DETECTOR, Detector
    from tools.dedupe_eval.geometry import _key

    items = [
        Sample("g", "original", b"x", "s", "whole"),
        Sample("h", "original", b"y", "s", "left"),
    ]
    rows = np.array([0])
    keys = {_key(items, rows, d) for d in (DETECTOR, Detector(400, 0), Detector(400, 4),
                                            Detector(800, 4), Detector(2000, 0))}  # fmt: skip
    assert len(keys) == 4  # the default is one of the four named
    assert _key(items, rows, Detector(400, 4)) == _key(items, rows, Detector(400, 4))


def test_the_rules_stacks_hold_two_units_and_whole_groups() -> None:
    # a and b are one group, linked only through the group; c is similar to b; d ~ e is a
    # group alone, which is no stack
    groups = [{"a", "b"}, {"d", "e"}]
    related = [("b", "c"), ("d", "e")]

    assert sorted(map(sorted, stored_stacks(related, groups))) == [["a", "b", "c"]]


def test_the_retrieval_replay_judges_each_pair_from_the_later_upload_s_nearest() -> None:
    n = 6
    i, j = np.triu_indices(n, k=1)
    cosine = 0.3 + 0.6 * np.random.default_rng(5).random(len(i))  # all distinct
    t = table(n, list("abcdef"), cosine)
    judged = candidate_mask(t, list("abcdef"), Retrieval(k=1, phash_distance=-1), seed=0)

    order = np.random.default_rng(0).permutation(n)  # the replay's upload order
    alike = {(int(a), int(b)): c for a, b, c in zip(i, j, cosine, strict=True)}
    expected = set()
    for position in range(1, n):
        me, earlier = int(order[position]), [int(e) for e in order[:position]]
        nearest = max(earlier, key=lambda e: alike[(min(me, e), max(me, e))])
        expected.add((min(me, nearest), max(me, nearest)))
    assert {(int(a), int(b)) for a, b in zip(i[judged], j[judged], strict=True)} == expected


def test_the_retrieval_replay_stacks_as_the_deduper_stores_stacks() -> None:
    # three copies of one shot: one duplicate group, which alone is no stack
    t = table(3, list("aaa"), np.full(3, 0.97))
    setting = Setting(Rule.AVERAGE_LINK, Thresholds(0.93, 0, 0.9, 0))
    assert len(groups_of(t, setting)) == 1
    assert stacks_through(t, list("aaa"), setting, None) == []
    assert stacks_through(t, list("aaa"), setting, Retrieval(k=1, phash_distance=-1)) == []
