"""`imgflow upload` against a bare loop of httpx posts: is a folder upload limited by the
server, not by the client? (Issue 13: goal >= 0.9x the bare loop's rate.)

The stack and the API run as `make run` runs them, without workers (their CPU would
muddle both figures). Each round uploads a folder of distinct ~100 KB JPEGs twice: once
by the bare loop (16 asyncio tasks, each reading a file and POSTing it), once by
`imgflow upload --concurrency 16 --json` in a process of its own (fresh state file, so
every file is hashed and sent), and once by bench/bare_client.py, the same keyed loop as a
script in a process of its own: the fair whole-process baseline, since it too starts an
interpreter and imports httpx. Rounds alternate which goes first. The command's own CPU
time (user + system, from the kernel's accounting of the finished child) is reported per
upload, with its fixed cost (interpreter, imports, state file, client; no request) measured
apart on `imgflow upload` of an empty folder.

The command runs with a bytecode cache, as an installed package does (pip compiles it at
install; Python writes it on first import): the cache lives under the run's folder
(PYTHONPYCACHEPREFIX), warmed by one run first, because a development environment may
set PYTHONDONTWRITEBYTECODE (this machine's does), and then every start would compile
every module again, ~0.15 CPU-s that no user pays. The start-up without a cache is
reported beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.api import SMALL_BYTES, sized_jpeg, unique
from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from imgflow_localstack.services import API, service_specs
from imgflow_localstack.system import LocalSystem

CONCURRENCY = 16
QUEUE_LIMIT_VARIABLE = "IMGFLOW_QUEUE_BREAKING_DEPTH"
BARE_SCRIPT = Path(__file__).with_name("bare_client.py")


@dataclass(frozen=True)
class Phase:
    who: str  # "bare httpx", "bare httpx + key", "bare script + key" or "imgflow upload"
    images: int
    ok: int
    wall_s: float
    cpu_s: float
    inner_s: float | None = None  # the command's own run time (its summary), no start-up

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s


@dataclass(frozen=True)
class Startup:
    """CPU seconds of `imgflow upload EMPTY_FOLDER --json` (best of three): with the
    bytecode cache, and without one (every module compiled); the load average when the
    phases ended."""

    cached_s: float
    uncached_s: float
    load_1min: float


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    images = 40 if quick else 1000
    rounds = 1 if quick else 3
    concurrency = 4 if quick else CONCURRENCY
    phases, startup = measure(images, rounds, concurrency, quick)
    return to_suite(phases, startup, images, concurrency)


def measure(images: int, rounds: int, concurrency: int, quick: bool) -> tuple[list[Phase], Startup]:
    work = Path(tempfile.mkdtemp(prefix="imgflow-bench-client-"))
    try:
        system = LocalSystem.on_free_ports(work / "system")
        # No workers drain the queues: the API's 503 limit (10,000 jobs) raised above the
        # run's 12,000 uploads, so every phase sees the same answers.
        system.specs = [
            dataclasses.replace(s, extra_env={**s.extra_env, QUEUE_LIMIT_VARIABLE: "1000000"})
            for s in service_specs(system.api_port)
            if s.name == API
        ]
        base = sized_jpeg(SMALL_BYTES, quick)
        with system:
            warm = _folder(work / "warm", base, 99, 8)
            asyncio.run(_bare(system, warm, 4))
            # Writes the bytecode cache (an upload imports all the command needs).
            _cli_cpu(system, ["upload", str(warm), "--json"], work / "state-warm", work / "pycache")
            phases = []
            for number in range(rounds):
                bare = _folder(work / f"bare-{number}", base, 3 * number, images)
                keyed = _folder(work / f"keyed-{number}", base, 3 * number + 1, images)
                ours = _folder(work / f"cli-{number}", base, 3 * number + 2, images)
                script = _folder(work / f"script-{number}", base, 50 + number, images)
                order = ["bare", "keyed", "script", "cli"]
                if number % 2:
                    order.reverse()
                for who in order:
                    if who == "bare":
                        phases.append(_bare_phase(system, bare, concurrency, keyed=False))
                    elif who == "keyed":
                        phases.append(_bare_phase(system, keyed, concurrency, keyed=True))
                    elif who == "script":
                        phases.append(_script_phase(system, script, concurrency, work / "pycache"))
                    else:
                        state = work / f"state-{number}"
                        phases.append(
                            _cli_phase(system, ours, concurrency, state, work / "pycache")
                        )
            load = os.getloadavg()[0]
            empty = work / "empty"
            empty.mkdir()
            nothing = ["upload", str(empty), "--json"]
            cached = min(
                _cli_cpu(system, nothing, work / f"state-empty-{i}", work / "pycache")[1]
                for i in range(3)
            )
            uncached = min(
                _cli_cpu(system, nothing, work / f"state-cold-{i}", work / f"none-{i}", False)[1]
                for i in range(3)
            )
        return phases, Startup(cached, uncached, load)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _folder(folder: Path, base: bytes, phase: int, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i:05d}.jpg").write_bytes(unique(base, 100 + phase, i))
    return folder


async def _bare(system: LocalSystem, folder: Path, concurrency: int, keyed: bool = False) -> int:
    """The baseline: read each file, POST it; ``concurrency`` tasks on one client.
    ``keyed``: with the Idempotency-Key the command sends (the server does more for it)."""
    files = iter(sorted(folder.iterdir()))  # noqa: ASYNC240 (before the clock starts)
    ok = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=system.api_url, headers=system.auth_headers, limits=limits, timeout=120
    ) as client:

        async def one_task() -> None:
            nonlocal ok
            for path in files:
                body = path.read_bytes()
                headers = (
                    {"Idempotency-Key": "sha256-" + hashlib.sha256(body).hexdigest()}
                    if keyed
                    else {}
                )
                response = await client.post("/v1/images", content=body, headers=headers)
                ok += response.status_code == 201

        await asyncio.gather(*(one_task() for _ in range(concurrency)))
    return ok


def _bare_phase(system: LocalSystem, folder: Path, concurrency: int, keyed: bool) -> Phase:
    cpu, started = time.process_time(), time.perf_counter()
    ok = asyncio.run(_bare(system, folder, concurrency, keyed))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    who = "bare httpx + key" if keyed else "bare httpx"
    return Phase(who, len(list(folder.iterdir())), ok, wall, cpu)


def _cli_phase(
    system: LocalSystem, folder: Path, concurrency: int, state: Path, pycache: Path
) -> Phase:
    args = ["upload", str(folder), "--concurrency", str(concurrency), "--json"]
    started = time.perf_counter()
    done, cpu = _cli_cpu(system, args, state, pycache)
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(f"imgflow upload failed: {done.stderr[-2000:]}")
    images = len(list(folder.iterdir()))
    return Phase("imgflow upload", images, summary["uploaded"], wall, cpu, summary["seconds"])


def _script_phase(system: LocalSystem, folder: Path, concurrency: int, pycache: Path) -> Phase:
    argv = [str(BARE_SCRIPT), system.api_url, str(folder), str(concurrency)]
    started = time.perf_counter()
    done, cpu = _cli_cpu(system, argv, folder.with_name("state-script"), pycache, command=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"bare script failed: {done.stderr[-2000:]}")
    images = len(list(folder.iterdir()))
    return Phase("bare script + key", images, int(done.stdout.strip()), wall, cpu)


def _cli_cpu(
    system: LocalSystem,
    args: list[str],
    state: Path,
    pycache: Path,
    write_pycache: bool = True,
    command: bool = True,
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the command (or, not ``command``, a script: ``args`` start with its path); its
    CPU seconds (user + system) from the finished child's rusage. Bytecode is read from
    ``pycache`` only, and written there when ``write_pycache``."""
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("IMGFLOW_") and k != "PYTHONDONTWRITEBYTECODE"
        },
        "PYTHONPYCACHEPREFIX": str(pycache),
        **({} if write_pycache else {"PYTHONDONTWRITEBYTECODE": "1"}),
        "IMGFLOW_URL": system.api_url,
        "IMGFLOW_API_KEY": system.api_key,
        "IMGFLOW_STATE_DIR": str(state),
        "IMGFLOW_CONFIG": str(state / "config.toml"),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, *(["-m", "imgflow_client.cli"] if command else []), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done, cpu


def _row(p: Phase) -> list[str | float | int]:
    per_upload = round(p.cpu_s / max(1, p.ok) * 1000, 2)
    return [p.who, p.ok, round(p.wall_s, 2), round(p.rate, 1), round(p.cpu_s, 2), per_upload]


def to_suite(phases: list[Phase], startup: Startup, images: int, concurrency: int) -> Suite:
    bare = [p for p in phases if p.who == "bare httpx"]
    keyed = [p for p in phases if p.who == "bare httpx + key"]
    script = [p for p in phases if p.who == "bare script + key"]
    ours = [p for p in phases if p.who == "imgflow upload"]

    def rate(ps: list[Phase]) -> float:
        return sum(p.ok for p in ps) / sum(p.wall_s for p in ps)

    def cpu_ms_per_upload(ps: list[Phase]) -> float:
        return sum(p.cpu_s for p in ps) / sum(p.ok for p in ps) * 1000

    inner_rate = sum(p.ok for p in ours) / sum(p.inner_s or p.wall_s for p in ours)
    what = f"{images} uploads of ~100 KB, {concurrency} at once"
    cpu_per = [p.cpu_s / p.ok * 1000 for p in ours]
    measurements = [
        Measurement(f"bare httpx loop: {what}", rate(bare), "uploads/s", lower_is_better=False),
        Measurement(
            f"imgflow upload (whole process): {what}",
            rate(ours),
            "uploads/s",
            baseline=f"bare httpx loop: {what}",
            lower_is_better=False,
        ),
        Measurement(
            f"bare httpx loop with Idempotency-Key: {what}",
            rate(keyed),
            "uploads/s",
            baseline=f"bare httpx loop: {what}",
            lower_is_better=False,
        ),
        Measurement(
            f"imgflow upload vs the keyed loop (same server work): {what}",
            rate(ours),
            "uploads/s",
            baseline=f"bare httpx loop with Idempotency-Key: {what}",
            lower_is_better=False,
        ),
        Measurement(
            f"imgflow upload (its run, without start-up): {what}",
            inner_rate,
            "uploads/s",
            baseline=f"bare httpx loop: {what}",
            lower_is_better=False,
        ),
        Measurement(
            "bare httpx loop: client CPU per upload",
            cpu_ms_per_upload(bare),
            "CPU ms",
        ),
        Measurement(
            "imgflow upload: client CPU per upload (with start-up)",
            sum(cpu_per) / len(cpu_per),
            "CPU ms",
            baseline="bare httpx loop: client CPU per upload",
        ),
        Measurement(
            "imgflow upload: client CPU per upload (start-up taken out)",
            sum((p.cpu_s - startup.cached_s) / p.ok * 1000 for p in ours) / len(ours),
            "CPU ms",
            baseline="bare httpx loop: client CPU per upload",
        ),
        Measurement(
            "imgflow start-up (upload of an empty folder)", startup.cached_s * 1000, "CPU ms"
        ),
        Measurement(
            "imgflow start-up without a bytecode cache (every module compiled)",
            startup.uncached_s * 1000,
            "CPU ms",
        ),
        Measurement(
            f"bare httpx script with Idempotency-Key, own process: {what}",
            rate(script),
            "uploads/s",
            baseline=f"bare httpx loop: {what}",
            lower_is_better=False,
        ),
        Measurement(
            f"imgflow upload vs the keyed script (both whole processes): {what}",
            rate(ours),
            "uploads/s",
            baseline=f"bare httpx script with Idempotency-Key, own process: {what}",
            lower_is_better=False,
        ),
        Measurement(
            "bare httpx script with Idempotency-Key: CPU per upload (with start-up)",
            cpu_ms_per_upload(script),
            "CPU ms",
            baseline="bare httpx loop: client CPU per upload",
        ),
    ]
    table = Table(
        "each phase, in the order run",
        ["who", "uploads 201", "wall s", "uploads/s", "client CPU s", "CPU ms/upload"],
        [_row(p) for p in phases],
    )
    notes = [
        "The server (one API process, no workers) and both clients share the machine's cores:"
        " client CPU is CPU the server does not get, so a lean client shows in the rate too.",
        "Goal (issue 13): imgflow upload >= 0.9x the bare loop's rate. The bare loop runs in"
        " this (warm) process; the keyed script, like the command, in a fresh one.",
        "The command reads its bytecode from a cache, as an installed package does; start-up"
        " figures are the best of three runs.",
        f"Load average (1 min) when the phases ended: {startup.load_1min:.2f}.",
    ]
    return Suite("client: imgflow upload vs bare httpx", measurements, notes, [table])
