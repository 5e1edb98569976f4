"""`imgflow-localstack`: run imgflow (or only its servers) on this machine, until Ctrl-C.

imgflow-localstack run    [--data-dir DIR] [--api-port 8000] [--thumbnailer-concurrency 2]
imgflow-localstack stack  [--data-dir DIR]
imgflow-localstack env
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from imgflow_contracts.settings import ENV_PREFIX, LOCAL_API_PORT
from imgflow_localstack.child import Child
from imgflow_localstack.errors import LocalStackError
from imgflow_localstack.ports import HOST, ProcessPorts, StackPorts
from imgflow_localstack.services import (
    API,
    FLOWER_USER,
    RUN_CONCURRENCY,
    THUMBNAILER,
    WEBHOOK_SENDER,
    worker_nice_from_env,
)
from imgflow_localstack.stack import LocalStack
from imgflow_localstack.system import LocalSystem

DEFAULT_DATA_DIR = Path(".data") / "local"
# `run` starts the stages' own workers at this nice value (their sessions too) unless
# IMGFLOW_LOCAL_WORKER_NICE says otherwise: on one machine the express workers, the API and
# the servers then come before a backlog's jobs, which is what lets a small tenant's
# uploads through during someone's bulk reprocess (docs/operating/scheduling.md, "Fifth
# round"). The test and bench systems keep 0 unless asked.
RUN_WORKER_NICE = 19
# `run` keeps this many jobs in each express queue, and starts as many express worker
# processes, unless IMGFLOW_OUTBOX_EXPRESS_QUEUE_DEPTH says otherwise: with one, a small
# tenant's second and third uploads wait at the head of the stage's queue for a niced
# worker to finish a backlog's job (scheduling.md, "Seventh round"). Compose and the
# Kubernetes manifests set the same. The settings' default (1) stays for the test systems.
RUN_EXPRESS_SLOTS = 3
EXPRESS_DEPTH_VARIABLE = f"{ENV_PREFIX}OUTBOX_EXPRESS_QUEUE_DEPTH"
# `run` holds back a tenant with a backlog at the API while a light tenant's images are
# in the express lane, unless IMGFLOW_TENANT_LIGHT_WORK_FIRST says otherwise: on one host
# even one of a flood's uploads at a time takes the cores the light tenant's stages need
# (scheduling.md, "Tenth round"). Compose sets the same; the setting's default is off.
RUN_LIGHT_WORK_FIRST = "true"
LIGHT_WORK_FIRST_VARIABLE = f"{ENV_PREFIX}TENANT_LIGHT_WORK_FIRST"
# How often `run` and `stack` look for a child that died on its own.
WATCH_INTERVAL_S = 0.5


def default_data_dir() -> Path:
    """``.data/local`` at the repository root (found by its uv.lock), else in the cwd."""
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").exists():
            return folder / DEFAULT_DATA_DIR
    return here / DEFAULT_DATA_DIR


def export_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


class _Interrupted(Exception):
    """SIGTERM while starting: unwind like Ctrl-C so what started gets stopped."""


def _raise_interrupted(signum: int, frame: object) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def _wait_for_signal_or_exit(exited: Callable[[], list[Child]]) -> list[Child]:
    """Block until SIGINT/SIGTERM (returns []) or until children exit (returns them)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(WATCH_INTERVAL_S):
        if gone := exited():
            return gone
    return []


def _serve(target: LocalSystem | LocalStack, describe: Callable[[float], None]) -> int:
    """Start, describe, wait, stop: the shape shared by `run` and `stack`."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    began = time.monotonic()
    try:
        target.start()
    except (KeyboardInterrupt, _Interrupted):
        print("\ninterrupted while starting; everything that started is stopped", file=sys.stderr)
        return 130
    except LocalStackError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    gone: list[Child] = []
    try:
        describe(time.monotonic() - began)
        gone = _wait_for_signal_or_exit(target.exited)
        for child in gone:
            print(
                f"\n{child.name} exited unexpectedly (code {child.returncode}); last lines of "
                f"{child.log_path}:\n{child.log_tail()}",
                file=sys.stderr,
            )
        print("\nstopping everything ...", file=sys.stderr)
    finally:
        # The stop is bounded (SIGKILL after each timeout): a second Ctrl-C would only cut
        # the orderly part short, so it is ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stopped_at = time.monotonic()
        target.stop()
    took = time.monotonic() - stopped_at
    if gone:
        print(f"stopped the rest in {took:.1f} s", file=sys.stderr)
        return 1
    print(f"stopped cleanly in {took:.1f} s", file=sys.stderr)
    return 0


class RunTuning(TypedDict):
    worker_nice: int
    extra_env: dict[str, str]


def run_tuning() -> RunTuning:
    """How `run` starts a system beyond the settings' defaults, the environment's values
    first: the stages' workers' nice value, the express queues' depth, given to every
    process (the relay and the workers handing jobs on read it; the express workers are
    sized by it), and whether the API holds back a backlog while light work runs. The fairness
    bench starts its system the same way."""
    depth = os.environ.get(EXPRESS_DEPTH_VARIABLE, str(RUN_EXPRESS_SLOTS))
    light_first = os.environ.get(LIGHT_WORK_FIRST_VARIABLE, RUN_LIGHT_WORK_FIRST)
    return RunTuning(
        worker_nice=worker_nice_from_env(RUN_WORKER_NICE),
        extra_env={EXPRESS_DEPTH_VARIABLE: depth, LIGHT_WORK_FIRST_VARIABLE: light_first},
    )


def cmd_run(args: argparse.Namespace) -> int:
    concurrency = {**RUN_CONCURRENCY, THUMBNAILER: args.thumbnailer_concurrency}
    system = LocalSystem(
        args.data_dir,
        StackPorts.local_defaults(),
        args.api_port,
        concurrency=concurrency,
        process_ports=ProcessPorts.local_defaults(),
        **run_tuning(),
    )

    def describe(seconds: float) -> None:
        api = system.api_url
        stack = system.stack
        webhooks = f"http://{HOST}:{system.process_ports.metrics(WEBHOOK_SENDER)}/healthz"
        metrics = "\n".join(
            f"  {'metrics' if name == API else '':<10} {url}   ({name})"
            for name, url in system.metrics_urls().items()
        )
        print(
            f"""
imgflow is running (started in {seconds:.1f} s)

  API        {api}   (OpenAPI: {api}/docs)
  API key    {system.api_key}   (tenant "default"; set IMGFLOW_BOOTSTRAP_API_KEY to choose it)
  upload     curl -sS -H "Authorization: Bearer $KEY" --data-binary @photo.jpg {api}/v1/images
  status     curl -sS -H "Authorization: Bearer $KEY" {api}/v1/images/<id>
  webhooks   {webhooks}   (the webhook sender; `imgflow webhooks` lists endpoints' states)
  Flower     {system.flower_url}   user {FLOWER_USER}, password {system.flower_password}
             (set IMGFLOW_FLOWER_PASSWORD to choose it)
{metrics}
  logs       {system.logs_dir}/  (api, workers, webhook-sender, flower, postgres, valkey, seaweedfs)
  data       {system.data_dir}  (kept between runs; delete it to start afresh)
  PostgreSQL {stack.database_url}
  Valkey     {stack.broker_url}
  S3         http://{stack.s3_endpoint}  bucket {stack.bucket}

Ctrl-C to stop.""",
            flush=True,
        )

    return _serve(system, describe)


def cmd_stack(args: argparse.Namespace) -> int:
    stack = LocalStack(args.data_dir, StackPorts.local_defaults())

    def describe(seconds: float) -> None:
        print(f"\n# servers up in {seconds:.1f} s; logs in {stack.logs_dir}/")
        print(export_lines(stack.env()))
        print("# Ctrl-C to stop.", flush=True)

    return _serve(stack, describe)


def cmd_env(args: argparse.Namespace) -> int:
    print(export_lines(LocalStack(default_data_dir(), StackPorts.local_defaults()).env()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgflow-localstack",
        description="Run imgflow's real servers (PostgreSQL, Valkey, SeaweedFS S3) and its "
        "processes on this machine.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def add_data_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="where all data and logs live (default: .data/local at the repository root)",
        )

    run = commands.add_parser("run", help="the servers, the API and the workers, until Ctrl-C")
    add_data_dir(run)
    run.add_argument("--api-port", type=int, default=LOCAL_API_PORT)
    run.add_argument("--thumbnailer-concurrency", type=int, default=RUN_CONCURRENCY[THUMBNAILER])
    run.set_defaults(handler=cmd_run)

    stack = commands.add_parser("stack", help="only the servers, until Ctrl-C")
    add_data_dir(stack)
    stack.set_defaults(handler=cmd_stack)

    env = commands.add_parser("env", help="print the IMGFLOW_* variables of the local stack")
    env.set_defaults(handler=cmd_env)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_dir", None) is None:
        args.data_dir = default_data_dir()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        code = args.handler(args)
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
