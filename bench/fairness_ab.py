"""An A/B of API settings on the fairness scenario: one system, started as `make run`
starts it, the fair relay measured once per configuration in the order given.

    python -m bench.fairness_ab IMGFLOW_TENANT_LIGHT_WORK_SHARE=0 \\
        IMGFLOW_TENANT_LIGHT_WORK_SHARE=1 IMGFLOW_TENANT_LIGHT_WORK_SHARE=0 ...

Each configuration is a comma-separated list of VARIABLE=value set in the API's
environment before its restart (the bench's `_measure` restarts it). Why not `make bench`
twice: the stretch of one configuration moves between runs as much as a setting moves it,
and two systems differ more than two runs on one. Alternate the configurations (A B A B):
a system grows with every run (each has its own tenants and libraries) and its later runs
take longer whatever the setting, so compare the stretch (each run divides by its own
trickle alone), and "all done" only between neighbours.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench import fairness
from bench.images import ensure_images
from imgflow_localstack.cli import run_tuning
from imgflow_localstack.system import LocalSystem


def _config(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if not pairs or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected VARIABLE=value[,VARIABLE=value]: {text!r}")
    return dict(pairs)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", type=_config, metavar="VAR=value[,VAR=value]")
    parser.add_argument("--flood", type=int, default=fairness.FLOOD)
    parser.add_argument("--trickles", type=int, default=fairness.LOADED_RUNS)
    args = parser.parse_args(argv)
    library, own = fairness.LIBRARY, fairness.TRICKLE_LIBRARY
    runs = fairness.WARM_UP + fairness.ALONE_RUNS + fairness.BULK_RUNS + args.trickles
    per_run = args.flood + library + own + runs * fairness.TRICKLE
    paths = ensure_images(per_run * len(args.configs), fairness.SPEC)
    data_dir = Path(tempfile.mkdtemp(prefix="imgflow-fairness-ab-"))
    rows = []
    try:
        with LocalSystem.on_free_ports(data_dir, **run_tuning()) as system:
            api = system.service("api")
            assert api.child.env is not None
            for i, config in enumerate(args.configs):
                api.child.env.update(config)
                mine = paths[i * per_run : (i + 1) * per_run]
                result = fairness._measure(system, "fair", mine, args.flood, library, own)
                rows.append((config, result))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(
        "| configuration | trickle alone | during flood + reprocess | samples | stretch "
        "| during the reprocess alone | all done |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for config, r in rows:
        name = ", ".join(f"{k}={v}" for k, v in config.items())
        print(
            f"| {name} | {r.alone_s:.2f} s | {r.loaded_s:.2f} s | {r.loaded_samples} "
            f"| {r.stretch:.2f}x | {r.bulk_stretch:.2f}x | {r.all_done_s:.1f} s |"
        )


if __name__ == "__main__":
    main()
