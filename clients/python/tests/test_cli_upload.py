"""`imgflow upload` as a person runs it, against the real system: a folder with images, a
text file and a truncated JPEG; --wait; interrupted runs resumed; the JSON summary."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from .conftest import (
    Cli,
    Tenant,
    posts,
    summary_of,
    truncated_jpeg,
    uploads_answered,
    write_photos,
)


def test_a_folder_with_images_a_text_file_and_a_truncated_jpeg(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    write_photos(folder, 3, seed=100)
    write_photos(folder / "holiday", 2, seed=200)
    (folder / "notes.txt").write_text("not a picture\n")
    (folder / "broken.jpg").write_bytes(truncated_jpeg())

    done = cli.run("upload", str(folder), "--recursive", "--json")

    assert done.returncode == 1, done.stderr  # a file failed
    summary = summary_of(done)
    assert (summary["uploaded"], summary["existing"], summary["failed"]) == (5, 0, 1)
    assert summary["skipped"] == 1
    assert summary["failures"] == [
        {
            "path": str(folder / "broken.jpg"),
            "reason": (
                "truncated-image: the jpeg data ends before the image does: "
                "the file ends inside the JPEG's compressed data"
            ),
        }
    ]
    assert summary["skips"] == [
        {"path": str(folder / "notes.txt"), "reason": "not an image (unknown format)"}
    ]
    per_file = [json.loads(line) for line in done.stdout.splitlines()[:-1]]
    assert len(per_file) == 7 and {f["outcome"] for f in per_file} == {
        "uploaded",
        "skipped",
        "failed",
    }
    assert tenant.image_count() == 5


def test_without_recursive_only_the_folders_own_files(cli: Cli, tmp_path: Path) -> None:
    write_photos(tmp_path / "top", 2, seed=300)
    write_photos(tmp_path / "top" / "deeper", 2, seed=310)

    summary = summary_of(cli.run("upload", str(tmp_path / "top"), "--json"))

    assert summary["uploaded"] == 2


def test_wait_follows_processing_until_every_image_is_ready(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 4, seed=400)

    done = cli.run("upload", str(tmp_path / "photos"), "--wait", "--json", timeout=240)

    assert done.returncode == 0, done.stderr
    summary = summary_of(done)
    assert (summary["uploaded"], summary["ready"], summary["not_finished"]) == (4, 4, 0)
    assert isinstance(summary["near_duplicates"], int)
    with tenant.http() as http:
        items = http.get("/v1/images").json()["items"]
    assert [i["status"] for i in items] == ["ready"] * 4


def test_a_rerun_sends_nothing_and_waits_for_nothing_new(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 3, seed=450)
    first = summary_of(cli.run("upload", str(tmp_path / "photos"), "--json", "--wait"))
    sent_before = posts(tenant.url)

    done = cli.run("upload", str(tmp_path / "photos"), "--json", "--wait")

    assert done.returncode == 0, done.stderr
    again = summary_of(done)
    assert first["uploaded"] == 3
    assert (again["uploaded"], again["existing"], again["bytes_sent"]) == (0, 3, 0)
    assert again["ready"] == 3  # known images are read once, not awaited
    assert posts(tenant.url) == sent_before  # not one upload request


def test_equal_files_under_other_names_are_sent_once(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    [photo] = write_photos(tmp_path / "photos", 1, seed=470)
    (tmp_path / "photos" / "copy.jpg").write_bytes(photo.read_bytes())
    sent_before = posts(tenant.url)

    summary = summary_of(cli.run("upload", str(tmp_path / "photos"), "--json"))

    assert (summary["uploaded"], summary["existing"]) == (1, 1)
    assert posts(tenant.url) == sent_before + 1
    assert tenant.image_count() == 1


def _interrupt_after(
    process: subprocess.Popen[str], uploaded: int, sig: signal.Signals
) -> list[dict]:
    """Read the per-file lines as they come; after ``uploaded`` uploads, send ``sig``."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(json.loads(line))
        if sum(1 for entry in lines if entry.get("outcome") == "uploaded") == uploaded:
            process.send_signal(sig)
            break
    rest, _ = process.communicate(timeout=120)
    return lines + [json.loads(line) for line in rest.splitlines()]


def test_ctrl_c_stops_cleanly_and_a_rerun_sends_only_the_rest(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 30, seed=600, size=(640, 480))
    process = cli.start("upload", str(tmp_path / "photos"), "--json", "--concurrency", "1")

    lines = _interrupt_after(process, 3, signal.SIGINT)

    assert process.returncode == 130
    first = lines[-1]
    assert first["interrupted"] is True and first["failed"] == 0
    assert 3 <= first["uploaded"] < 30, "interrupted too late to test a resume"
    stored = tenant.image_count()
    assert stored == first["uploaded"]  # the upload in progress finished and was recorded

    sent_before = posts(tenant.url)
    done = cli.run("upload", str(tmp_path / "photos"), "--json")

    assert done.returncode == 0, done.stderr
    second = summary_of(done)
    assert (second["uploaded"], second["existing"]) == (30 - stored, stored)
    assert posts(tenant.url) - sent_before == 30 - stored, (  # nothing stored sent again
        f"{uploads_answered(tenant.url)}; stderr: {done.stderr}"
    )
    assert tenant.image_count() == 30


def test_a_run_killed_outright_is_resumed_without_sending_what_arrived(
    cli: Cli, tenant: Tenant, tmp_path: Path
) -> None:
    write_photos(tmp_path / "photos", 24, seed=700, size=(640, 480))
    process = cli.start("upload", str(tmp_path / "photos"), "--json", "--concurrency", "4")

    lines = _interrupt_after(process, 4, signal.SIGKILL)  # no chance to record anything

    assert process.returncode == -signal.SIGKILL
    heard = sum(1 for entry in lines if entry.get("outcome") == "uploaded")
    stored = tenant.image_count()  # may exceed `heard`: answers lost with the process
    assert stored >= heard

    sent_before = posts(tenant.url)
    done = cli.run("upload", str(tmp_path / "photos"), "--json")

    assert done.returncode == 0, done.stderr
    second = summary_of(done)
    assert second["uploaded"] + second["existing"] == 24
    assert posts(tenant.url) - sent_before == 24 - stored
    assert tenant.image_count() == 24


def test_the_state_lives_under_the_users_state_folder(cli: Cli, tmp_path: Path) -> None:
    write_photos(tmp_path / "photos", 1, seed=800)

    cli.run("upload", str(tmp_path / "photos"), "--json")

    state = Path(cli.env["XDG_STATE_HOME"]) / "imgflow" / "state.sqlite3"
    assert state.exists()
    assert cli.env["IMGFLOW_API_KEY"].encode() not in state.read_bytes()  # never the key
