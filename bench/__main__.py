"""`make bench`: run every suite (or --only some) and write results under .bench/.

A suite is a module ``bench/<name>.py`` with ``run(quick: bool) -> Suite``, listed in
SUITES. ``--quick`` runs each with small sizes, as the smoke test does.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from bench.results import Suite, to_markdown, write

# Module names under bench/, in the order they run.
SUITES = ["sha256"]

RESULTS = Path(__file__).resolve().parent.parent / ".bench" / "results"


def run(names: list[str], quick: bool) -> list[Suite]:
    suites = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        suite: Suite = module.run(quick=quick)
        suite.notes.append(f"suite ran in {time.perf_counter() - started:.1f} s")
        suites.append(suite)
    return suites


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", help=f"comma-separated suites among {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else SUITES
    unknown = set(names) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    suites = run(names, args.quick)
    folder = write(suites, args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S"))
    print(to_markdown(suites))
    print(f"results written to {folder}")


if __name__ == "__main__":
    main()
