"""The README stays short, keeps the two commands, and its tour works.

Each shell block of the README is marked, in an HTML comment just above it, either
`<!-- readme: runnable -->` or `<!-- readme: not runnable: WHY -->`. The runnable blocks
are run in order, in one shell, as a newcomer would type them in one terminal: against
the test session's running system instead of `make run`'s, from a folder laid out as a
clone with `make run`'s data (`.venv`, `.data/local/bootstrap-api-key`) and a `./photos`
folder holding a photo, an edited copy of it and another photo.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from imgflow_localstack.system import LocalSystem
from tests.support import encode, new_tenant, photo_like

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAKE_RUN_API = "http://127.0.0.1:8000"  # the address the README's commands use
MARK = re.compile(r"<!-- readme: (runnable|not runnable: (?P<why>[^>]*\S)) -->\n```sh\n")
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell)\n", re.M)


def readme() -> str:
    return README.read_text()


def runnable_blocks(text: str) -> list[str]:
    blocks = []
    for mark in MARK.finditer(text):
        if mark.group(1) == "runnable":
            body = text[mark.end() :]
            blocks.append(body[: body.index("\n```")])
    return blocks


def test_readme_shows_the_two_commands() -> None:
    text = readme()
    assert "make run" in text and "make test" in text


def test_readme_is_short() -> None:
    assert len(readme().splitlines()) <= 150, (
        "the README is read in five minutes: move detail to docs/"
    )


def test_every_shell_block_says_whether_it_runs() -> None:
    text = readme()
    marked = {mark.end() for mark in MARK.finditer(text)}
    unmarked = [
        text.count("\n", 0, block.start()) + 1
        for block in SHELL_BLOCK.finditer(text)
        if block.end() not in marked
    ]
    assert not unmarked, (
        f"README.md lines {unmarked}: mark each shell block `<!-- readme: runnable -->` or "
        "`<!-- readme: not runnable: WHY -->`"
    )
    assert runnable_blocks(text), "the README's tour has no runnable block"


def _photos(folder: Path) -> None:
    """A photo, a smaller re-saved copy of it (a near-duplicate) and another photo."""
    shot = photo_like(1200, 900, seed=3)
    (folder / "photos").mkdir()
    (folder / "photos" / "beach.jpg").write_bytes(encode(shot, "JPEG", quality=90))
    small = shot.resize((600, 450), Image.Resampling.LANCZOS)
    (folder / "photos" / "beach-small.jpg").write_bytes(encode(small, "JPEG", quality=70))
    (folder / "photos" / "other.png").write_bytes(encode(photo_like(900, 900, seed=11), "PNG"))
    (folder / "photo.jpg").write_bytes(encode(photo_like(800, 600, seed=5), "JPEG", quality=85))


@pytest.mark.timeout(240)
def test_the_readme_tour_runs_against_a_running_system(system: LocalSystem, tmp_path: Path) -> None:
    assert shutil.which("curl"), "the tour uses curl"
    clone = tmp_path / "imgflow"
    (clone / ".data" / "local").mkdir(parents=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    # A tenant of its own, so the tour's resolve touches no other test's images.
    tenant = new_tenant(system, "readme")
    (clone / ".data" / "local" / "bootstrap-api-key").write_text(tenant["api_key"])
    _photos(clone)
    script = "\n".join(runnable_blocks(readme())).replace(MAKE_RUN_API, system.api_url)
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMGFLOW_")},
        "HOME": str(home),  # the command's config and state files: the test's own
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "IMGFLOW_URL": system.api_url,  # what `make run`'s default address is to the tour
        "COLUMNS": "200",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "urn:imgflow:problem" not in output, output  # no request was refused
    # What the tour says it shows: processed images, one image's events, a group with its
    # suggested keeper, and the group resolved.
    assert re.search(r"ready\s*│\s*3\b", done.stdout), output  # --wait's summary
    assert "event: state" in done.stdout, output  # curl's server-sent events
    assert "suggested keeper" in done.stdout, output
    assert re.search(r"kept \S+\ntrashed ", done.stdout), output
