"""One slow webhook receiver never delays deliveries to the others: a receiver that
accepts every request and never answers, beside one that answers at once, both of one
tenant. The hanging one holds at most its endpoint's share of attempts, and every
delivery to the other arrives while all of those are still held: none waited for a
hanging attempt to end (each would have taken the configured attempt time limit, two
minutes here). How long the deliveries took is measured by `make bench`
(suite webhook_isolation), not asserted here."""

from __future__ import annotations

import pytest

from tests.support import encode, photo_like, wait_for
from tests.webhook_support import Receiver, SenderThread, Tenant, hang, ok

pytestmark = pytest.mark.usefixtures("own_sender")

UPLOADS = 6
PER_ENDPOINT = 4
TIMEOUT_S = 120.0  # longer than the test: a hanging attempt never ends by timing out


def test_a_hanging_receiver_does_not_delay_the_others(database_url: str, account: Tenant) -> None:
    with (
        SenderThread(database_url, webhook_timeout_s=TIMEOUT_S, webhook_per_endpoint=PER_ENDPOINT),
        Receiver(hang).running() as hanging,
        Receiver(ok).running() as fast,
    ):
        account.register(hanging.url)
        account.register(fast.url)
        ids = []
        for seed in range(UPLOADS):
            body = encode(photo_like(200, 150, seed=700 + seed), "JPEG")
            ids.append(account.api.post("/v1/images", content=body).json()["id"])

        def every_outcome_delivered() -> bool:
            ready = {
                a.body["data"]["image_id"] for a in fast.arrivals if a.body["type"] == "image.ready"
            }
            return ready == set(ids)

        wait_for(every_outcome_delivered, timeout_s=120, what="image.ready of every upload")
        held, most, ended = hanging.open, hanging.most_open, hanging.ended
        events = {a.body["id"] for a in fast.arrivals}

    # The hanging receiver held its endpoint's share of attempts all along...
    assert held == most == PER_ENDPOINT
    # ...and none of them had ended when the last delivery to the other arrived: no
    # delivery there waited behind one.
    assert ended == 0
    # Every event went to both endpoints; the hanging one saw only its share of them.
    assert len(events) > PER_ENDPOINT and len(hanging.arrivals) == PER_ENDPOINT
