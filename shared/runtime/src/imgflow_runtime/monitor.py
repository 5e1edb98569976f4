"""The Celery app Flower watches: ``celery -A imgflow_runtime.monitor flower``.

It consumes nothing; it knows the broker (``IMGFLOW_BROKER_URL``) and the three queues,
so Flower's broker page lists them even while no worker is up. Deliberately not built
by celery_app: that would bring the workers' metrics and tracing set-up into Flower.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import CommonSettings

app = Celery("imgflow-monitor", set_as_current=False)
app.conf.update(
    broker_url=CommonSettings().broker_url,
    accept_content=["json"],
    task_queues=tuple(Queue(stage.queue) for stage in Stage),
    broker_connection_retry_on_startup=True,
)
