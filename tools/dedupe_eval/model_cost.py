"""CPU and memory of each embedding model, each in a fresh process of its own.

    .venv/bin/python -m tools.dedupe_eval.model_cost [--runs 30]

Per model: the resident memory the session adds once loaded and at its peak while
embedding, and the CPU milliseconds of inference per image (7 inputs: the whole frame,
its mirror and five sub-views; or 1), with one intra-op thread, as a pool process of a
two-core worker runs it. Decoding and resizing are the same for every model and not
counted here (the eval reports them with inference).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tools import sscd_model
from tools.build_model import MODEL_FILE, MODELS_DIR, ensure_model

PROBE = r"""
import json, resource, sys, time
import numpy as np

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

from imgflow_deduper.encoder import Encoder
path, size, inputs, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
before = rss_mb()
encoder = Encoder(path, ["CPUExecutionProvider"], threads=1)
loaded = rss_mb()
rng = np.random.default_rng(0)
if encoder.input.uint8_nhwc:
    batch = rng.integers(0, 256, (inputs, 3, size, size)).astype(np.float32)
else:
    batch = rng.normal(size=(inputs, 3, size, size)).astype(np.float32)
encoder.run(batch)  # first run: allocations, kernel choice
started = time.process_time()
for _ in range(runs):
    encoder.run(batch)
cpu_ms = 1000 * (time.process_time() - started) / runs
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_mb": loaded - before, "peak_mb": peak - before,
                  "cpu_ms_per_image": cpu_ms, "dim": encoder.info.dim}))
"""


def measure(path: Path, size: int, inputs: int, runs: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(size), str(inputs), str(runs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    models = [("efficientnet-lite0", ensure_model(MODELS_DIR / MODEL_FILE), 96)]
    if sscd_model.verified():
        models += [(name, sscd_model.model_path(name), size)
                   for name in ("sscd-distilled", "sscd") for size in (224, 288)]  # fmt: skip
    print("| model | input | file MB | inputs | CPU ms per image | RSS loaded MB | RSS peak MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, path, size in models:
        for inputs in (7, 1):
            m = measure(path, size, inputs, args.runs)
            size_mb = path.stat().st_size / 1e6
            print(
                f"| {name} | {size} | {size_mb:.1f} | {inputs} | {m['cpu_ms_per_image']:.1f} | "
                f"{m['load_mb']:.0f} | {m['peak_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()
