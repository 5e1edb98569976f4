"""`make bench`: run every suite (or --only some) and write results under .bench/.

A suite is a module ``bench/<name>.py`` with ``run(quick: bool) -> Suite``, listed in
SUITES; a suite whose ``run`` also takes ``options`` gets the command line's BenchOptions
(image count, clients, worker concurrency, and the results folder for its charts).
``--quick`` runs each with small sizes, as the smoke test does.

    python -m bench --only e2e --images 1000 --clients 16 \\
        --concurrency thumbnailer=2,hasher=1,deduper=1
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path

from bench.options import BenchOptions, parse_concurrency
from bench.results import Suite, machine, to_markdown, write

# Module names under bench/, in the order they run: the micro-benchmarks first, while the
# machine is quiet; the end-to-end run, which starts the whole system, last.
SUITES = [
    "sha256",
    "thumbnails",
    "embeddings",
    "dedupe",
    "dedupe_probe",
    "stacks",
    "api",
    "client",
    "queueing",
    "revocation",
    "e2e",
    "fairness",
    "webhooks",
    "webhook_isolation",
    "scale",
]

RESULTS = Path(__file__).resolve().parent.parent / ".bench" / "results"


def run(names: list[str], quick: bool, options: BenchOptions | None = None) -> list[Suite]:
    """Run the named suites; a suite that raises is reported as failed and the rest go on."""
    options = options or BenchOptions()
    suites = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        takes_options = "options" in inspect.signature(module.run).parameters
        started = time.perf_counter()
        try:
            suite: Suite = (
                module.run(quick=quick, options=options) if takes_options else module.run(quick)
            )
        except Exception as exc:
            traceback.print_exc()
            suite = Suite(name, [], notes=[f"failed: {type(exc).__name__}: {exc}"], failed=True)
        suite.notes.append(f"suite ran in {time.perf_counter() - started:.1f} s")
        suites.append(suite)
    return suites


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    defaults = BenchOptions()
    parser.add_argument("--only", help=f"comma-separated suites among {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--images", type=int, default=defaults.images, help="e2e: images to upload")
    parser.add_argument(
        "--clients", type=int, default=defaults.clients, help="e2e: concurrent upload clients"
    )
    parser.add_argument(
        "--concurrency",
        default="",
        help="e2e: pool processes per worker, e.g. thumbnailer=2,hasher=1,deduper=1 "
        f"(default {','.join(f'{k}={v}' for k, v in defaults.concurrency.items())})",
    )
    parser.add_argument(
        "--vectors",
        default=",".join(map(str, defaults.vectors)),
        help="embeddings, scale: stored-vector counts (scale: images in the big tenant), "
        "e.g. 10000,1000000",
    )
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=defaults.ef_construction,
        help="embeddings: HNSW ef_construction of the searched index (migration 0003: 64)",
    )
    parser.add_argument(
        "--webhooks-phase",
        choices=["steady", "discovery", "both"],
        default="steady",
        help="webhooks: its 'with' rounds beside dead endpoints already paused (steady), "
        "fresh ones the sender is still finding dead (discovery), or both",
    )
    args = parser.parse_args()
    names = args.only.split(",") if args.only else SUITES
    unknown = set(names) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    if args.images < 1 or args.clients < 1:
        parser.error("--images and --clients must be at least 1")
    try:
        vectors = tuple(int(v) for v in args.vectors.split(","))
    except ValueError:
        parser.error("--vectors: comma-separated counts, e.g. 10000,1000000")
    if any(v < 1000 for v in vectors):
        parser.error("--vectors: each count must be at least 1000")
    if not 4 <= args.ef_construction <= 1000:
        parser.error("--ef-construction: between 4 and 1000 (pgvector's range)")
    try:
        concurrency = parse_concurrency(args.concurrency)
    except ValueError as exc:
        parser.error(str(exc))
    # Read before anything runs: the load others put on the machine is part of the result.
    info = machine()
    folder = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    phases = ("steady", "discovery") if args.webhooks_phase == "both" else (args.webhooks_phase,)
    options = BenchOptions(
        args.images,
        args.clients,
        concurrency,
        folder,
        vectors,
        args.ef_construction,
        webhooks_phases=phases,
    )
    suites = run(names, args.quick, options)
    write(suites, folder, info)
    print(to_markdown(suites, info))
    print(f"results written to {folder}")
    if any(s.failed for s in suites):
        sys.exit(1)


if __name__ == "__main__":
    main()
