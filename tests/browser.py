"""Headless Chromium (Debian's `chromium`, which .ci/run installs) through its command line:
the DOM of a page once its scripts have settled, or a screenshot of it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

# A fresh profile each run; nothing phones home, nothing updates itself. --no-sandbox:
# the tests run as root, where Chromium's sandbox refuses to start.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Scripts and the requests they make run to completion (virtual time waits for the
    # network) before the DOM is dumped or the picture taken.
    "--virtual-time-budget=10000",
)
WINDOW = "--window-size=1400,900"


def _chromium(*args: str) -> str:
    binary = shutil.which("chromium")
    assert binary, "chromium not found: apt-get install chromium (Debian), as .ci/run does"
    with tempfile.TemporaryDirectory(prefix="imgflow-chromium-") as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(url: str) -> str:
    """The page's DOM as HTML, after its scripts ran."""
    return _chromium("--dump-dom", url)


def screenshot(url: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(WINDOW, f"--screenshot={path}", url)
    assert path.stat().st_size > 0, f"no screenshot at {path}"
    return path
