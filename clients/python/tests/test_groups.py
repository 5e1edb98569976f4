"""Duplicate groups from the command and the library, on real groups the real deduper made:
a photograph and edited copies of it (brighter and recompressed, half the size), uploaded
with `imgflow upload --wait`, which returns once every image is processed (events)."""

from __future__ import annotations

import json
from pathlib import Path

import skimage.data
from PIL import Image as PilImage
from PIL import ImageEnhance

from imgflow_client import Client
from tests.support import encode

from .conftest import Cli, Tenant

ORIGINAL, BRIGHTER, HALF = "original", "brighter", "half"


def _write_copies(folder: Path, photo: str, kinds: tuple[str, ...]) -> list[Path]:
    """The photograph as JPEGs: the original, a brighter recompressed copy, half the size."""
    image = PilImage.fromarray(getattr(skimage.data, photo)()).convert("RGB")
    made = {
        ORIGINAL: lambda: encode(image, "JPEG", quality=92),
        BRIGHTER: lambda: encode(ImageEnhance.Brightness(image).enhance(1.1), "JPEG", quality=70),
        HALF: lambda: encode(image.reduce(2), "JPEG", quality=85),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in kinds:
        path = folder / f"{photo}-{kind}.jpg"
        path.write_bytes(made[kind]())
        paths.append(path)
    return paths


def _upload(cli: Cli, paths: list[Path]) -> dict[str, str]:
    """Upload and wait for processing; file name stem -> image id."""
    done = cli.run("upload", *map(str, paths), "--wait", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()[:-1]]
    return {Path(line["path"]).stem: line["image_id"] for line in lines}


def _json_lines(done: object) -> list[dict[str, object]]:
    stdout = done.stdout  # type: ignore[attr-defined]
    return [json.loads(line) for line in stdout.splitlines()]


def _listed(cli: Cli) -> set[str]:
    done = cli.run("ls", "--json")
    assert done.returncode == 0, done.stderr
    return {str(line["id"]) for line in _json_lines(done)}


def _groups(cli: Cli) -> list[dict[str, object]]:
    done = cli.run("groups", "--json")
    assert done.returncode == 0, done.stderr
    return _json_lines(done)


def test_groups_lists_shows_refuses_a_stale_version_and_dismisses(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    ids = _upload(
        cli,
        _write_copies(tmp_path / "photos", "chelsea", (ORIGINAL, BRIGHTER))
        + _write_copies(tmp_path / "photos", "astronaut", (ORIGINAL, HALF)),
    )
    cat = {ids["chelsea-original"], ids["chelsea-brighter"]}
    astronaut = {ids["astronaut-original"], ids["astronaut-half"]}

    listed = _groups(cli)
    table = cli.run("groups")
    with Client(tenant.url, tenant.api_key) as client:
        paged = list(client.duplicate_groups(page_size=1))  # one group a page

    assert len(listed) == 2
    by_keeper = {line["suggested_keeper"]["id"]: line for line in listed}  # type: ignore[index]
    assert set(by_keeper) == {ids["chelsea-original"], ids["astronaut-original"]}
    assert all(line["size"] == 2 for line in listed)
    assert sorted(str(s.id) for s in paged) == sorted(str(line["id"]) for line in listed)
    assert table.returncode == 0
    for line in listed:
        assert str(line["id"]) in table.stdout
    assert "largest file" in table.stdout  # the cat: same pixels, the less compressed one
    assert "most pixels" in table.stdout  # the astronaut: the half-size copy loses

    cat_group = str(by_keeper[ids["chelsea-original"]]["id"])
    shown = cli.run("groups", "show", cat_group)
    view = json.loads(cli.run("groups", "show", cat_group, "--json").stdout)
    assert shown.returncode == 0, shown.stderr
    assert all(image_id in shown.stdout for image_id in cat)
    assert "suggested keeper" in shown.stdout and "largest file" in shown.stdout
    assert "jpeg" in shown.stdout and "451x300" in shown.stdout, shown.stdout  # formats, sizes
    assert "#1 #2" in shown.stdout  # the evidence between the two
    assert {m["id"] for m in view["members"]} == cat
    assert len(view["evidence"]) == 1 and view["suggested_keeper"]["id"] == ids["chelsea-original"]
    assert view["evidence"][0]["basis"], "the pair says what decided it"
    version = int(view["version"])

    # A version the group does not have: seen before sending (the command reads the group
    # to trash the others), and as the server's 409 (trash named: nothing to read).
    stale = cli.run("groups", "resolve", cat_group, "--keep", ids["chelsea-original"],
                    "--version", str(version + 1))  # fmt: skip
    refused = cli.run("groups", "resolve", cat_group, "--trash", ids["chelsea-brighter"],
                      "--version", str(version + 1))  # fmt: skip
    for done in (stale, refused):
        assert done.returncode == 1
        assert f"group {cat_group} changed since version {version + 1}" in done.stderr
        assert f"it is at version {version} now" in done.stderr
        assert f"imgflow groups show {cat_group}" in done.stderr
    assert _listed(cli) == cat | astronaut
    assert json.loads(cli.run("groups", "show", cat_group, "--json").stdout) == view

    astronaut_group = str(by_keeper[ids["astronaut-original"]]["id"])
    dismissed = cli.run("groups", "resolve", astronaut_group, "--dismiss")
    assert dismissed.returncode == 0, dismissed.stderr
    assert f"dismissed group {astronaut_group}" in dismissed.stdout
    assert [str(line["id"]) for line in _groups(cli)] == [cat_group]
    assert _listed(cli) == cat | astronaut  # dismissing trashes nothing


def test_resolve_keeps_one_trashes_the_rest_answers_the_same_again_and_restore_undoes_it(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    ids = _upload(cli, _write_copies(tmp_path / "photos", "chelsea", (ORIGINAL, BRIGHTER, HALF)))
    keeper, copies = ids["chelsea-original"], sorted([ids["chelsea-brighter"], ids["chelsea-half"]])
    ((group,),) = [[str(line["id"]) for line in _groups(cli)]]
    version = json.loads(cli.run("groups", "show", group, "--json").stdout)["version"]

    resolved = cli.run("groups", "resolve", group, "--keep", keeper, "--json")

    assert resolved.returncode == 0, resolved.stderr
    answer = json.loads(resolved.stdout)
    assert answer == {
        "group_id": group,
        "version": None,  # one image left: no group any more
        "kept": [keeper],
        "trashed": copies,  # every member not kept
        "dismissed": False,
    }
    assert _listed(cli) == {keeper}
    assert _groups(cli) == []
    trashed = cli.run("status", copies[0])
    assert trashed.returncode == 0 and "in the trash since" in trashed.stdout

    # The same decision on the same version answers the same (the order named is no
    # matter); without the version, the group is gone and the command says so.
    again = cli.run("groups", "resolve", group, "--keep", keeper, "--trash", copies[1],
                    "--trash", copies[0], "--version", str(version), "--json")  # fmt: skip
    gone = cli.run("groups", "resolve", group, "--keep", keeper)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == answer
    assert gone.returncode == 1 and "resolved or dismissed already" in gone.stderr

    restored = cli.run("restore", *copies)

    assert restored.returncode == 0, restored.stderr
    assert all(f"restored {image_id}" in restored.stdout for image_id in copies)
    assert _listed(cli) == {keeper, *copies}
    # Checked for duplicates again: each image's events end when its stages have.
    with Client(tenant.url, tenant.api_key) as client:
        for image_id in copies:
            last = list(client.image_events(image_id))[-1]
            assert last.type == "image.ready" or last.data.get("finished"), last
        (regrouped,) = list(client.duplicate_groups())
        view = client.get_duplicate_group(regrouped.id)
    assert {str(m.id) for m in view.members} == {keeper, *copies}
    assert str(view.suggested_keeper.id) == keeper


def test_resolve_refuses_what_it_cannot_mean_before_sending(cli: Cli) -> None:
    nothing = cli.run("groups", "resolve", "7d3c5a1e-0000-4000-8000-000000000000")
    both = cli.run("groups", "resolve", "7d3c5a1e-0000-4000-8000-000000000000", "--dismiss",
                   "--keep", "7d3c5a1e-0000-4000-8000-000000000001")  # fmt: skip
    not_an_id = cli.run("groups", "resolve", "g", "--keep", "photo.jpg")
    no_group = cli.run("groups", "show", "7d3c5a1e-0000-4000-8000-000000000000")
    no_image = cli.run("restore", "7d3c5a1e-0000-4000-8000-000000000000")

    assert nothing.returncode == 2 and "say what to do" in nothing.stderr
    assert both.returncode == 2 and "--dismiss takes no --keep" in both.stderr
    assert not_an_id.returncode == 2 and "not an image id: 'photo.jpg'" in not_an_id.stderr
    assert no_group.returncode == 1 and "no duplicate group" in no_group.stderr
    assert no_image.returncode == 1 and "no image 7d3c5a1e" in no_image.stderr
