"""A real Prometheus scrapes the running system: every process answers, and every metric
the dashboard and the alert rules name exists, so a renamed metric breaks this test
rather than a dashboard in production."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx

from imgflow_localstack.system import LocalSystem
from tests.monitoring.prometheus_server import Prometheus, running_prometheus
from tests.support import encode, every_stage_finished, photo_like, wait_for
from tests.test_deploy_static import alert_rules, dashboard_queries, promql_metric_names

# The kubelet's cAdvisor series (worker memory alerts): Kubernetes serves them, no
# imgflow process does, so no local system can.
CLUSTER_METRICS = {"container_memory_working_set_bytes", "container_spec_memory_limit_bytes"}
WORKER_JOBS = {"imgflow-thumbnailer", "imgflow-hasher", "imgflow-deduper"}


def _jobs(system: LocalSystem) -> dict[str, str]:
    """Scrape job name (as in deploy/prometheus/prometheus.yml) -> metrics URL."""
    return {f"imgflow-{name}": url for name, url in system.metrics_urls().items()}


def _named_metrics() -> set[str]:
    queries = [rule["expr"] for rule in alert_rules()] + dashboard_queries()
    return set().union(*(promql_metric_names(q) for q in queries)) - CLUSTER_METRICS


def _jobs_with(prometheus: Prometheus, metric: str) -> set[str]:
    return {s["metric"]["job"] for s in prometheus.query(f"count by (job) ({metric})")}


def test_prometheus_finds_every_metric_the_dashboard_and_alerts_name(
    system: LocalSystem, api: httpx.Client, tmp_path: Path
) -> None:
    # Labelled series exist once something happened: one upload through every stage.
    image_id = api.post("/v1/images", content=encode(photo_like(320, 240, seed=71), "JPEG"))
    image_id = image_id.json()["id"]
    wait_for(lambda: every_stage_finished(api.get(f"/v1/images/{image_id}").json()), what="stages")

    named = _named_metrics()
    assert {"imgflow_tasks_total", "imgflow_queue_depth", "up"} <= named
    with running_prometheus(_jobs(system), tmp_path) as prometheus:

        def every_target_up() -> bool:
            up = {s["metric"]["job"]: s["value"][1] for s in prometheus.query("up")}
            return up == dict.fromkeys(_jobs(system), "1")

        wait_for(every_target_up, what="every process scraped (up == 1)")

        def missing() -> set[str]:
            return named - prometheus.metric_names()

        with contextlib.suppress(AssertionError):
            wait_for(lambda: not missing(), what="every named metric", timeout_s=30)
        assert not missing(), f"named by the dashboard or alerts, served by nothing: {missing()}"

        # Task metrics come from each worker's own endpoint, not only from one of them.
        for metric in ("imgflow_tasks_total", "imgflow_task_duration_seconds_bucket"):
            assert _jobs_with(prometheus, metric) == WORKER_JOBS, metric
        assert _jobs_with(prometheus, "imgflow_queue_depth") == {"imgflow-api"}

        # Every rule evaluates in a real Prometheus, and no "worker down/absent" alert
        # holds against a healthy system (they all did before the workers were served).
        def every_rule_evaluated() -> list[dict] | None:
            rules = prometheus.rules()
            return rules if all(r["health"] == "ok" for r in rules) else None

        rules = wait_for(every_rule_evaluated, what="every rule evaluated without error")
        assert len(rules) == len(alert_rules())
        availability = [
            r
            for r in alert_rules()
            if r["alert"].startswith(("ImgflowNo", "ImgflowWorkerDown", "ImgflowApiDown"))
        ]
        assert len(availability) == 6
        for rule in availability:
            assert prometheus.query(rule["expr"]) == [], rule["alert"]
