"""The format zoo through the running system: every file's outcome is Pillow's own verdict.

Pillow fully loads it: the upload is accepted and comes out ``ready``, its rendition close
to Pillow's own first frame converted to sRGB (mean error, not a hash). Pillow refuses
it: a 4xx problem at the door, or ``failed`` on the first attempt with a reason in words.
No answer is a 5xx, and a bomb sent twice on one keep-alive connection keeps it.
"""

from __future__ import annotations

import http.client
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from imgflow_localstack.system import LocalSystem
from tests.format_zoo import BOMBS, FRAMES, MP4, mean_error, pillow_view, zoo
from tests.support import bearer, every_stage_finished, new_tenant, wait_for

ZOO = zoo()
VERDICTS = {name: pillow_view(data) for name, data in ZOO.items()}
# WebP at quality 82 of flat halves and corner blocks stays within a few levels; a wrong
# frame, turn, profile or bit depth is off by tens.
MAX_MEAN_ERROR = 8.0
RENDITION = 150


@dataclass
class Outcome:
    status: int  # the upload's HTTP status
    answer: dict[str, Any]
    image: dict[str, Any] | None = None  # the settled image, when accepted
    rendition: Image.Image | None = None


@pytest.fixture(scope="module")
def zoo_client(system: LocalSystem) -> httpx.Client:
    """A tenant of its own: the zoo's bytes are nobody else's duplicates."""
    tenant = new_tenant(system, "zoo")
    with httpx.Client(
        base_url=system.api_url, headers=bearer(tenant["api_key"]), timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def outcomes(zoo_client: httpx.Client) -> dict[str, Outcome]:
    """Upload the whole zoo, then wait for every accepted image to settle."""
    found = {}
    for name, data in ZOO.items():
        response = zoo_client.post("/v1/images", content=data)
        found[name] = Outcome(response.status_code, response.json())
    waiting = {name for name, o in found.items() if o.status in (200, 201)}

    def all_settled() -> bool:
        for name in sorted(waiting):
            body = zoo_client.get(f"/v1/images/{found[name].answer['id']}").json()
            if every_stage_finished(body):
                found[name].image = body
                waiting.discard(name)
        return not waiting

    wait_for(all_settled, timeout_s=300, what="every accepted zoo image to settle")
    for outcome in found.values():
        if outcome.image is not None and outcome.image["status"] == "ready":
            got = zoo_client.get(f"/v1/images/{outcome.image['id']}/thumbnails/{RENDITION}")
            assert got.status_code == 200, got.text
            outcome.rendition = Image.open(io.BytesIO(got.content))
    return found


def test_the_zoo_is_what_it_says() -> None:
    def opened(name: str) -> Image.Image:
        return Image.open(io.BytesIO(ZOO[name]))

    for name in ("animated-gif", "animated-webp", "animated-png", "multi-page-tiff"):
        assert opened(name).n_frames == len(FRAMES), name
    assert opened("mpo").format == "MPO"
    assert opened("ycck-jpeg").mode == "CMYK"
    assert ZOO["ycck-jpeg"][ZOO["ycck-jpeg"].index(b"Adobe") + 11] == 2
    assert b"Adobe" not in ZOO["cmyk-jpeg-no-adobe"]
    assert opened("I;16B-tiff").mode == "I;16B"
    assert ZOO["motion-photo-jpeg"].endswith(MP4)
    # Both kinds of verdict are in the zoo; a truncated copy is refused unless the cut
    # fell in a video after the image, which leaves the image whole.
    assert sum(v is None for v in VERDICTS.values()) > 50
    assert sum(v is not None for v in VERDICTS.values()) > 80
    loaded = {n for n in ZOO if n.endswith("-truncated") and VERDICTS[n] is not None}
    assert loaded == {"motion-photo-jpeg-truncated", "mpo-with-video-truncated"}


@pytest.mark.parametrize("name", list(ZOO))
def test_the_outcome_is_pillows_verdict(name: str, outcomes: dict[str, Outcome]) -> None:
    outcome, verdict = outcomes[name], VERDICTS[name]
    assert outcome.status < 500, outcome.answer
    if verdict is None:
        if outcome.image is None:  # refused at the door
            assert 400 <= outcome.status < 500, outcome.answer
            assert outcome.answer["code"] and outcome.answer["detail"]
            return
        assert outcome.image["status"] == "failed", f"Pillow refuses {name}; the system did not"
        for stage, state in outcome.image["stages"].items():
            if state["status"] == "failed":
                assert state["attempts"] == 1, f"{stage} retried a final error: {state}"
                assert_in_words(state["error"])
        return
    assert outcome.status in (200, 201), outcome.answer
    assert outcome.image is not None and outcome.image["status"] == "ready", outcome.image
    assert outcome.rendition is not None
    error = mean_error(outcome.rendition, verdict)
    assert error <= MAX_MEAN_ERROR, f"{name}: mean error {error:.1f} against Pillow's own"


def assert_in_words(reason: str) -> None:
    assert reason, "no reason given"
    assert "Traceback" not in reason and " object at 0x" not in reason, reason
    assert not reason.startswith(("<", "gave up after")), reason


@pytest.mark.parametrize(
    ("name", "trailer"),
    [
        ("motion-photo-jpeg", len(MP4)),
        ("png-newline-after-iend", 1),
        ("gif-junk-after-trailer", 40),
        ("webp-junk-after-riff", 5),
        ("mpo-with-video", len(MP4)),
    ],
)
def test_trailing_data_is_reported(name: str, trailer: int, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[name]
    assert outcome.answer["trailing_bytes"] == trailer
    assert outcome.image is not None and outcome.image["trailing_bytes"] == trailer


def test_bombs_twice_on_one_keep_alive_connection(system: LocalSystem) -> None:
    """Each bomb, sent twice: an answer each time, on the same connection throughout."""
    url = urlsplit(system.api_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=60)
    connection.connect()
    socket_before = connection.sock
    try:
        for name, data in [*BOMBS.items(), ("truncated", ZOO["RGB-png-truncated"])]:
            for attempt in (1, 2):
                connection.request("POST", "/v1/images", body=data, headers=system.auth_headers)
                response = connection.getresponse()
                body = json.loads(response.read())
                assert response.status < 500, (name, attempt, body)
                assert response.getheader("connection", "").lower() != "close", (name, attempt)
                assert connection.sock is socket_before, f"{name}: connection dropped"
    finally:
        connection.close()
