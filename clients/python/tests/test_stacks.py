"""Similar stacks from the command and the library, on a stack the real deduper made: a
photo, a re-encoded copy of it and a burst frame of the same scene, uploaded with
`imgflow upload --wait` (it returns once every image is processed)."""

from __future__ import annotations

import json
from pathlib import Path

import skimage.data
from PIL import Image as PilImage

from imgflow_client import Client
from tools.dedupe_eval.dataset import HALVES, _burst_frame, encode_jpeg
from tools.dedupe_eval.edits import crop
from tools.dedupe_eval.sources import Photo

from .conftest import Cli, Tenant
from .test_groups import _json_lines, _listed, _upload


def _write_scene(folder: Path) -> list[Path]:
    photo = Photo("skimage/astronaut.png", PilImage.fromarray(skimage.data.astronaut()))
    left = crop(photo.image, *HALVES["left"])
    made = {
        "photo": encode_jpeg(left),
        "copy": encode_jpeg(left, quality=70),
        "burst": encode_jpeg(_burst_frame(photo)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in made.items():
        (folder / f"{name}.jpg").write_bytes(data)
    return [folder / f"{name}.jpg" for name in made]


def test_stacks_list_show_and_resolve_trashing_only_what_is_named(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    ids = _upload(cli, _write_scene(tmp_path / "photos"))

    done = cli.run("stacks", "--json")
    assert done.returncode == 0, done.stderr
    [listed] = _json_lines(done)
    assert listed["size"] == 3 and listed["resolution"] is None
    stack_id, version = str(listed["id"]), int(listed["version"])  # type: ignore[call-overload]
    with Client(tenant.url, tenant.api_key) as client:
        assert [str(s.id) for s in client.similar_stacks(page_size=1)] == [stack_id]
        view = client.get_similar_stack(stack_id)
    assert {str(m.id) for m in view.members} == set(ids.values())
    assert view.member(ids["burst"]).duplicate_group_id is None  # type: ignore[union-attr]

    shown = cli.run("stacks", "show", stack_id)
    assert shown.returncode == 0, shown.stderr
    assert all(image_id in shown.stdout for image_id in ids.values())
    assert "similar" in shown.stdout and "suggested pick" in shown.stdout

    # keeping the pick trashes nothing
    kept = cli.run("stacks", "resolve", stack_id, "--keep-suggested")
    assert kept.returncode == 0, kept.stderr
    assert f"kept {view.suggested_pick.id}" in kept.stdout and "trashed none" in kept.stdout
    assert _listed(cli) == set(ids.values())
    to_review = cli.run("stacks", "--to-review", "--json")
    assert to_review.returncode == 0 and _json_lines(to_review) == []
    resolved = cli.run("stacks", "--resolved", "--json")
    assert [str(s["id"]) for s in _json_lines(resolved)] == [stack_id]
    with Client(tenant.url, tenant.api_key) as client:
        assert client.list_similar_stacks(resolved=False).items == []
        assert client.duplicates(ids["copy"]).similar_stack == view.id

    # a version the stack no longer has (the resolve made a new one) is refused
    stale = cli.run("stacks", "resolve", stack_id, "--trash", ids["copy"],
                    "--version", str(version))  # fmt: skip
    assert stale.returncode == 1
    assert f"stack {stack_id} changed since version {version}" in stale.stderr
    assert f"it is at version {version + 1} now" in stale.stderr
    assert _listed(cli) == set(ids.values())

    trashed = cli.run("stacks", "resolve", stack_id, "--keep", ids["photo"], "--trash",
                      ids["copy"], "--version", str(version + 1), "--json")  # fmt: skip
    assert trashed.returncode == 0, trashed.stderr
    answer = json.loads(trashed.stdout)
    assert answer["trashed"] == [ids["copy"]] and answer["kept"] == ids["photo"]
    assert _listed(cli) == {ids["photo"], ids["burst"]}

    usage = cli.run("stacks", "resolve", stack_id, "--dismiss", "--keep", ids["photo"])
    assert usage.returncode == 2
