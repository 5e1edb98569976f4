"""The `imgflow-localstack` command, on free ports moved there by IMGFLOW_LOCAL_PORT_*."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from imgflow_localstack import StackPorts, cli
from imgflow_localstack.child import Child
from imgflow_localstack.cli import main
from imgflow_localstack.ports import env_var_for
from imgflow_localstack.services import WORKER_NICE_VARIABLE
from imgflow_localstack.waiting import wait_until_ready


def port_env(ports: StackPorts) -> dict[str, str]:
    return {env_var_for(f.name): str(getattr(ports, f.name)) for f in dataclasses.fields(ports)}


def test_env_prints_exports_of_the_default_stack(monkeypatch, capsys) -> None:
    monkeypatch.setenv("IMGFLOW_LOCAL_PORT_POSTGRES", "54400")
    with pytest.raises(SystemExit) as done:
        main(["env"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "export IMGFLOW_DATABASE_URL=postgresql://imgflow@127.0.0.1:54400/imgflow" in out
    assert "export IMGFLOW_BROKER_URL=redis://127.0.0.1:63790/0" in out
    assert "export IMGFLOW_S3_ENDPOINT=127.0.0.1:58333" in out


def start_stack_command(tmp_path: Path) -> tuple[Child, StackPorts]:
    """The stack command, started and ready; its output (both streams) is its log, so a
    start that fails or hangs is reported with the log's last lines, not only a timeout."""
    ports = StackPorts.free()
    command = Child(
        "imgflow-localstack stack",
        [sys.executable, "-m", "imgflow_localstack.cli", "stack", "--data-dir", tmp_path / "data"],
        tmp_path / "stack.log",
        env={**os.environ, **port_env(ports)},
        stop_signal=signal.SIGINT,
    )
    command.start()
    try:
        wait_until_ready(
            lambda: "# Ctrl-C to stop." in command.read_log(),
            what=command.name,
            child=command,
            timeout_s=60,
        )
    except BaseException:
        command.stop()
        raise
    return command, ports


def test_stack_command_prints_exports_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    command, ports = start_stack_command(tmp_path)
    servers = psutil.Process(command.pid).children()
    assert (
        f"export IMGFLOW_DATABASE_URL=postgresql://imgflow@127.0.0.1:{ports.postgres}/imgflow"
        in command.read_log()
    )
    command.request_stop()  # SIGINT, as Ctrl-C
    assert command.wait(30) == 0
    assert "stopped cleanly" in command.read_log()
    # Gone when the command exits (it waits for each), not within a margin after.
    assert psutil.wait_procs(servers, timeout=0)[1] == []


def test_stack_command_stops_everything_when_a_server_dies(tmp_path: Path) -> None:
    command, _ = start_stack_command(tmp_path)
    servers = psutil.Process(command.pid).children()
    [valkey] = [p for p in servers if p.name().startswith("valkey")]
    valkey.kill()
    assert command.wait(30) == 1
    assert "valkey exited unexpectedly" in command.read_log()
    assert psutil.wait_procs(servers, timeout=0)[1] == []


class _Started(Exception):
    """Raised in place of starting the system: what `run` would start it with is known."""


def _what_run_starts_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, given: str | None
) -> dict[str, object]:
    """The keyword arguments `run` builds its system with, ``variable`` set to ``given``
    (None: unset); the system is not started."""
    if given is None:
        monkeypatch.delenv(variable, raising=False)
    else:
        monkeypatch.setenv(variable, given)
    before = dict(os.environ)
    seen: dict[str, object] = {}

    def instead(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise _Started

    monkeypatch.setattr(cli, "LocalSystem", instead)
    args = argparse.Namespace(data_dir=tmp_path, api_port=0, thumbnailer_concurrency=2)
    with pytest.raises(_Started):
        cli.cmd_run(args)
    # Asked of the system, not left in this process's environment for later systems.
    assert dict(os.environ) == before
    return seen


@pytest.mark.parametrize(("given", "used"), [(None, cli.RUN_WORKER_NICE), ("0", 0)])
def test_run_starts_the_stage_workers_niced_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, used: int
) -> None:
    started = _what_run_starts_with(monkeypatch, tmp_path, WORKER_NICE_VARIABLE, given)
    assert started["worker_nice"] == used


@pytest.mark.parametrize(("given", "used"), [(None, str(cli.RUN_EXPRESS_SLOTS)), ("1", "1")])
def test_run_keeps_three_jobs_in_each_express_queue_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, used: str
) -> None:
    started = _what_run_starts_with(monkeypatch, tmp_path, cli.EXPRESS_DEPTH_VARIABLE, given)
    assert started["extra_env"][cli.EXPRESS_DEPTH_VARIABLE] == used  # type: ignore[index]


@pytest.mark.parametrize(("given", "used"), [(None, cli.RUN_LIGHT_WORK_FIRST), ("false", "false")])
def test_run_holds_a_backlog_back_while_light_work_runs_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str | None, used: str
) -> None:
    started = _what_run_starts_with(monkeypatch, tmp_path, cli.LIGHT_WORK_FIRST_VARIABLE, given)
    assert started["extra_env"][cli.LIGHT_WORK_FIRST_VARIABLE] == used  # type: ignore[index]
