"""CPU samples of the worker's process tree, taken from the harness process.

Sampling from outside matters: a sampler thread inside the worker would compete for the very GIL
the lab measures. Samples are cumulative counters (CPU seconds, context switches); analysis
turns them into rates. Beside the worker ("process" rows) and the machine's cores ("core" rows),
the lab's own processes are sampled ("lab" rows: the harness and what it started other than the
worker, such as the private broker), so that what is left of the machine's CPU is other processes':
the analysis calls a run disturbed when they were busy (harness.analysis.trust). The servers a run's tasks wait on
(its PostgreSQL, its HTTP service) are sampled apart ("service" rows, their whole process trees): their CPU is the
work the tasks asked of them, which the summary shows, not another process's.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence

import pandas as pd
import psutil

from harness.lab.periodic import PeriodicSampler

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of /proc CPU times
COLUMNS = ["t", "kind", "pid", "tid", "user_s", "system_s", "idle_s", "vol_ctx", "invol_ctx", "rss", "uss", "pss",
           "state", "steal_s"]
TREE_REFRESH_S = 1.0  # listing children reads every /proc entry: once a second (pool processes live all run)
# CPU times (what the parallelism chart needs) are read on every sample. Context switches (a
# parse of /proc/<pid>/status), RSS and per-thread times (one /proc file per thread) are read on
# every DETAIL_EVERY-th sample only (10 Hz at 50 Hz): together they were most of the sampler's cost.
DETAIL_EVERY = 5
# USS (memory no other process shares) and PSS (shared pages split between their sharers) need
# /proc/<pid>/smaps_rollup, ~0.13 ms a process: on every
# USS_EVERY-th sample (2 Hz at 50 Hz), where the OS gives it.
USS_EVERY = 25


class Sampler(PeriodicSampler):
    """Samples the process trees of one or more workers (WORKERS=N) at `hz` in a background thread until stopped."""

    thread_name = "lab-sampler"

    def __init__(self, root_pids: int | list[int], hz: float = 50.0, services: Sequence[int] = ()) -> None:
        self.root_pids = [root_pids] if isinstance(root_pids, int) else list(root_pids)
        # No roots: a run whose workers are on other hosts (their agents sample them); the cores and the lab's own
        # processes are still sampled here.
        super().__init__(self.root_pids[0] if self.root_pids else 0, hz)
        self._procs: dict[int, psutil.Process] = {}
        self._lab: list[int] = []
        self._service_roots = list(services)
        self._services: list[int] = []
        self._fds: dict[int, int] = {}
        self._proc_stat = os.open("/proc/stat", os.O_RDONLY)
        self._refreshed = 0.0
        self._count = -1

    def close(self) -> None:
        for pid in list(self._fds):
            self._close(pid)
        os.close(self._proc_stat)

    def _refresh_tree(self, now: float) -> None:
        if now - self._refreshed < TREE_REFRESH_S and (self._procs or not self.root_pids):
            return
        self._refreshed = now
        tree = []
        for root_pid in self.root_pids:
            try:
                root = self._procs.get(root_pid) or psutil.Process(root_pid)
                tree += [root] + root.children(recursive=True)
            except psutil.Error:
                continue
        if not tree and self.root_pids:
            return
        # Keep the Process objects we have: psutil caches per-process state in them.
        self._procs = {p.pid: self._procs.get(p.pid, p) for p in tree}
        try:
            mine = psutil.Process().children(recursive=True)
        except psutil.Error:
            mine = []
        services: list[int] = []
        for root_pid in self._service_roots:  # a server and its children (PostgreSQL's backends, one per connection)
            try:
                services += [root_pid] + [p.pid for p in psutil.Process(root_pid).children(recursive=True)]
            except psutil.Error:
                continue
        self._services = services
        self._lab = [os.getpid()] + [p.pid for p in mine if p.pid not in self._procs and p.pid not in services]

    def _stat_fd(self, pid: int) -> int | None:
        """An open descriptor on /proc/<pid>/stat, kept for the run: re-read with pread, not reopened."""
        fd = self._fds.get(pid)
        if fd is None:
            try:
                fd = self._fds[pid] = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            except OSError:
                return None
        return fd

    def _process_cpu(self, pid: int) -> tuple[float, float, str] | None:
        """User and system CPU seconds of a process, from /proc/<pid>/stat (fields 14 and 15), and its state
        (field 3: R running, S sleeping, T stopped by a signal, ...): a stopped worker is no GIL's doing."""
        fd = self._stat_fd(pid)
        try:
            data = os.pread(fd, 2048, 0) if fd is not None else b""
        except OSError:
            data = b""
        if not data:  # the process has ended
            self._close(pid)
            return None
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS, fields[0].decode()

    def _close(self, pid: int) -> None:
        self._procs.pop(pid, None)
        fd = self._fds.pop(pid, None)
        if fd is not None:
            os.close(fd)

    def sample(self) -> None:
        # The cheap part at full rate: CPU per process and per core, read with pread on descriptors
        # kept open (psutil reopens and parses each time, which cost a third of a core-percent).
        now = time.monotonic()
        self._refresh_tree(now)
        t = time.time()
        rows = self.rows
        self._count += 1
        detail = self._count % DETAIL_EVERY == 0
        with_uss = self._count % USS_EVERY == 0
        for pid, proc in list(self._procs.items()):
            cpu = self._process_cpu(pid)
            if cpu is None:
                continue
            if not detail:
                rows.append((t, "process", pid, None, cpu[0], cpu[1], None, None, None, None, None, None, cpu[2], None))
                continue
            try:
                with proc.oneshot():
                    ctx = proc.num_ctx_switches()
                    rss = proc.memory_info().rss
                    threads = proc.threads()
                uss, pss = self._uss_pss(proc) if with_uss else (None, None)
            except psutil.Error:  # the process ended between listing and reading
                self._close(pid)
                continue
            rows.append((t, "process", pid, None, cpu[0], cpu[1], None, ctx.voluntary, ctx.involuntary, rss, uss, pss,
                         cpu[2], None))
            for th in threads:
                rows.append((t, "thread", pid, th.id, th.user_time, th.system_time, None, None, None, None, None, None,
                             None, None))
        if detail:
            for kind, pids in (("lab", self._lab), ("service", self._services)):
                for pid in pids:
                    cpu = self._process_cpu(pid)
                    if cpu is not None:
                        rows.append((t, kind, pid, None, cpu[0], cpu[1], None, None, None, None, None, None, None,
                                     None))
        for line in os.pread(self._proc_stat, 65536, 0).split(b"\n")[1:]:
            if not line.startswith(b"cpu"):
                break
            name, *v = line.split()
            user, nice, system, idle, iowait, irq, softirq = (int(x) / CLOCK_TICKS for x in v[:7])
            # The 8th field is steal: time the hypervisor gave this virtual core to another guest
            # (0 on bare metal, absent on very old kernels). It is in none of the other fields.
            steal = int(v[7]) / CLOCK_TICKS if len(v) > 7 else None
            rows.append((t, "core", None, int(name[3:]), user + nice, system + irq + softirq, idle + iowait,
                         None, None, None, None, None, None, steal))

    def cores_now(self, window_s: float = 0.5) -> float | None:
        """The worker's CPU cores over the last `window_s` of samples: for a live view, not for analysis."""
        rows = self.rows
        last: dict[int, tuple[float, float]] = {}
        first: dict[int, tuple[float, float]] = {}
        end = None
        for i in range(len(rows) - 1, -1, -1):
            t, kind, pid, _tid, user, system = rows[i][:6]
            if kind != "process":
                continue
            end = t if end is None else end
            if t < end - window_s:
                break
            last.setdefault(pid, (t, user + system))
            first[pid] = (t, user + system)
        spent = sum(last[p][1] - first[p][1] for p in last)
        span = max((last[p][0] - first[p][0] for p in last), default=0.0)
        return spent / span if span > 0 else None

    def _uss_pss(self, proc: psutil.Process) -> tuple[int | None, int | None]:
        try:
            full = proc.memory_full_info()
        except psutil.AccessDenied:  # some systems keep smaps from other users' processes
            return None, None
        return full.uss, getattr(full, "pss", None)  # PSS: Linux only

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        return df.astype({"pid": "Int64", "tid": "Int64", "vol_ctx": "Int64", "invol_ctx": "Int64", "rss": "Int64",
                          "uss": "Int64", "pss": "Int64"})

    def own_cost(self) -> dict[str, float]:
        """The sampler's own CPU: what measuring cost, as seconds and as a fraction of one core."""
        return {
            "sampler_cpu_s": self.cpu_s,
            "sampler_core_fraction": self.cpu_s / self.elapsed_s if self.elapsed_s else 0.0,
            "samples": int(sum(1 for r in self.rows if r[1] == "core") / max(1, psutil.cpu_count() or 1)),
        }
