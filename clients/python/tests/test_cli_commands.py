"""The other `imgflow` commands, and the errors a person meets first."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from PIL import Image as PilImage

from imgflow_localstack.system import LocalSystem
from tests.support import admin_cli

from .conftest import Cli, Tenant, summary_of, write_photos


def _upload_one(cli: Cli, tmp_path: Path, seed: int) -> str:
    write_photos(tmp_path / f"one-{seed}", 1, seed=seed, size=(400, 300))
    done = cli.run("upload", str(tmp_path / f"one-{seed}"), "--json", "--wait", timeout=240)
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in done.stdout.splitlines()[:-1]]
    return str(line["image_id"])


def test_status_ls_get_reprocess_duplicates_and_rm(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    image_id = _upload_one(cli, tmp_path, 900)

    status = cli.run("status", image_id)
    as_json = json.loads(cli.run("status", image_id, "--json").stdout)
    listed = cli.run("ls", "--status", "ready", "--json")
    got = cli.run("get", image_id, "--size", "150", "-o", str(tmp_path / "small.webp"))
    original = cli.run("get", image_id, "-o", str(tmp_path / "original.jpg"))
    again = cli.run("reprocess", image_id, "--stage", "hashing")
    every = cli.run("reprocess", "--all", "--status", "failed")
    dupes = cli.run("duplicates", image_id, "--json")
    removed = cli.run("rm", image_id)
    gone = cli.run("status", image_id)

    assert status.returncode == 0 and "ready" in status.stdout and "thumbnails" in status.stdout
    assert as_json["id"] == image_id and as_json["width"] == 400
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [image_id]
    assert got.returncode == 0, got.stderr
    with PilImage.open(tmp_path / "small.webp") as small:
        assert max(small.size) == 150
    assert original.returncode == 0, original.stderr
    uploaded = tmp_path / "one-900" / "photo-0900.jpg"
    assert (tmp_path / "original.jpg").read_bytes() == uploaded.read_bytes()
    assert again.returncode == 0 and "reprocessing 1 image" in again.stdout
    assert every.returncode == 0 and "reprocessing 0 image" in every.stdout
    assert json.loads(dupes.stdout)["id"] == image_id
    assert removed.returncode == 0 and tenant.image_count() == 0
    assert gone.returncode == 1 and "image-not-found" in gone.stderr


def test_get_names_the_sizes_there_are(cli: Cli, tmp_path: Path) -> None:
    image_id = _upload_one(cli, tmp_path, 910)

    done = cli.run("get", image_id, "--size", "123", "-o", str(tmp_path / "x.webp"))

    assert done.returncode == 1
    assert "rendition-not-found" in done.stderr and "150, 300, 600" in done.stderr
    assert not (tmp_path / "x.webp").exists()  # no partial file left


def test_watch_prints_the_events_of_an_image_until_it_is_ready(cli: Cli, tmp_path: Path) -> None:
    image_id = _upload_one(cli, tmp_path, 920)

    done = cli.run("watch", "--image", image_id, "--json", timeout=60)

    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0
    assert events[0]["event"] == "state" and events[0]["finished"] is True


def test_a_bad_key_is_refused_clearly(cli: Cli, tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", 1, seed=930)

    done = cli.with_env(IMGFLOW_API_KEY="imgf_wrong").run("upload", str(tmp_path / "photos"))
    status = cli.with_env(IMGFLOW_API_KEY="imgf_wrong").run("ls")

    assert done.returncode == 3 and "refused the API key" in done.stderr
    assert status.returncode == 3 and "401 unauthorized" in status.stderr


def test_a_path_that_does_not_exist_stops_before_anything_is_sent(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 1, seed=940)

    done = cli.run("upload", str(tmp_path / "photos"), str(tmp_path / "nowhere"))

    assert done.returncode == 2
    assert f"no such file or folder: {tmp_path / 'nowhere'}" in done.stderr
    assert tenant.image_count() == 0


def test_an_unreadable_file_fails_with_its_reason_and_the_rest_goes_on(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 1, seed=950)
    # Unreadable even for root (who ignores file modes): a link to nothing.
    (tmp_path / "photos" / "lost.jpg").symlink_to(tmp_path / "gone.jpg")

    done = cli.run("upload", str(tmp_path / "photos"), "--recursive", "--json")

    summary = summary_of(done)
    assert done.returncode == 1
    assert (summary["uploaded"], summary["failed"]) == (1, 1)
    assert summary["failures"] == [
        {
            "path": str(tmp_path / "photos" / "lost.jpg"),
            "reason": "unreadable: No such file or directory",
        }
    ]


def test_no_key_anywhere_says_how_to_give_one(cli: Cli, tmp_path: Path) -> None:
    done = cli.with_env(IMGFLOW_API_KEY=None).run("ls")

    assert done.returncode == 2
    assert "no API key" in done.stderr and "imgflow login" in done.stderr


def test_login_keeps_the_key_out_of_argv_in_a_file_only_its_owner_reads(
    cli: Cli, tenant: Tenant
) -> None:
    anonymous = cli.with_env(IMGFLOW_API_KEY=None)

    done = anonymous.run("login", input=tenant.api_key + "\n")
    after = anonymous.run("ls", "--json")

    assert done.returncode == 0, done.stderr
    config = Path(cli.env["XDG_CONFIG_HOME"]) / "imgflow" / "config.toml"
    assert tenant.api_key in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert after.returncode == 0, after.stderr


def test_usage_shows_what_the_tenant_holds_beside_its_limits(cli: Cli, system: LocalSystem) -> None:
    before = json.loads(cli.run("usage", "--json").stdout)
    limited = admin_cli(system, "limits", "set", before["tenant"], "--max-images", "7")
    assert limited.returncode == 0, limited.stderr

    shown = cli.run("usage")
    after = json.loads(cli.run("usage", "--json").stdout)

    assert before["images"] == 0 and before["limits"]["max_images"] is None
    assert shown.returncode == 0, shown.stderr
    assert before["tenant"] in shown.stdout
    (images_row,) = [line for line in shown.stdout.splitlines() if "images stored" in line]
    assert re.findall(r"\d+", images_row) == ["0", "7"]
    assert after["limits"]["max_images"] == 7
