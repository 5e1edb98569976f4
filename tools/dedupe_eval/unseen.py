"""An unseen confirmation set: photographs no threshold was ever chosen or checked on.

``make eval-dedupe-unseen`` (``python -m tools.dedupe_eval.unseen``) scores the deduper's
rule *as configured* (``offline_reference.configured_setting``: nothing is tuned here) on
a set built like the labelled set (dataset.py) from other photographs: the twelve
"nature" photographs of Debian's ``mate-backgrounds`` package (GPL-2+, see its
``/usr/share/doc/mate-backgrounds/copyright``), installed with
``apt-get install mate-backgrounds`` (``make unseen-photos``). Nothing is downloaded at
run time. Each photo is scaled to a long side of 1024 px first (the wheels' photos are
512-1024 px; the originals are 1280-2560).

The shots, fixed by name order before any figure was seen (below): the three texture-like
photos whole (hard *neither* cases: leaf veins, grass, planks); of the other nine, in name
order, a crop across the cut, a burst, a second viewpoint, cycled:

- *across*: left and right halves and the crop across the cut (dataset.ACROSS): a chain
  of two weak links, the halves sharing no pixel;
- *burst*: halves, and both burst frames of dataset.py (the camera moved by 40 % and
  rolled; a moment later, the subject moved);
- *viewpoint*: the whole photo and a second view of it, made as a small step to the side
  would: the frame shifted by 5 % and keystoned by 3 %, the subject (the middle of the
  frame) shifted by a further 5 % against the background (parallax), new light and noise.

Each shot with the 19 edits of edits.py; labels by construction (dataset.relation).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tools.dedupe_eval.dataset import (
    ACROSS,
    HALVES,
    Sample,
    _burst_frame,
    _burst_later,
    group_samples,
    viewpoint,
)
from tools.dedupe_eval.edits import crop
from tools.dedupe_eval.group_metrics import GroupCounts
from tools.dedupe_eval.sources import Photo

LONG_SIDE = 1024


@dataclass(frozen=True)
class PhotoSet:
    """Where an unseen set's photos are, and which of them stay whole (texture-like)."""

    name: str
    package: str
    pattern: str  # glob under /usr/share, sorted by name
    prefix: str
    textures: tuple[str, ...]
    excluded: tuple[str, ...] = ()  # not photographs

    def name_of(self, path: Path) -> str:
        """mate: the file's name; plasma: the wallpaper's folder (a stand-in's stem)."""
        if self.name != "plasma":
            return self.prefix + path.name
        return self.prefix + (path.relative_to(SHARE).parts[1] if path.is_relative_to(SHARE)
                              else path.stem)  # fmt: skip


SHARE = Path("/usr/share")
# stacks3's set: read while the overlay floor was being proposed, so no longer unseen.
MATE = PhotoSet(
    "mate", "mate-backgrounds", "backgrounds/mate/nature/*.jpg", "mate/",
    ("Blinds.jpg", "GreenMeadow.jpg", "Wood.jpg"),
)  # fmt: skip
# stacks4's fresh set, fixed before any figure: the KDE wallpapers whose image is a
# 2560x1600 JPEG are the photographs, but Autumn (a painting); three patterns stay whole.
PLASMA = PhotoSet(
    "plasma", "plasma-workspace-wallpapers", "wallpapers/*/contents/images/2560x1600.jpg",
    "plasma/", ("ColorfulCups", "Grey", "OneStandsOut"), ("Autumn",),
)  # fmt: skip
# stacks5's fresh set, fixed by name before any figure: the Ubuntu Touch 16.04 community
# wallpapers (CC-BY-4.0, CC-BY-SA-4.0, CC0; /usr/share/doc/lomiri-wallpapers-16.04/copyright)
# are photographs but umang (a drawn gradient); analogpattern (a photographed grain) stays
# whole.
LOMIRI = PhotoSet(
    "lomiri", "lomiri-wallpapers-16.04", "backgrounds/*_by_*.jpg", "lomiri/",
    ("analogpattern_by_Peter_Nerlich.jpg",), ("umang_by_Abhishek_Mudgal.jpg",),
)  # fmt: skip
SETS = {s.name: s for s in (MATE, PLASMA, LOMIRI)}
PACKAGE, PREFIX, TEXTURES = MATE.package, MATE.prefix, MATE.textures  # stacks3's names
KINDS = ("across", "burst", "viewpoint")  # cycled over the other photos in name order
OUT = Path(__file__).resolve().parent.parent.parent / ".bench" / "eval-dedupe"


def unseen_photos(directory: Path | None = None, photo_set: PhotoSet = MATE) -> list[Photo]:
    """The set's photos in name order (``directory``: stand-ins, every *.jpg in it)."""
    if directory is not None:
        found = {photo_set.name_of(p): p for p in directory.glob("*.jpg")}
    else:
        found = {photo_set.name_of(p): p for p in SHARE.glob(photo_set.pattern)}
    names = sorted(n for n in found if n.removeprefix(photo_set.prefix) not in photo_set.excluded)
    if not names:
        raise SystemExit(
            f"no photos for {photo_set.pattern}: install Debian's {photo_set.package} "
            "(make unseen-photos)"
        )
    photos = []
    for name in names:
        with Image.open(found[name]) as image:
            rgb = image.convert("RGB")
        rgb.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
        photos.append(Photo(name, rgb))
    return photos


def plan(photos: Sequence[Photo], photo_set: PhotoSet = MATE) -> dict[str, str]:
    """Each photo's kind: "whole" for the textures, else across/burst/viewpoint cycled."""
    out, k = {}, 0
    for photo in photos:
        if photo.name.removeprefix(photo_set.prefix) in photo_set.textures:
            out[photo.name] = "whole"
        else:
            out[photo.name] = KINDS[k % len(KINDS)]
            k += 1
    return out


def _viewpoint(photo: Photo) -> Image.Image:
    """Another view a step to the side (dataset.viewpoint)."""
    return viewpoint(photo.image, photo.name)


def shots(photo: Photo, kind: str) -> Iterator[tuple[str, Image.Image]]:
    if kind == "whole":
        yield "whole", photo.image
        return
    if kind == "viewpoint":
        yield "whole", photo.image
        yield "second", _viewpoint(photo)
        return
    for side, box in HALVES.items():
        yield side, crop(photo.image, *box)
    if kind == "across":
        yield "across", crop(photo.image, *ACROSS)
    else:
        yield "burst", _burst_frame(photo)
        yield "burst-later", _burst_later(photo)


def shot_images(
    photos: Sequence[Photo] | None = None, photo_set: PhotoSet = MATE
) -> dict[str, tuple[str, Image.Image]]:
    """Every shot's original by group name: (scene, image)."""
    photos = photos if photos is not None else unseen_photos(photo_set=photo_set)
    kinds = plan(photos, photo_set)
    out = {}
    for photo in photos:
        for shot, image in shots(photo, kinds[photo.name]):
            group = photo.name if shot == "whole" else f"{photo.name}#{shot}"
            out[group] = (photo.name, image)
    return out


def samples(photos: Sequence[Photo] | None = None, photo_set: PhotoSet = MATE) -> list[Sample]:
    out = []
    for group, (scene, image) in shot_images(photos, photo_set).items():
        shot = group.split("#")[1] if "#" in group else "whole"
        out.extend(group_samples(group, scene, shot, image))
    return out


def _members(items: Sequence[Sample], members: Iterable[int]) -> str:
    shots = Counter(items[k].group.partition("/")[2] for k in members)
    return ", ".join(f"{n} x {g}" for g, n in sorted(shots.items()))


def _across_scenes(split: Any, items: Sequence[Sample], r: Any) -> list[str]:
    t = split.table
    scene = np.array([items[k].scene.partition("/")[2] for k in split.nodes])
    shot = np.array([items[k].shot for k in split.nodes])
    counts: Counter[tuple[str, str]] = Counter()
    for k in np.flatnonzero((r.duplicate | r.similar) & ~t.duplicate & ~t.similar):
        a, b = sorted((f"{scene[t.i[k]]}#{shot[t.i[k]]}", f"{scene[t.j[k]]}#{shot[t.j[k]]}"))
        counts[(a + " ~ " + b, "duplicate" if r.duplicate[k] else "similar")] += 1
    return [f"- across scenes: {pair}: {n} {how}" for (pair, how), n in counts.most_common()]


def _row(name: str, c: GroupCounts) -> str:
    return f"| {name} | {c.precision:.3f} | {c.recall:.3f} | {c.groups} | {c.true_pairs} |"


def main() -> None:
    from tools.dedupe_eval.__main__ import with_geometry
    from tools.dedupe_eval.offline_reference import configured_model, configured_setting
    from tools.dedupe_eval.relations import PROBE_COSINES, outcome, similar_breakdown, stacks_of
    from tools.dedupe_eval.report import Split
    from tools.dedupe_eval.rules import groups_of, related

    parser = argparse.ArgumentParser(prog="python -m tools.dedupe_eval.unseen", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--set",
        choices=sorted(SETS),
        default="mate",
        help="mate: stacks3's set (read since); plasma: stacks4's fresh one",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    photo_set = SETS[args.set]
    items = samples(photo_set=photo_set)
    setting = configured_setting()
    table, _ = with_geometry(items, configured_model(), args.out / "cache")
    split = Split.of(table, items, np.arange(len(items)))
    result = outcome(split, [s.scene for s in items], setting)
    kinds = plan(unseen_photos(photo_set=photo_set), photo_set)
    lines = [
        "# The unseen confirmation set (offline)",
        "",
        f"{len(items)} images in {len({s.group for s in items})} groups from "
        f"{len({s.scene for s in items})} photographs of Debian's {photo_set.package} "
        f"({', '.join(f'{n.removeprefix(photo_set.prefix)}: {k}' for n, k in kinds.items())}); "
        f"{int(split.table.duplicate.sum())} duplicate pairs, "
        f"{int(split.table.similar.sum())} similar. The rule as configured, untuned: "
        f"{setting.describe()}, checking from CNN {setting.probe_cosine}.",
        "",
        "| | precision | recall | groups | true pairs |",
        "| --- | ---: | ---: | ---: | ---: |",
        _row("duplicate groups", result.groups),
        _row("similar stacks", result.stacks),
        "",
        *similar_breakdown(split, items, setting),
        "",
        "For reference only (nothing is chosen on this set): the same rule checking from "
        "each probe cosine the tuning split tried:",
        "",
        "| probe cosine | groups P / R | stacks P / R |",
        "| ---: | --- | --- |",
        *(
            f"| {c} | {o.groups.precision:.3f} / {o.groups.recall:.3f} | "
            f"{o.stacks.precision:.3f} / {o.stacks.recall:.3f} |"
            for c, o in (
                (c, outcome(split, [s.scene for s in items], replace(setting, probe_cosine=c)))
                for c in PROBE_COSINES
            )
        ),
        "",
        "What the mistakes are made of: every duplicate group of more than one shot and "
        "every stack of more than one scene (shots and their images), then the related "
        "pairs across scenes (how the check called them):",
        "",
        *(
            f"- group: {_members(items, g)}"
            for g in groups_of(split.table, setting)
            if len({items[k].group for k in g}) > 1
        ),
        *(
            f"- stack: {_members(items, g)}"
            for g in stacks_of(split.table, setting)
            if len({items[k].scene for k in g}) > 1
        ),
        *_across_scenes(
            split,
            items,
            related(split.table, setting.thresholds, setting.geometry, setting.probe_cosine),
        ),
        "",
        f"Ran in {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "unseen-results" if photo_set is MATE else f"unseen-{photo_set.name}-results"
    (args.out / f"{stem}.md").write_text(text + "\n")
    (args.out / f"{stem}.json").write_text(json.dumps({
        "groups": asdict(result.groups), "stacks": asdict(result.stacks),
        "setting": setting.describe(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
