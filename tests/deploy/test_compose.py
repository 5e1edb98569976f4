"""docker-compose.yml run for real, step by step, through the published ports only.

The steps share one stack and run in order (a failure stops the module: `-x`). The
container engine is used only to act on containers (scale, kill, stop, restart) and to
read their state; every check of the system goes through the API, Flower or Prometheus.
Services are read from the Compose file, so a new deployable is checked without an edit.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import ROOT, Deployment, compose_file
from tests.deploy.engine import timestamp
from tests.support import encode, every_stage_finished, photo_like, wait_for

pytestmark = pytest.mark.timeout(900)

SERVICES = compose_file()["services"]
# Long-running services of the default profile, with and without a healthcheck.
DEFAULT = {n: s for n, s in SERVICES.items() if not s.get("profiles")}
LONG_RUNNING = [n for n, s in DEFAULT.items() if s.get("restart") != "no"]
ONE_SHOT = [n for n, s in DEFAULT.items() if s.get("restart") == "no"]
# The deployables built here that keep running (the migration job is a one-shot).
DEPLOYABLES = [n for n in LONG_RUNNING if "build" in DEFAULT[n]]


def _upload_many(
    api: httpx.Client, seeds: range, size: tuple[int, int] = (1600, 1200)
) -> list[str]:
    """Encoded first, then sent four at a time: the workers get a backlog at once."""
    bodies = [encode(photo_like(*size, seed=seed), "JPEG", quality=90) for seed in seeds]

    def send(body: bytes) -> str:
        response = api.post("/v1/images", content=body, headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, bodies))


def _wait_all_ready(api: httpx.Client, ids: list[str], timeout_s: float = 240) -> list[dict]:
    pending = set(ids)
    settled: dict[str, dict] = {}

    def all_settled() -> bool:
        for image_id in sorted(pending):
            body = api.get(f"/v1/images/{image_id}").json()
            if every_stage_finished(body):
                settled[image_id] = body
                pending.discard(image_id)
        return not pending

    try:
        wait_for(all_settled, timeout_s=timeout_s, what=f"{len(ids)} images to settle")
    except AssertionError as timeout:
        stuck = {
            i: {n: st["status"] for n, st in api.get(f"/v1/images/{i}").json()["stages"].items()}
            for i in sorted(pending)
        }
        raise AssertionError(f"{timeout}; still unsettled: {stuck}") from None
    bodies = [settled[i] for i in ids]
    failed = {
        b["id"]: {name: (st["status"], st.get("error")) for name, st in b["stages"].items()}
        for b in bodies
        if b["status"] != "ready"
    }
    assert not failed, failed
    return bodies


def _healthy(d: Deployment, service: str, replicas: int = 1) -> list[str]:
    def ready() -> list[str] | None:
        ids = d.engine.ids(d.project, service)
        if len(ids) == replicas and all(d.engine.health(i) == "healthy" for i in ids):
            return ids
        return None

    return wait_for(ready, timeout_s=180, what=f"{replicas} healthy {service}")


def _first_healthy(d: Deployment, ident: str) -> datetime:
    if d.probe is not None:
        return d.probe.first_healthy[ident]
    log = d.engine.inspect(ident)["State"]["Health"]["Log"]
    return min(timestamp(entry["End"]) for entry in log if entry["ExitCode"] == 0)


def test_1_up_runs_the_migration_once_and_starts_in_dependency_order(d: Deployment) -> None:
    mark = time.monotonic()
    d.compose("up", "-d", "--no-build")
    d.timings["up"] = time.monotonic() - mark

    for service in LONG_RUNNING:
        if "healthcheck" in SERVICES[service]:
            _healthy(d, service)
        else:
            assert d.engine.ids(d.project, service), f"{service} is not running"
    for service in ONE_SHOT:
        [job] = d.engine.ids(d.project, service, every=True)
        state = d.engine.inspect(job)["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), (service, state)

    # Each dependant started only after what it waits for was healthy or had finished.
    for service, spec in DEFAULT.items():
        [dependant] = d.engine.ids(d.project, service, every=True)
        for dependency, rule in (spec.get("depends_on") or {}).items():
            if not isinstance(rule, dict):
                continue
            [dep] = d.engine.ids(d.project, dependency, every=True)
            if rule["condition"] == "service_healthy":
                ready_at = _first_healthy(d, dep)
            else:
                ready_at = d.engine.finished_at(dep)
            assert d.engine.started_at(dependant) >= ready_at, (service, dependency)


def test_2_twenty_uploads_are_ready_with_thumbnails(d: Deployment) -> None:
    with d.api() as api:
        ids = _upload_many(api, range(20))
        images = _wait_all_ready(api, ids)
        for image in images:
            assert [r["size"] for r in image["renditions"]], image
            for rendition in image["renditions"]:
                got = api.get(rendition["url"])
                assert got.status_code == 200, got.text
                assert got.content[:3] == b"\xff\xd8\xff" or got.content[:4] in (
                    b"RIFF",
                    b"\x89PNG",
                ), rendition


def test_3_a_scaled_thumbnailer_has_both_replicas_taking_jobs(d: Deployment) -> None:
    d.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "thumbnailer=2")
    replicas = _healthy(d, "thumbnailer", replicas=2)
    with d.api() as api:
        _wait_all_ready(api, _upload_many(api, range(100, 120)))
    hostnames = {d.engine.inspect(i)["Config"]["Hostname"] for i in replicas}
    with d.flower() as flower:
        workers = flower.get("/api/workers", params={"refresh": "1"}).json()
    done = {
        name.split("@", 1)[1]: sum(info.get("stats", {}).get("total", {}).values())
        for name, info in workers.items()
        if name.startswith("thumbnailer@")
    }
    assert set(done) >= hostnames, (done, hostnames)
    assert all(done[h] > 0 for h in hostnames), done


def test_4_a_killed_worker_and_a_restarted_broker_lose_nothing(d: Deployment) -> None:
    with d.api() as api:
        # The backlog of a burst of big uploads: the replicas are busy when one dies.
        ids = _upload_many(api, range(200, 220), size=(3000, 2000))
        victim = d.engine.ids(d.project, "thumbnailer")[0]
        d.engine.kill(victim)
        d.compose("restart", "valkey")
        d.compose("up", "-d", "--no-build", "--no-recreate", "--scale", "thumbnailer=2")
        _wait_all_ready(api, ids)


def test_5_a_stopped_worker_shuts_down_warm(d: Deployment) -> None:
    worker = "hasher"
    with d.api() as api:
        # One hasher child and a burst of big uploads: it is working when told to stop.
        ids = _upload_many(api, range(300, 310), size=(3000, 2000))
        [container] = d.engine.ids(d.project, worker)
        d.compose("stop", worker)
        state = d.engine.inspect(container)["State"]
        # 0: Celery's warm shutdown finished its task and exited; SIGKILL after the grace
        # period would read 137.
        assert state["ExitCode"] == 0, state
        assert "Warm shutdown" in d.engine.logs(container)
        d.compose("start", worker)
        _wait_all_ready(api, ids)


def test_6_prometheus_scrapes_every_service_and_loads_the_rules(d: Deployment) -> None:
    d.compose("--profile", "observability", "up", "-d", "--no-build", "prometheus")
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    scraped_names = {
        name for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }  # fmt: skip
    assert set(DEPLOYABLES) <= scraped_names, "a deployable that Prometheus does not scrape"
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    expected_rules = {
        rule.get("alert") or rule.get("record") for g in rules["groups"] for rule in g["rules"]
    }

    with httpx.Client(base_url=d.url("prometheus"), timeout=10) as prom:

        def all_up() -> list[dict[str, Any]] | None:
            try:
                answer = prom.get("/api/v1/targets")
            except httpx.HTTPError:
                return None
            if answer.status_code != 200:  # 503 "Service Unavailable" while it starts
                return None
            targets = answer.json()["data"]["activeTargets"]
            seen = {t["labels"]["job"] for t in targets}
            if seen == jobs and all(t["health"] == "up" for t in targets):
                return targets
            return None

        targets = wait_for(all_up, timeout_s=120, what="every scrape target up")
        loaded = prom.get("/api/v1/rules").json()["data"]["groups"]
    per_job = {job: sum(t["labels"]["job"] == job for t in targets) for job in jobs}
    assert per_job["imgflow-thumbnailer"] == 2, per_job  # both replicas, found by DNS
    assert {r["name"] for g in loaded for r in g["rules"]} == expected_rules


def test_7_down_leaves_nothing(d: Deployment) -> None:
    d.compose("--profile", "observability", "down", "-v", "--remove-orphans")
    assert d.engine.leftovers(d.project) == {"containers": [], "networks": [], "volumes": []}


@pytest.fixture(scope="module")
def d(deployment: Deployment) -> Deployment:
    return deployment
