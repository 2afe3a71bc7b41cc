"""Harness-side GIL probe: which thread of the worker was on a CPU, millisecond by millisecond.

Reads each worker thread's on-CPU time in nanoseconds (/proc/<pid>/task/<tid>/schedstat, Linux)
at about 1 kHz. For pure-Python CPU work a thread that is not holding the GIL is asleep on the
GIL's condition variable, so the thread on the CPU is the GIL holder: the timeline shows the GIL
passing between threads. Needs no ptrace (py-spy's GIL sampling does, and has no timestamps).
"""
from __future__ import annotations

import os
import time

import pandas as pd
import psutil

from harness.lab.periodic import PeriodicSampler

COLUMNS = ["t", "pid", "tid", "oncpu_ns"]
HZ = 1000.0


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


class OnCpuSampler(PeriodicSampler):
    """Samples the on-CPU time of every thread of a process tree at about HZ, in a background thread."""

    thread_name = "lab-gil-oncpu"

    def __init__(self, root_pid: int, hz: float = HZ) -> None:
        super().__init__(root_pid, hz)
        self.dropped = 0
        self._files_list: list[tuple[int, int, str]] = []
        self._listed = -1.0

    def _files(self) -> list[tuple[int, int, str]]:
        # Listing child processes scans all of /proc: twice a second. Listing a process's
        # threads reads one directory: every call.
        now = time.monotonic()
        if now - getattr(self, "_pids_at", -1.0) > 0.5:
            try:
                root = psutil.Process(self.root_pid)
                self._pids = [root.pid] + [p.pid for p in root.children(recursive=True)]
            except psutil.Error:
                self._pids = []
            self._pids_at = now
        out = []
        for pid in self._pids:
            try:
                out += [(pid, int(tid), f"/proc/{pid}/task/{tid}/schedstat") for tid in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                pass
        return out

    def sample(self) -> None:
        now = time.monotonic()
        if now - self._listed > 0.05:  # threads come and go (a pool's threads start lazily)
            self._files_list, self._listed = self._files(), now
        t = time.time()
        sweep = []
        for pid, tid, path in self._files_list:
            try:
                with open(path, "rb") as f:
                    sweep.append((t, pid, tid, int(f.read().split(None, 1)[0])))
            except (OSError, ValueError):
                # A thread that ended, or (seen in a sandboxed kernel) a read of a live thread's
                # file that fails now and then. A sweep with a hole would make that thread
                # look idle, so the whole sweep is dropped and counted.
                self.dropped += 1
                self._listed = -1.0
                return
        self.rows.extend(sweep)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def own_cost(self) -> dict[str, float]:
        sweeps = len({r[0] for r in self.rows})
        return {"oncpu_sampler_cpu_s": self.cpu_s,
                "oncpu_sampler_core_fraction": self.cpu_s / self.elapsed_s if self.elapsed_s else 0.0,
                "oncpu_rate_hz": sweeps / self.elapsed_s if self.elapsed_s else 0.0,
                "oncpu_sweeps_dropped": self.dropped}
