"""Flower, as `make run` starts it: behind a password, and showing the three workers
online, each on its own queue, in a real browser (headless Chromium)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from imgflow_localstack.services import FLOWER_USER
from imgflow_localstack.system import LocalSystem
from tests.browser import dump_dom, screenshot
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[1]
# Kept after the run (git-ignored), for a person to look at: what the browser saw.
SCREENSHOT = ROOT / ".data" / "test-artefacts" / "flower-workers.png"
QUEUES = {"thumbnailer": "thumbnails", "hasher": "hashing", "deduper": "dedupe"}


class _Cells(HTMLParser):
    """The text of every table row, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _rows(html: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(html)
    return [row for row in parser.rows if row]


def _authed_url(system: LocalSystem, path: str) -> str:
    """Credentials in the URL: Chromium answers Flower's basic-auth challenge with them."""
    host = system.flower_url.removeprefix("http://")
    return f"http://{FLOWER_USER}:{quote(system.flower_password, safe='')}@{host}{path}"


@pytest.mark.parametrize("path", ["/", "/workers", "/broker", "/tasks", "/api/workers"])
def test_flower_answers_401_without_the_password(system: LocalSystem, path: str) -> None:
    url = system.flower_url + path
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(FLOWER_USER, "not-the-password")).status_code == 401
    assert httpx.get(url, auth=("admin", system.flower_password)).status_code == 401
    assert httpx.get(url, auth=(FLOWER_USER, system.flower_password)).status_code == 200


def test_a_browser_sees_the_three_workers_online_each_on_its_queue(system: LocalSystem) -> None:
    # Flower learns of workers from their heartbeats (every 2 s): wait until all three
    # have reported; nothing announces it, so poll.
    def online() -> dict[str, bool] | None:
        answer = httpx.get(
            f"{system.flower_url}/workers",
            params={"json": 1},
            auth=(FLOWER_USER, system.flower_password),
        ).json()
        status = {w["hostname"].split("@")[0]: w["status"] for w in answer["data"]}
        return status if status == dict.fromkeys(QUEUES, True) else None

    wait_for(online, timeout_s=60, what="Flower to see the three workers online")

    page = dump_dom(_authed_url(system, "/workers"))
    rows = {row[0].split("@")[0]: row for row in _rows(page) if "@" in row[0]}
    assert set(rows) == set(QUEUES), rows
    for worker, row in rows.items():
        assert re.search(r"\bonline\b|\btrue\b", row[1], re.IGNORECASE), (worker, row)
    screenshot(_authed_url(system, "/workers"), SCREENSHOT)

    for worker, queue in QUEUES.items():
        name = next(row[0] for w, row in rows.items() if w == worker)
        page = dump_dom(_authed_url(system, f"/worker/{quote(name)}"))
        consumed = [row[0] for row in _rows(page) if row and row[0] in QUEUES.values()]
        assert consumed == [queue], (worker, consumed)
