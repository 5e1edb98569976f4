"""Do groups depend on upload order when a tenant holds more look-alikes than the search
returns? Measured through the running system.

    .venv/bin/python -m tools.dedupe_eval.order_through_api [--orders 3] [--candidates 20]

Each new image is compared with its ``IMGFLOW_DEDUPE_CANDIDATES`` (20) nearest neighbours
by HNSW, the images of equal bytes and up to as many within the loosest pHash distance;
a pair is found only by the later image's search. Here every half of a photograph has
``--copies`` re-encodings on top of its original and 19 edits (dataset.py), so each
image has more true duplicates than the search returns, and the scene's other half and
burst frame are look-alikes besides. The same set is uploaded in ``--orders`` random
orders, each by a tenant of its own; the groups are compared as sets of labelled images.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Sequence

from imgflow_contracts.settings import ENV_PREFIX
from tools.dedupe_eval.dataset import HALVES, encode_jpeg, shots
from tools.dedupe_eval.edits import EDITS
from tools.dedupe_eval.sources import bundled_photos
from tools.dedupe_eval.through_api import DrawResult, Upload, run_draw, running_system

SCENES = ("skimage/astronaut.png",)  # halves and a burst frame: three look-alike shots


def crowded_set(scenes: Sequence[str], copies: int) -> list[Upload]:
    """Each shot of ``scenes`` with its 19 edits; each half also with ``copies`` JPEG
    re-encodings (qualities 95, 93, ...), near-identical to its original."""
    out = []
    for photo in bundled_photos():
        if photo.name not in scenes:
            continue
        for shot, image in shots(photo):
            if shot == "burst-later":  # the set measured here predates it: three shots
                continue
            group = f"{photo.name}#{shot}"
            out.append(Upload(group, "original", encode_jpeg(image)))
            out += [Upload(group, edit, apply(image)) for edit, apply in EDITS.items()]
            if shot in HALVES:
                out += [Upload(group, f"jpeg-q{95 - 2 * k}", encode_jpeg(image, 95 - 2 * k))
                        for k in range(copies)]  # fmt: skip
    return out


def partition(result: DrawResult) -> set[frozenset[str]]:
    return {frozenset(f"{result.uploads[k].group}/{result.uploads[k].edit}" for k in g)
            for g in result.groups}  # fmt: skip


def _row(name: str, r: DrawResult, same: str) -> str:
    c = r.counts
    alone = len(r.uploads) - sum(len(g) for g in r.groups)
    return (f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.f1:.3f} | {c.pure_share:.3f} "
            f"| {c.groups} | {alone} | {same} | {r.awaiting_phash} |")  # fmt: skip


def report(results: Sequence[DrawResult], copies: int, candidates: int) -> str:
    first = partition(results[0])
    groups = len({u.group for u in results[0].uploads})
    lines = [
        f"# Upload order with more look-alikes than the search returns "
        f"(IMGFLOW_DEDUPE_CANDIDATES={candidates})",
        "",
        f"{len(results[0].uploads)} images in {groups} labelled groups ({', '.join(SCENES)}: "
        f"each shot with its 19 edits, each half also with {copies} re-encodings), uploaded "
        f"in {len(results)} random orders, one tenant each.",
        "",
        "| order | group precision | group recall | group F1 | pure groups | groups "
        "| in no group | groups as in order 1 | checks awaiting pHash |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for k, r in enumerate(results):
        mine = partition(r)
        lines.append(_row(str(k + 1), r, f"{len(mine & first)} of {len(mine)}"))
    moved = set().union(*(partition(r) ^ first for r in results[1:]))
    images = sorted({m for g in moved for m in g})
    lines += ["", f"Images in a group that is not the same in every order: {len(images)}"
              + (f" ({', '.join(images[:12])}{', ...' if len(images) > 12 else ''})."
                 if images else "."), ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval.order_through_api",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--orders", type=int, default=3)
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=20, help="IMGFLOW_DEDUPE_CANDIDATES")
    args = parser.parse_args()
    uploads = crowded_set(SCENES, args.copies)
    os.environ[f"{ENV_PREFIX}DEDUPE_CANDIDATES"] = str(args.candidates)  # the workers inherit it
    started = time.perf_counter()
    with running_system() as system:
        results = [asyncio.run(run_draw(system, uploads, seed=k, tenant_prefix="order"))
                   for k in range(args.orders)]  # fmt: skip
    print(report(results, args.copies, args.candidates))
    print(f"Ran in {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
