"""Harness-side GIL probe: which thread of the worker was on a CPU, millisecond by millisecond.

Reads each worker thread's on-CPU time in nanoseconds (/proc/<pid>/task/<tid>/schedstat, Linux)
at about 1 kHz. For pure-Python CPU work a thread that is not holding the GIL is asleep on the
GIL's condition variable, so the thread on the CPU is the GIL holder: the timeline shows the GIL
passing between threads. Needs no ptrace (py-spy's GIL sampling does, and has no timestamps).
"""
from __future__ import annotations

import os
import threading
import time
from itertools import repeat

import pandas as pd
import psutil

from harness.lab.periodic import PeriodicSampler

COLUMNS = ["t", "pid", "tid", "oncpu_ns"]
HZ = 1000.0
# Threads come and go (a pool's threads start lazily): the thread list is read again this often. Listing
# child processes scans all of /proc, so that is done only every PIDS_EVERY_S.
THREADS_EVERY_S = 0.05
PIDS_EVERY_S = 0.5


class ProbeUnavailable(RuntimeError):
    pass


def check_available(pid: int | None = None) -> None:
    path = f"/proc/{pid or os.getpid()}/schedstat"
    try:
        with open(path) as f:
            int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        raise ProbeUnavailable(f"the GIL probe needs per-thread on-CPU times ({path}), which this system "
                               "does not provide") from None


class _SleepingStop(threading.Event):
    """The stop flag of a 1 kHz loop whose wait between sweeps is a plain sleep: a stop is seen within a
    period (1 ms), and a tick costs the thread 28 us instead of the 45 us of Event.wait's condition
    variable (measured here)."""

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return super().wait()
        if not self.is_set():
            time.sleep(timeout)
        return self.is_set()


class OnCpuSampler(PeriodicSampler):
    """Samples the on-CPU time of every thread of a process tree at about HZ, in a background thread.

    Each thread's schedstat file is opened once and re-read with one pread a sweep (as harness.lab.sampler
    reads /proc/<pid>/stat). Opening, reading and closing it with open() every millisecond (18 us a file
    here, against 2 us for a pread) made the probe cost 0.17 to 0.27 of a core for a worker of nine
    threads, as the machine's speed drifted; now 0.06 to 0.14.
    """

    thread_name = "lab-gil-oncpu"

    def __init__(self, root_pid: int, hz: float = HZ) -> None:
        super().__init__(root_pid, hz)
        self._stop = _SleepingStop()  # read by PeriodicSampler's loop
        self.dropped = 0
        self.sweeps = 0
        self._open: dict[tuple[int, int], int] = {}  # (pid, tid) -> a descriptor on its schedstat
        self._pids: list[int] = []
        self._pids_at = -1.0
        self._listed = -1.0
        self._fds: list[int] = []  # each thread's descriptor, and its pid and tid, in parallel lists
        self._fd_pids: list[int] = []
        self._fd_tids: list[int] = []

    def _threads(self, now: float) -> list[tuple[int, int]]:
        if now - self._pids_at > PIDS_EVERY_S:
            try:
                root = psutil.Process(self.root_pid)
                self._pids = [root.pid] + [p.pid for p in root.children(recursive=True)]
            except psutil.Error:
                self._pids = []
            self._pids_at = now
        out = []
        for pid in self._pids:
            try:
                out += [(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                pass
        return out

    def _relist(self, now: float) -> None:
        """Open the schedstat of threads that are new, close those of threads that are gone."""
        kept: dict[tuple[int, int], int] = {}
        for pid, tid in self._threads(now):
            fd = self._open.pop((pid, tid), None)
            if fd is None:
                try:
                    fd = os.open(f"/proc/{pid}/task/{tid}/schedstat", os.O_RDONLY)
                except OSError:
                    continue  # it ended between the listing and now
            kept[(pid, tid)] = fd
        self._close_all()  # those of threads that are gone (the kept ones were taken out)
        self._open = kept
        self._fd_pids = [pid for pid, _tid in kept]
        self._fd_tids = [tid for _pid, tid in kept]
        self._fds = list(kept.values())
        self._listed = now

    def _close_all(self) -> None:
        for fd in self._open.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._open, self._fd_pids, self._fd_tids, self._fds = {}, [], [], []

    def sample(self) -> None:
        now = time.monotonic()
        if now - self._listed > THREADS_EVERY_S:
            self._relist(now)
        t = time.time()
        pread = os.pread
        try:
            values = [int(pread(fd, 64, 0).split(None, 1)[0]) for fd in self._fds]
        except (OSError, ValueError, IndexError):
            # A thread that ended, or (seen in a sandboxed kernel) a read of a live thread's file that
            # fails now and then. A sweep with a hole would make that thread look idle, so the whole
            # sweep is dropped and counted, and every file is opened afresh at the next sweep.
            self.dropped += 1
            self._close_all()
            self._listed = -1.0
            return
        if values:
            self.sweeps += 1
        self.rows.extend(zip(repeat(t), self._fd_pids, self._fd_tids, values))

    def close(self) -> None:
        self._close_all()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def own_cost(self) -> dict[str, float]:
        return {"oncpu_sampler_cpu_s": self.cpu_s,
                "oncpu_sampler_core_fraction": self.cpu_s / self.elapsed_s if self.elapsed_s else 0.0,
                "oncpu_rate_hz": self.sweeps / self.elapsed_s if self.elapsed_s else 0.0,
                "oncpu_sweeps_dropped": self.dropped}
