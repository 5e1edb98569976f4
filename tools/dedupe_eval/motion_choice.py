"""The moving cells' bar (``GeometryThresholds.duplicate_motion``, ``Overlap.motion``)
chosen on the tuning split, its hard cases and its draws (stacks10).

    .venv/bin/python -m tools.dedupe_eval.motion_choice [--out .bench/eval-dedupe]

A second viewpoint whose cells still agree reads as a copy (stacks4's soft views: plasma's
kite and dark lake join their whole photo's group). A copy is one transform of the other,
so its cells move together; another view's keystone and parallax move some apart.
**Disclosed:** the grid was fixed after an ad-hoc probe (not committed: the fit refined by
OpenCV's ECC, each cell's shift by phase correlation both ways, on 128 and 256 px
thumbnails) on the tuning split and on plasma (read since stacks4): at 128 px the copies'
90th-percentile shift was >= 4 px on 7 % of their pairs (tuning split) and the plasma
second views' on 90 %. The measure chosen here is the cheaper one in ``overlap._motion``
(one way, the affine motion of the cells taken out instead of ECC). The grid: 0 (off, as
configured) first, then 3, 4, 5, 6, 8, 10 px. The choice is ``tuning_choice.choose``; the
test split, the unseen sets and their API draws (offline) are printed after.
"""

from __future__ import annotations

from tools.dedupe_eval import bar_choice

GRID = (0.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)  # fixed beforehand; off (as configured) first


def main() -> None:
    bar_choice.main(
        "motion_choice",
        "The moving cells' bar, chosen on the tuning split",
        {"duplicate_motion": GRID},
        ["motion bar (px)"],
        "motion-choice.md",
    )


if __name__ == "__main__":
    main()
