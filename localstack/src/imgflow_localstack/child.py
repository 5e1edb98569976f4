"""One child process we own: started in its own session, logging to a file, never orphaned.

Every server and imgflow process goes through :class:`Child`, so the rules that keep the
machine clean live in one place:

- ``PR_SET_PDEATHSIG``: the kernel signals the child when the thread that started it dies,
  even if this Python process is SIGKILLed. Start children from a long-lived thread (the
  main thread): the signal fires when the *starting thread* exits, not the process.
- A new session per child, so a Ctrl-C in the terminal reaches only us, and we stop the
  children in order; and so the whole process group (Celery's prefork pool, PostgreSQL's
  backends) can be killed as a last resort.
- ``stop()`` sends the server's own graceful signal, waits, then SIGKILLs the group.
- An ``atexit`` hook stops whatever is still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import datetime
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from imgflow_localstack.errors import ProcessExitedError

_PR_SET_PDEATHSIG = 1

# Resolved once here: between fork and exec (in preexec_fn) we want as little work as possible.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


_AUTOGROUP = b"/proc/self/autogroup"


def _die_with_parent(death_signal: int, parent_pid: int, nice: int = 0):
    """preexec_fn: ask the kernel to signal us when our parent dies; with ``nice``, lower
    our CPU priority by that much.

    subprocess runs preexec_fn after setuid/setgid, which would otherwise clear the setting.
    If the parent already died before prctl ran, the kernel will never signal us: exit now.
    """

    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)
        if nice:
            _lower_priority(nice)

    return preexec


def _lower_priority(nice: int) -> None:
    """The process's nice value, and its session's: each child has a session of its own,
    and where the kernel groups CPU time by session (sched_autogroup, on by default in
    most distributions' kernels) a process's nice value only ranks it within its session,
    so ``nice`` alone changes nothing against the other children. Setting the autogroup's
    nice (allowed upward for its own session) ranks the session as a whole."""
    os.nice(nice)
    try:
        fd = os.open(_AUTOGROUP, os.O_WRONLY)
    except OSError:
        return  # a kernel without autogroups: the process's nice is what counts
    try:
        os.write(fd, str(min(19, nice)).encode())
    except OSError:
        pass  # autogroups switched off at run time: as above
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RunAs:
    """A system user to run a child as (PostgreSQL refuses to run as root)."""

    uid: int
    gid: int


_running: list[Child] = []
_running_lock = threading.Lock()


def _stop_all_at_exit() -> None:
    with _running_lock:
        leftovers = list(reversed(_running))
    for child in leftovers:
        with contextlib.suppress(Exception):
            child.stop()


atexit.register(_stop_all_at_exit)


class Child:
    """A long-running child process whose output goes to ``log_path`` (appended)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: RunAs | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_timeout_s: float = 15.0,
        nice: int = 0,
    ) -> None:
        self.name = name
        self.nice = nice
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.run_as = run_as
        self.stop_signal = stop_signal
        self.stop_timeout_s = stop_timeout_s
        self._popen: subprocess.Popen[bytes] | None = None
        self._stop_requested_at: float | None = None
        # Snapshot taken when stopping: once the leader is gone its children can't be found.
        self._descendants: list[psutil.Process] = []
        # Where this run's output starts in the (appended) log, so readiness checks and
        # error tails never see an earlier run's lines.
        self.log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def wait(self, timeout_s: float) -> int:
        """Wait for the child to exit by itself; its exit code (raises on timeout)."""
        if self._popen is None:
            raise ProcessExitedError(f"{self.name} was never started")
        return self._popen.wait(timeout_s)

    def exited_unexpectedly(self) -> bool:
        """Started, then gone without anyone asking it to stop."""
        return self.returncode is not None and self._stop_requested_at is None

    def start(self) -> None:
        if self.is_running():
            return
        self._stop_requested_at = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            log.write(f"\n===== {self.name} starting at {stamp}: {self.argv}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                # The kernel sends our graceful stop signal if we die without stopping it.
                preexec_fn=_die_with_parent(self.stop_signal, os.getpid(), self.nice),
                user=self.run_as.uid if self.run_as else None,
                group=self.run_as.gid if self.run_as else None,
                extra_groups=[] if self.run_as else None,
            )
        with _running_lock:
            _running.append(self)

    def read_log(self) -> str:
        """This run's output so far."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        tail = self.read_log().splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in tail) or "    (empty)"

    def ensure_running(self) -> None:
        """Raise with the log tail if the child has exited."""
        if self._popen is None:
            raise ProcessExitedError(f"{self.name} was never started")
        code = self._popen.poll()
        if code is not None:
            raise ProcessExitedError(
                f"{self.name} exited with code {code}; last lines of {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def request_stop(self) -> None:
        """Send the graceful stop signal once, without waiting (to stop several at a time)."""
        popen = self._popen
        if popen is None or popen.poll() is not None or self._stop_requested_at is not None:
            return
        self._descendants = _descendants(popen.pid)
        self._stop_requested_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, self.stop_signal)

    def stop(self, timeout_s: float | None = None) -> None:
        """Graceful stop signal, wait, then SIGKILL the whole process group."""
        popen = self._popen
        if popen is None:
            return
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        self.request_stop()
        if popen.poll() is None:
            waited = time.monotonic() - (self._stop_requested_at or time.monotonic())
            try:
                popen.wait(max(0.0, timeout_s - waited))
            except subprocess.TimeoutExpired:
                # The leader is not reaped yet, so its process group id cannot be reused.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        # A leader that died on its own leaves no snapshot; its session still names them.
        leftovers = {p.pid: p for p in [*self._descendants, *_session_members(popen.pid)]}
        _kill_survivors(list(leftovers.values()), grace_s=min(timeout_s, 5.0))
        self._descendants = []
        with _running_lock:
            if self in _running:
                _running.remove(self)

    def __repr__(self) -> str:
        return f"Child({self.name!r}, pid={self.pid}, running={self.is_running()})"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _session_members(session_id: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(process.pid) == session_id:
                members.append(process)
    return members


def _kill_survivors(processes: list[psutil.Process], grace_s: float) -> None:
    """Children of a stopped leader normally exit with it; give them a moment, then kill."""
    alive = [p for p in processes if _alive(p)]
    if not alive:
        return
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
