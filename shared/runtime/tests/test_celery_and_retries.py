import pytest

from imgflow_contracts.queues import TASK_NAMES, Stage
from imgflow_contracts.settings import WorkerSettings
from imgflow_runtime.celery_app import make_producer_app, make_worker_app
from imgflow_runtime.stage_runner import retry_delay_s


def test_worker_app_carries_the_decision_record_safeguards():
    conf = make_worker_app(Stage.THUMBNAILS, WorkerSettings()).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (240, 300)
    assert conf.worker_max_tasks_per_child == 1000
    assert conf.worker_max_memory_per_child == 200_000
    assert conf.result_expires == 3600
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    # its own queue and its express queue (-Q picks which one a worker consumes)
    assert [q.name for q in conf.task_queues] == ["thumbnails", "thumbnails.express"]


def test_visibility_timeout_below_the_hard_limit_is_refused():
    with pytest.raises(ValueError, match="VISIBILITY_TIMEOUT"):
        make_worker_app(Stage.DEDUPE, WorkerSettings(broker_visibility_timeout_s=300))


def test_producer_routes_each_task_to_its_queue():
    routes = make_producer_app(WorkerSettings()).conf.task_routes
    assert {name: r["queue"] for name, r in routes.items()} == {
        TASK_NAMES[s]: s.queue for s in Stage
    }


def test_retry_delay_doubles_with_jitter_and_is_capped():
    for retries in range(8):
        delays = [retry_delay_s(retries, base=1.0, cap=60) for _ in range(200)]
        full = min(60, 2**retries)
        # Half fixed, half random: an outage shorter than the fixed halves cannot use up
        # the retries, and jobs that failed together come back spread out.
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100
    assert sum(retry_delay_s(r) / 1 for r in range(5)) >= 0.5 + 1 + 2 + 4 + 8
