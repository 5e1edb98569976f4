"""The through-API eval (``make eval-dedupe-api``) in small: the left and right halves of
two held-out photographs, each with two edited copies, uploaded through the session's
running system and scored from ``GET /v1/duplicate-groups``; and one photograph's three
shots, which must stay in three groups but make one similar stack
(``GET /v1/similar-stacks``).

The copies are ones the CNN alone finds (brightness with contrast, a corner watermark):
a pair that needs pHash may wait for a later dedupe job when the hasher runs late (see
docs/duplicates/index.md's late pHashes), and this test asserts what every run must give.
"""

from __future__ import annotations

import asyncio

from imgflow_localstack.system import LocalSystem
from tools.dedupe_eval.through_api import (
    held_out_halves,
    held_out_similar,
    mistakes,
    run_draw,
    uploads,
)

EDITS = ("original", "brightness-contrast", "watermark")


def test_no_group_mixes_halves_and_every_true_pair_is_grouped(system: LocalSystem) -> None:
    halves = held_out_halves(photos=2)
    assert len(halves) == 4 and {g.split("#")[1] for g in halves} == {"left", "right"}
    chosen = uploads(halves, [(g, e) for g in sorted(halves) for e in EDITS])

    result = asyncio.run(run_draw(system, chosen, seed=1, tenant_prefix="eval-api"))

    assert result.failed == 0
    assert mistakes(result) == []
    assert result.counts.groups == 4 and result.counts.pure_share == 1.0
    assert (result.counts.precision, result.counts.recall) == (1.0, 1.0)


def test_shots_of_one_scene_stack_together_but_never_group(system: LocalSystem) -> None:
    # the coffee photo's halves and its crop across the cut (IoU 0.36 and 0.22 with them)
    others, scenes = held_out_similar()
    shots = {g: image for g, image in {**held_out_halves(), **others}.items()
             if g.startswith("skimage/coffee.png#") and not g.endswith("#left-view")}  # fmt: skip
    assert {g.split("#")[1] for g in shots} == {"left", "right", "across"}
    chosen = uploads(shots, [(g, e) for g in sorted(shots) for e in EDITS[:2]], scenes)

    result = asyncio.run(run_draw(system, chosen, seed=2, tenant_prefix="eval-api-similar"))

    assert result.failed == 0
    assert mistakes(result) == []  # three pure, whole duplicate groups
    assert (result.counts.groups, result.counts.precision, result.counts.recall) == (3, 1.0, 1.0)
    # the API lists one stack of the three shots, the one the rule makes of the stored pairs
    assert [len(s) for s in result.stacks] == [6]
    assert not result.upkeep_differs
    assert (result.stack_counts.precision, result.stack_counts.recall) == (1.0, 1.0)
