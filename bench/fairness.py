"""Fairness (issue 30): a flood from one tenant, a trickle from another and a bulk
reprocess of a third tenant's library, all at once, on today's FIFO relay and on the fair
relay, in the same run and on the same system.

For each relay: the trickle's few uploads alone on the idle system (time from the first
upload to the last one ready), then again in the middle of the flood while the library's
reprocess runs; and the time until all of that work is done, which gives the throughput.
The fair relay's targets: the trickle within 2x of its time alone (the FIFO relay: about
21x in the issue), and the throughput within 5 % of the FIFO relay's.

The API is restarted between the two with IMGFLOW_OUTBOX_SCHEDULING switched; each relay
gets its own tenants, so neither sees the other's images.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.images import ImageSpec, ensure_images
from bench.options import BenchOptions
from bench.results import Measurement, Suite, Table
from imgflow_client.retry import RetryPolicy, parse_retry_after
from imgflow_localstack.cli import RunTuning, run_tuning
from imgflow_localstack.system import LocalSystem
from imgflow_upload_api.settings import ApiSettings

# About 2 MP: large enough that the thumbnailer's decode dominates a job, as with real
# photos, small enough for two busy cores to get through a flood in a minute or two.
SPEC = ImageSpec(1600, 1200, 150_000, 1_500_000, seed=30)
# 300: enough for the flood's uploads to last through several trickles (with 120 they
# ended within about two, and one sample moved the ratio by half: scheduling.md, "Ninth
# round").
FLOOD, QUICK_FLOOD = 300, 24
LIBRARY, QUICK_LIBRARY = 60, 12
# The trickle's tenant has a library of its own before any trickle is timed, so that its
# uploads check as many look-alikes alone as during the flood: the deduper checks up to
# `dedupe_candidates` (20) nearest plus as many other groups' nearest, and the bench's
# images all look alike to the model. Without it the trickles alone met 0-8 earlier
# images and those during the flood 18-26: more work, not more waiting.
TRICKLE_LIBRARY, QUICK_TRICKLE_LIBRARY = 40, 12
TRICKLE = 3
# The trickle alone is timed this many times (the median counts): on a shared machine a
# single second-long sample is as noisy as the ratio it divides.
ALONE_RUNS = 3
# Before those, one trickle not timed: each express process's first job pays its start
# (the model's first run, OpenCV's, the candidates' features not yet in its memory), and
# the fair relay's stretch would then divide by a slow start. Measured (20261206-175824):
# 1.06 s alone for the fair relay, the express processes' first jobs, against 0.56 s for
# the next relay on the same processes.
WARM_UP = 1
# The trickle during the reprocess alone, as many times, one after another while the run's
# backlog lasts (the median counts): the ratio sits near its 2x target, where one sample
# decides nothing.
BULK_RUNS = 3
# And the trickle during the flood, one after another while the flood's uploads last (the
# median counts): the flood's own pace moves a single sample by half its value.
LOADED_RUNS = 6
FLOOD_CLIENTS = 8
# The third relay run: the fair relay with the flood's tenant held to this many uploads in
# progress (`imgflow-admin limits set --upload-concurrency`), its clients waiting out each
# 429's Retry-After as the imgflow client does. On one machine the flood's uploads compete
# for the same cores as the trickle's jobs; the limit is the operator's lever for that.
FLOOD_UPLOAD_CONCURRENCY = 2
LIMITED = "fair-limited"
# The FIFO relay runs again last: a system grows with every run (each has its own tenants
# and libraries) and its later runs take longer whatever the relay, by 5-20 % (scheduling.md,
# "Ninth round"), as much as the throughput target. The fair relays' throughput is
# compared with the mean of the FIFO runs before and after them.
FIFO_AGAIN = "fifo-again"
MODES = ("fifo", "fair", LIMITED, FIFO_AGAIN)
SCHEDULING = {"fifo": "fifo", "fair": "fair", LIMITED: "fair", FIFO_AGAIN: "fifo"}
# Every 429 is answered again after its Retry-After: an import that must not give up.
HONOUR_RETRY_AFTER = RetryPolicy(attempts=1_000_000)
STAGES = ("thumbnails", "hashing", "dedupe")


@dataclass(frozen=True)
class ModeResult:
    mode: str
    alone_s: float
    loaded_s: float
    # of loaded_s, the time until the API had answered the trickle's uploads
    loaded_accepted_s: float
    loaded_samples: int  # how many trickles loaded_s is the median of
    # the trickle's time to ready while only a bulk reprocess of the library runs (no
    # upload burst): the second case
    bulk_s: float
    bulk_samples: int  # how many trickles bulk_s is the median of
    all_done_s: float
    stages_done: int
    # where the trickle's loaded time went: segment -> seconds (the slowest image's)
    segments: dict[str, float]
    # the same during the bulk reprocess alone
    bulk_segments: dict[str, float]
    # median run of each stage's jobs (seconds), by tenant role: "flood", "trickle"
    # (both during the flood), "trickle alone"
    runs: dict[str, dict[str, float]]

    @property
    def stretch(self) -> float:
        return self.loaded_s / self.alone_s

    @property
    def bulk_stretch(self) -> float:
        return self.bulk_s / self.alone_s

    @property
    def jobs_per_s(self) -> float:
        return self.stages_done / self.all_done_s


def run(quick: bool = False, options: BenchOptions | None = None) -> Suite:
    options = options or BenchOptions()
    flood = QUICK_FLOOD if quick else FLOOD
    library = QUICK_LIBRARY if quick else LIBRARY
    own = QUICK_TRICKLE_LIBRARY if quick else TRICKLE_LIBRARY
    per_mode = flood + library + own + (WARM_UP + ALONE_RUNS + BULK_RUNS + LOADED_RUNS) * TRICKLE
    paths = ensure_images(per_mode * len(MODES), SPEC)
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-bench-fair-"))
    # as `make run` starts a system: the stages' workers niced, three express slots
    tuning = run_tuning()
    results = []
    try:
        with LocalSystem.on_free_ports(
            data_dir, concurrency=options.concurrency, **tuning
        ) as system:
            for i, mode in enumerate(MODES):
                mine = paths[i * per_mode : (i + 1) * per_mode]
                results.append(_measure(system, mode, mine, flood, library, own))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return _suite(results, flood, library, own, options, tuning)


def _measure(
    system: LocalSystem, mode: str, paths: Sequence[Path], flood: int, library: int, own: int
) -> ModeResult:
    api = system.service("api")
    api.stop()
    assert api.child.env is not None
    api.child.env["IMGFLOW_OUTBOX_SCHEDULING"] = SCHEDULING[mode]
    api.start()
    keys = {role: _tenant(system, f"{role}-{mode}") for role in ("library", "flood", "trickle")}
    if mode == LIMITED:
        _admin(
            system,
            *("limits", "set", keys["flood"][0]),
            *("--upload-concurrency", str(FLOOD_UPLOAD_CONCURRENCY)),
        )
    lib_paths = paths[:library]
    own_paths = paths[library : library + own]
    flood_paths = paths[library + own : library + own + flood]
    warm_up_paths = paths[library + own + flood :][: WARM_UP * TRICKLE]
    trickles = paths[library + own + flood + WARM_UP * TRICKLE :]
    alone_paths = trickles[: ALONE_RUNS * TRICKLE]
    bulk_paths = trickles[ALONE_RUNS * TRICKLE : (ALONE_RUNS + BULK_RUNS) * TRICKLE]
    loaded_paths = trickles[(ALONE_RUNS + BULK_RUNS) * TRICKLE :]
    return asyncio.run(
        _drive(
            system,
            mode,
            keys,
            lib_paths,
            own_paths,
            flood_paths,
            warm_up_paths,
            alone_paths,
            bulk_paths,
            loaded_paths,
        )
    )


async def _drive(
    system: LocalSystem,
    mode: str,
    keys: dict[str, tuple[str, str]],
    lib_paths: Sequence[Path],
    own_paths: Sequence[Path],
    flood_paths: Sequence[Path],
    warm_up_paths: Sequence[Path],
    alone_paths: Sequence[Path],
    bulk_paths: Sequence[Path],
    loaded_paths: Sequence[Path],
) -> ModeResult:
    db = await asyncpg.connect(system.settings().database_url)
    try:
        async with httpx.AsyncClient(base_url=system.api_url, timeout=120) as http:
            library_ids = await _upload_all(http, keys["library"][1], lib_paths, FLOOD_CLIENTS)
            own_ids = await _upload_all(http, keys["trickle"][1], own_paths, FLOOD_CLIENTS)
            await _wait_settled(db, [*library_ids, *own_ids])
            for i in range(0, len(warm_up_paths), TRICKLE):
                await _trickle(http, db, keys["trickle"][1], warm_up_paths[i : i + TRICKLE])
            alone_runs = [
                (await _trickle(http, db, keys["trickle"][1], alone_paths[i : i + TRICKLE]))[0]
                for i in range(0, len(alone_paths), TRICKLE)
            ]
            alone_s = statistics.median(alone_runs)
            alone_ids = await _ids_of(db, alone_paths, keys["trickle"][0])

            # A bulk reprocess of the library and nothing else (no upload burst): the
            # trickle comes once the run's backlog is there.
            bulk_run = await asyncio.to_thread(_reprocess, system, keys["library"][0])
            bulk_samples = []
            for i in range(0, len(bulk_paths), TRICKLE):
                # The first once a third of the run's stages wait; the next ones while a
                # sixth still do, far more than the workers can hold: all stay busy.
                least = len(library_ids) if i == 0 else len(library_ids) // 2
                # (The first is taken even so: on a machine fast enough to end the run
                # first there is nothing else to measure.)
                if not await _wait_backlog(db, library_ids, bulk_run, least) and i > 0:
                    break  # the run is over: this one would not be "during" it
                sample = await _trickle(http, db, keys["trickle"][1], bulk_paths[i : i + TRICKLE])
                bulk_samples.append(sample)
            bulk_s, _, bulk_segments = _median_sample(bulk_samples)
            await _wait_run(db, bulk_run)
            await _wait_settled(db, library_ids)

            began = time.monotonic()
            run_id = await asyncio.to_thread(_reprocess, system, keys["library"][0])
            # The trickle comes once the flood's backlog is there: a third of it sent.
            third_in = asyncio.Event()
            flooding = asyncio.create_task(
                _upload_all(
                    http,
                    keys["flood"][1],
                    flood_paths,
                    FLOOD_CLIENTS,
                    (len(flood_paths) // 3, third_in),
                )
            )
            await third_in.wait()
            loaded_samples = []
            for i in range(0, len(loaded_paths), TRICKLE):
                if i > 0 and flooding.done():
                    break  # the flood's uploads are over: this one would not be "during" it
                sample = await _trickle(http, db, keys["trickle"][1], loaded_paths[i : i + TRICKLE])
                loaded_samples.append(sample)
            loaded_s, accepted_s, segments = _median_sample(loaded_samples)
            loaded_paths = loaded_paths[: len(loaded_samples) * TRICKLE]
            flood_ids = await flooding
            await _wait_settled(db, flood_ids)
            await _wait_run(db, run_id)
            await _wait_settled(db, library_ids)
            all_done_s = time.monotonic() - began
            trickle_ids = await _ids_of(db, loaded_paths, keys["trickle"][0])
            runs = {
                "flood": await _median_runs(db, flood_ids),
                "trickle": await _median_runs(db, trickle_ids),
                # Like for like: a stage's run alone against during the flood.
                "trickle alone": await _median_runs(db, alone_ids),
            }
    finally:
        await db.close()
    # Every stage of the flood and the trickle, and every stage the run re-drove.
    stages_done = (len(flood_paths) + len(loaded_paths) + len(lib_paths)) * len(STAGES)
    print(
        f"fairness {mode}: trickle alone {alone_s:.2f} s (median of {ALONE_RUNS}), "
        f"during a bulk reprocess {bulk_s:.2f} s (median of {len(bulk_samples)}), "
        f"during the flood {loaded_s:.2f} s (median of {len(loaded_samples)}); "
        f"all done in {all_done_s:.1f} s",
        flush=True,
    )
    print(
        f"fairness {mode}: the slowest loaded trickle image: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in segments.items()),
        flush=True,
    )
    print(
        f"fairness {mode}: the slowest trickle image during the reprocess alone: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in bulk_segments.items()),
        flush=True,
    )
    print(
        f"fairness {mode}: median run per job: "
        + "; ".join(
            f"{role} " + ", ".join(f"{k} {v:.2f} s" for k, v in per.items())
            for role, per in runs.items()
        ),
        flush=True,
    )
    return ModeResult(
        mode,
        alone_s,
        loaded_s,
        accepted_s,
        len(loaded_samples),
        bulk_s,
        len(bulk_samples),
        all_done_s,
        stages_done,
        segments,
        bulk_segments,
        runs,
    )


Sample = tuple[float, float, dict[str, float]]


def _median_sample(samples: list[Sample]) -> Sample:
    """The median trickle by time to ready (of an even count the slower middle one), with
    its other figures."""
    ordered = sorted(samples, key=lambda sample: sample[0])
    return ordered[len(ordered) // 2]


def _tenant(system: LocalSystem, role: str) -> tuple[str, str]:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    done = _admin(system, "tenants", "create", name)
    return name, json.loads(done)["api_key"]


def _reprocess(system: LocalSystem, tenant: str) -> str:
    stages = [arg for stage in STAGES for arg in ("--stage", stage)]
    out = _admin(system, "reprocess", "--tenant", tenant, *stages, "--no-wait")
    return json.loads(out.splitlines()[0])["id"]


def _admin(system: LocalSystem, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "imgflow_runtime.admin_cli", *args],
        env={**system.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def _upload_all(
    http: httpx.AsyncClient,
    key: str,
    paths: Sequence[Path],
    clients: int,
    signal: tuple[int, asyncio.Event] | None = None,
) -> list[str]:
    """Upload ``paths`` from ``clients`` concurrent clients; ``signal``: set the event
    once that many are in."""
    ids: list[str] = []
    todo = iter(paths)

    async def client() -> None:
        for path in todo:
            response = await _post_image(http, key, path.read_bytes())
            response.raise_for_status()
            ids.append(response.json()["id"])
            if signal is not None and len(ids) >= signal[0]:
                signal[1].set()

    await asyncio.gather(*(client() for _ in range(clients)))
    return ids


async def _post_image(http: httpx.AsyncClient, key: str, body: bytes) -> httpx.Response:
    """POST an image, sent again after each 429's Retry-After (plus the client's jitter)."""
    refused = 0
    while True:
        response = await http.post(
            "/v1/images", content=body, headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code != 429:
            return response
        refused += 1
        wait = parse_retry_after(response.headers.get("retry-after"))
        await asyncio.sleep(HONOUR_RETRY_AFTER.delay_s(refused, wait) or 1.0)


async def _trickle(
    http: httpx.AsyncClient, db: asyncpg.Connection, key: str, paths: Sequence[Path]
) -> Sample:
    """Seconds from the first of ``paths`` sent to the last one ready, and to the last
    one answered by the API; and where the slowest one's time went."""
    started = time.time()
    ids = await _upload_all(http, key, paths, clients=len(paths))
    accepted = time.time()
    finished = await _wait_settled(db, ids)
    return finished - started, accepted - started, await _segments(db, ids, started)


# Per trickle image, where its time went: the API taking the upload, then for each stage
# the wait in the outbox (until the relay or the worker handed it to the broker: that
# resets queued_at), in the broker's queue (until a worker started it) and the run.
_SEGMENTS = """
SELECT i.id,
       extract(epoch FROM i.created_at)::float8 AS created,
       s.stage,
       extract(epoch FROM s.queued_at)::float8 AS queued,
       extract(epoch FROM s.started_at)::float8 AS started,
       extract(epoch FROM s.finished_at)::float8 AS finished
  FROM images AS i JOIN image_stages AS s ON s.image_id = i.id
 WHERE i.id = ANY($1::uuid[])
"""


async def _segments(db: asyncpg.Connection, ids: Sequence[str], sent_at: float) -> dict[str, float]:
    """The slowest of ``ids``' time split into segments (seconds)."""
    rows = await db.fetch(_SEGMENTS, list(ids))
    per_image: dict[object, dict[str, asyncpg.Record]] = {}
    for r in rows:
        per_image.setdefault(r["id"], {})[r["stage"]] = r
    worst: dict[str, float] = {}
    worst_total = -1.0
    for stages in per_image.values():
        thumbs = stages["thumbnails"]
        parts = {"upload (API)": thumbs["created"] - sent_at}
        for stage in STAGES:
            s = stages[stage]
            ready = thumbs["created"] if stage == "thumbnails" else thumbs["finished"]
            parts[f"{stage}: outbox"] = max(0.0, s["queued"] - ready)
            parts[f"{stage}: broker queue"] = s["started"] - s["queued"]
            parts[f"{stage}: run"] = s["finished"] - s["started"]
        total = max(s["finished"] for s in stages.values()) - sent_at
        if total > worst_total:
            worst_total, worst = total, parts
    return worst


async def _ids_of(db: asyncpg.Connection, paths: Sequence[Path], tenant: str) -> list[str]:
    """A trickle just sent: its tenant's newest ``len(paths)`` images."""
    rows = await db.fetch(
        """SELECT i.id::text FROM images AS i JOIN tenants AS t ON t.id = i.tenant_id
            WHERE t.name = $1 ORDER BY i.created_at DESC LIMIT $2""",
        tenant,
        len(paths),
    )
    return [r["id"] for r in rows]


async def _median_runs(db: asyncpg.Connection, ids: Sequence[str]) -> dict[str, float]:
    """Median run (started to finished) of each stage's jobs of ``ids``, in seconds."""
    rows = await db.fetch(
        """SELECT stage, percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM finished_at - started_at)) AS run
             FROM image_stages WHERE image_id = ANY($1::uuid[]) GROUP BY stage""",
        list(ids),
    )
    runs = {r["stage"]: float(r["run"]) for r in rows}
    return {stage: runs[stage] for stage in STAGES if stage in runs}


_SETTLED = """
SELECT count(*) FILTER (WHERE status NOT IN ('done', 'failed')) AS open,
       extract(epoch FROM max(finished_at))::float8 AS finished
  FROM image_stages WHERE image_id = ANY($1::uuid[])
"""


async def _wait_settled(db: asyncpg.Connection, ids: Sequence[str]) -> float:
    """PostgreSQL's time at which the last stage of ``ids`` finished, once all have."""
    while True:
        row = await db.fetchrow(_SETTLED, list(ids))
        if row is not None and row["open"] == 0:
            return float(row["finished"])
        await asyncio.sleep(0.02)


async def _wait_backlog(
    db: asyncpg.Connection, ids: Sequence[str], run_id: str, least: int
) -> bool:
    """True once ``least`` of the run's stages on ``ids`` are open; False once the run
    has ended first (a run only drains: fewer open now means waiting for its end)."""
    while True:
        row = await db.fetchrow(_SETTLED, list(ids))
        if row is not None and row["open"] >= least:
            return True
        state = await db.fetchval("SELECT state FROM reprocess_runs WHERE id = $1::uuid", run_id)
        if state in ("finished", "failed"):
            return False
        await asyncio.sleep(0.02)


async def _wait_run(db: asyncpg.Connection, run_id: str) -> None:
    while True:
        state = await db.fetchval("SELECT state FROM reprocess_runs WHERE id = $1::uuid", run_id)
        if state in ("finished", "failed"):
            return
        await asyncio.sleep(0.1)


def _setting(name: str, given: Mapping[str, str]) -> str:
    """A setting as the API got it: the system's value, the environment's, else the
    default."""
    variable = f"IMGFLOW_{name.upper()}"
    value = given.get(variable, os.environ.get(variable))
    return value if value is not None else f"{ApiSettings.model_fields[name].default} (default)"


def _suite(
    results: list[ModeResult],
    flood: int,
    library: int,
    own: int,
    options: BenchOptions,
    tuning: RunTuning,
) -> Suite:
    given = tuning["extra_env"]
    by_mode = {r.mode: r for r in results}
    fifo, fair = by_mode["fifo"], by_mode["fair"]
    fifo_runs = [r for r in results if SCHEDULING[r.mode] == "fifo"]
    fifo_jobs_per_s = statistics.mean(r.jobs_per_s for r in fifo_runs)
    measurements = []
    for r in results:
        measurements += [
            Measurement(f"{r.mode}: trickle alone", r.alone_s, "s"),
            Measurement(
                f"{r.mode}: trickle during a bulk reprocess",
                r.bulk_s,
                "s",
                baseline=f"{r.mode}: trickle alone",
            ),
            Measurement(
                f"{r.mode}: trickle during flood + reprocess",
                r.loaded_s,
                "s",
                baseline=f"{r.mode}: trickle alone",
            ),
            Measurement(
                f"{r.mode}: all work done", r.all_done_s, "s", baseline="fifo: all work done"
            ),
        ]
    table = Table(
        "Per relay",
        [
            "relay",
            "trickle alone s",
            "during reprocess s",
            "of n",
            "trickle loaded s",
            "of n",
            "of which uploading s",
            "stretch",
            "all done s",
            "jobs/s",
        ],
        [
            [
                r.mode,
                round(r.alone_s, 2),
                round(r.bulk_s, 2),
                r.bulk_samples,
                round(r.loaded_s, 2),
                r.loaded_samples,
                round(r.loaded_accepted_s, 2),
                round(r.stretch, 1),
                round(r.all_done_s, 1),
                round(r.jobs_per_s, 1),
            ]
            for r in results
        ],
    )
    segments = Table(
        "Where the slowest trickle image's time went (s): during flood + reprocess, and "
        "during the reprocess alone",
        ["segment", *(r.mode for r in results), *(f"{r.mode}: reprocess" for r in results)],
        [
            [
                name,
                *(round(r.segments.get(name, 0.0), 2) for r in results),
                *(round(r.bulk_segments.get(name, 0.0), 2) for r in results),
            ]
            for name in fair.segments
        ],
    )
    runs = Table(
        "Median run of a job (s): the flood's and the trickle's during the flood, the "
        "trickle's alone",
        ["stage", *(f"{r.mode}: {role}" for r in results for role in r.runs)],
        [
            [stage, *(round(r.runs[role].get(stage, 0.0), 3) for r in results for role in r.runs)]
            for stage in STAGES
        ],
    )
    notes = [
        f"{flood} flood uploads at {FLOOD_CLIENTS} clients, a reprocess of a {library}-image "
        f"library (every stage), {TRICKLE} trickle uploads from a tenant with {own} images "
        f"of its own (alone: the median of {ALONE_RUNS} runs after {WARM_UP} not timed; "
        f"during the reprocess alone: the median of up to {BULK_RUNS}, the first once "
        f"a third of its stages wait; during the flood: the median of up to {LOADED_RUNS}, "
        f"the first once a third of the flood was in, the next while its uploads last); "
        f"{SPEC.width}x{SPEC.height} JPEGs; workers {dict(options.concurrency)}; broker "
        f"target depth {_setting('outbox_broker_target_depth', given)}, express lane up to "
        f"{_setting('outbox_express_max_waiting', given)} jobs waiting, express queues "
        f"{_setting('outbox_express_queue_depth', given)} deep; the stages' workers at nice "
        f"{tuning['worker_nice']}; a backlog held back while light work runs: "
        f"{_setting('tenant_light_work_first', given)}, its uploads meanwhile "
        f"{_setting('tenant_light_work_share', given)} at a time (as `make run` "
        "starts them unless the environment says).",
        f"{LIMITED}: the fair relay with the flood's tenant at "
        f"{FLOOD_UPLOAD_CONCURRENCY} uploads in progress, its clients honouring Retry-After.",
        f"throughput / fifo: jobs per second against the mean of the {len(fifo_runs)} FIFO "
        "runs (" + ", ".join(f"{r.jobs_per_s:.2f}" for r in fifo_runs) + "), the first "
        "before and the other after the fair relays: each run on the system is slower "
        "than the one before.",
    ]
    for r in results:
        if SCHEDULING[r.mode] == "fifo":
            continue
        throughput = r.jobs_per_s / fifo_jobs_per_s
        notes += [
            f"{r.mode}: trickle stretch (loaded / alone) {r.stretch:.1f}x, fifo "
            f"{fifo.stretch:.1f}x (target: within 2x) -> {_verdict(r.stretch <= 2)}",
            f"{r.mode}: trickle during a bulk reprocess only / alone {r.bulk_stretch:.1f}x, "
            f"fifo {fifo.bulk_stretch:.1f}x (target: within 2x) -> "
            f"{_verdict(r.bulk_stretch <= 2)}",
            f"{r.mode}: throughput / fifo {throughput:.3f} (target: within 5 %) -> "
            f"{_verdict(throughput >= 0.95)}",
        ]
    return Suite(
        "Fairness: flood, trickle and bulk reprocess", measurements, notes, [table, segments, runs]
    )


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"
