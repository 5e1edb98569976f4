"""The end-to-end run as a picture: queue depths, completions and CPU use over time."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI or servers

import matplotlib.pyplot as plt

from bench.sampler import Sample

# Process trees drawn on their own in the CPU panel; the rest are summed as "servers".
_OWN_LINES = ("api", "thumbnailer", "hasher", "deduper")


def write_chart(samples: list[Sample], path: Path, title: str) -> Path:
    if len(samples) < 2:
        raise ValueError("a chart needs at least two samples")
    t = [s.t_s for s in samples]
    fig, (depth, done, cpu) = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    fig.suptitle(title)

    for queue in samples[0].queue_depth:
        depth.plot(t, [s.queue_depth[queue] for s in samples], label=f"queue {queue}")
    depth.plot(t, [s.outbox for s in samples], label="outbox", linestyle=":")
    depth.set_ylabel("jobs waiting")
    depth.legend(loc="upper right")
    depth.grid(alpha=0.3)

    done.plot(t, [s.uploaded for s in samples], label="uploads accepted", color="black")
    for stage in samples[0].done:
        done.plot(t, [s.done[stage] + s.failed[stage] for s in samples], label=f"{stage} done")
    done.plot(
        t, [s.settled_images for s in samples], label="images with every stage done", linewidth=2
    )
    done.set_ylabel("images (cumulative)")
    done.legend(loc="lower right")
    done.grid(alpha=0.3)

    # Deltas over a few seconds: per half-second, CPU counters read a moment apart make
    # one process look busier than a core and the next idle.
    step = max(1, len(samples) // 120)
    mids, series = _cores_used([*samples[:-1:step], samples[-1]])
    cpu.stackplot(mids, *series.values(), labels=list(series))
    cpu.set_ylabel("CPU cores in use")
    cpu.set_xlabel("seconds since the first upload started")
    cpu.legend(loc="upper right", fontsize="small")
    cpu.grid(alpha=0.3)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _cores_used(samples: list[Sample]) -> tuple[list[float], dict[str, list[float]]]:
    """Per interval: cores used by each service, the servers, the clients, everyone else."""
    mids: list[float] = []
    series: dict[str, list[float]] = {
        name: [] for name in (*_OWN_LINES, "servers", "bench clients", "other processes")
    }
    for before, after in itertools.pairwise(samples):
        dt = after.t_s - before.t_s
        if dt <= 0:
            continue
        mids.append((before.t_s + after.t_s) / 2)
        used = {name: after.cpu_s[name] - before.cpu_s[name] for name in after.cpu_s}
        ours = sum(used.values())
        bench = after.bench_cpu_s - before.bench_cpu_s
        machine = after.machine_cpu_s - before.machine_cpu_s
        for name in _OWN_LINES:
            series[name].append(used.get(name, 0.0) / dt)
        servers = sum(v for name, v in used.items() if name not in _OWN_LINES)
        series["servers"].append(servers / dt)
        series["bench clients"].append(bench / dt)
        series["other processes"].append(max(0.0, machine - ours - bench) / dt)
    return mids, series
