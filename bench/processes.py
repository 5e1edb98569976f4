"""CPU time and resident memory of a process tree (a worker with its pool, PostgreSQL with
its backends), read with psutil.

CPU is counted for the whole tree, including children that already exited: Celery
recycles pool children every ``max_tasks_per_child`` tasks, and a reaped child's time
lives on only in its parent's ``children_user``/``children_system``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass
class TreeSample:
    cpu_s: float
    main_rss: int
    # The largest child, and how many children there are right now.
    child_rss: int
    children: int


@dataclass
class TreeUsage:
    """What one tree used over a run: CPU seconds and the largest RSS seen."""

    cpu_s: float
    peak_main_rss: int
    peak_child_rss: int
    peak_children: int


class ProcessTable:
    """Finds a process's descendants cheaply, keeping one psutil.Process per pid.

    psutil's ``children()`` reads every process on the machine per call (about 20 ms of
    CPU here with others' stacks running); Linux lists each thread's children in
    /proc/PID/task/TID/children, which costs a few reads per tree.
    """

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def descendants(self, pid: int) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        stack = _child_pids(pid)
        while stack:
            child = stack.pop()
            process = self._process(child)
            if process is not None:
                found.append(process)
                stack.extend(_child_pids(child))
        return found

    def _process(self, pid: int) -> psutil.Process | None:
        known = self._known.get(pid)
        # A recycled pid is a different process: psutil compares creation times.
        if known is not None and known.is_running():
            return known
        try:
            self._known[pid] = psutil.Process(pid)
        except psutil.Error:
            return None
        return self._known[pid]


def _child_pids(pid: int) -> list[int]:
    pids: list[int] = []
    try:
        for task in os.scandir(f"/proc/{pid}/task"):
            with open(f"{task.path}/children") as listing:
                pids.extend(int(p) for p in listing.read().split())
    except FileNotFoundError:
        return pids  # the process or one of its threads just exited
    except OSError:
        # No /proc children files (not Linux, or an old kernel): ask psutil.
        try:
            return [c.pid for c in psutil.Process(pid).children()]
        except psutil.Error:
            return []
    return pids


class ProcessTree:
    """A process and its descendants, sampled with :meth:`sample`; remembers the peaks."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.root = psutil.Process(pid)
        self._first: TreeSample | None = None
        self._last: TreeSample | None = None
        self._peak_main = 0
        self._peak_child = 0
        self._peak_children = 0

    def sample(self, table: ProcessTable) -> TreeSample:
        cpu, main_rss = _own(self.root)
        child_rss, children = 0, 0
        for child in table.descendants(self.root.pid):
            child_cpu, rss = _own(child)
            cpu += child_cpu
            child_rss = max(child_rss, rss)
            children += 1
        current = TreeSample(cpu, main_rss, child_rss, children)
        if self._first is None:
            self._first = current
        # A child that exited between the listing and its reading drops out of this sum
        # for one sample; CPU never goes backwards, so keep the largest sum seen.
        if self._last is not None:
            current.cpu_s = max(current.cpu_s, self._last.cpu_s)
        self._last = current
        self._peak_main = max(self._peak_main, main_rss)
        self._peak_child = max(self._peak_child, child_rss)
        self._peak_children = max(self._peak_children, children)
        return current

    def usage(self) -> TreeUsage:
        if self._first is None or self._last is None:
            raise RuntimeError(f"{self.name}: sample() at least once first")
        return TreeUsage(
            cpu_s=self._last.cpu_s - self._first.cpu_s,
            peak_main_rss=self._peak_main,
            peak_child_rss=self._peak_child,
            peak_children=self._peak_children,
        )


def _own(process: psutil.Process) -> tuple[float, int]:
    """CPU seconds of the process and of its reaped children, and its RSS (0 if gone)."""
    try:
        with process.oneshot():
            t = process.cpu_times()
            rss = process.memory_info().rss
    except psutil.Error:
        return 0.0, 0
    return t.user + t.system + t.children_user + t.children_system, rss


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent on anything, since boot."""
    t = psutil.cpu_times()
    # guest time is already inside user time on Linux, so the fields are not simply summed.
    extra = ("nice", "irq", "softirq", "steal")
    return t.user + t.system + sum(getattr(t, name, 0.0) for name in extra)


def own_cpu_s() -> float:
    """CPU seconds of this process (the benchmark's clients), all threads."""
    t = os.times()
    return t.user + t.system
