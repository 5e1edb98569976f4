"""A real Prometheus (Debian's binary) scraping a running system, for the tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from imgflow_localstack.child import Child
from imgflow_localstack.ports import free_port
from imgflow_localstack.waiting import wait_until_ready
from tests.monitoring.tools import RULES_FILE, binary

SCRAPE_INTERVAL = "1s"


def config(targets: Mapping[str, str], rules_file: Path = RULES_FILE) -> dict[str, Any]:
    """Scrape each job's metrics URL every second and evaluate the alert rules (the real
    ones unless told). Job names are prometheus.yml's, which the rules select on."""
    jobs = []
    for job, url in targets.items():
        parts = urlsplit(url)
        jobs.append(
            {
                "job_name": job,
                "metrics_path": parts.path,
                "static_configs": [{"targets": [parts.netloc]}],
            }
        )
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(rules_file)],
        "scrape_configs": jobs,
    }


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises on a PromQL error)."""
        answer = self.http.get("/api/v1/query", params={"query": promql}).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def metric_names(self) -> set[str]:
        return set(self.http.get("/api/v1/label/__name__/values").json()["data"])

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, queue label or "") of every alert firing now."""
        alerts = self.http.get("/api/v1/alerts").json()["data"]["alerts"]
        return {
            (a["labels"]["alertname"], a["labels"].get("queue", ""))
            for a in alerts
            if a["state"] == "firing"
        }

    def rules(self) -> list[dict[str, Any]]:
        groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]


@contextlib.contextmanager
def running_prometheus(
    targets: Mapping[str, str], work_dir: Path, rules_file: Path = RULES_FILE
) -> Iterator[Prometheus]:
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(targets, rules_file)))
    port = free_port()
    child = Child(
        "prometheus",
        [
            binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        work_dir / "prometheus.log",
    )
    child.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(
            lambda: httpx.get(f"{url}/-/ready").status_code == 200,
            what="prometheus",
            child=child,
            timeout_s=30,
        )
        prometheus = Prometheus(url)
        yield prometheus
        prometheus.http.close()
    finally:
        child.stop()
