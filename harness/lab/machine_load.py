"""What else the machine was doing around a run: load averages, the busiest other processes, and a
short look at how busy it is before anything starts (for --strict).

The run's disturbance itself is computed from the sampler's rows (harness.analysis.summary); this
module names who disturbed it, for run.json and the report.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TypedDict

import psutil

TOP = 3
# A process that used less than this over the run is not worth naming.
MIN_CPU_S = 0.05


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_governor() -> str | None:
    """The CPU frequency governor, where the OS shows it (not in most VMs and containers)."""
    try:
        return Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor").read_text().strip() or None
    except OSError:
        return None


def lab_pids() -> set[int]:
    """This process and everything it started (workers, broker, their children)."""
    try:
        return {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {os.getpid()}


Usage = dict[int, tuple[str, float, float]]  # pid -> (name, start time, CPU seconds so far)


class BusyProcess(TypedDict):
    """One of the busiest other processes, as run.json keeps it."""

    name: str
    pid: int
    cpu_s: float
    cores: float | None


def cpu_by_process() -> Usage:
    """pid -> (name, start time, CPU seconds so far) for every process this user may read."""
    out = {}
    for proc in psutil.process_iter(["name", "cpu_times", "create_time"]):
        times = proc.info.get("cpu_times")
        if times is not None:
            out[proc.pid] = (proc.info.get("name") or "?", proc.info.get("create_time") or 0.0,
                             times.user + times.system)
    return out


def busiest_others(before: Usage, after: Usage, exclude: set[int], seconds: float,
                   top: int = TOP) -> list[BusyProcess]:
    """The processes other than `exclude` that used the most CPU between two snapshots (one that
    started in between counts from zero: a pid is the same process only with the same start time;
    a kernel worker's name changes with its work), as name, pid, CPU seconds and cores."""
    used: list[BusyProcess] = []
    for pid, (name, started, cpu_after) in after.items():
        if pid in exclude:
            continue
        previous = before.get(pid)
        spent = cpu_after - (previous[2] if previous and previous[1] == started else 0.0)
        if spent >= MIN_CPU_S:
            used.append({"name": name, "pid": pid, "cpu_s": round(spent, 2),
                         "cores": round(spent / seconds, 2) if seconds > 0 else None})
    return sorted(used, key=lambda p: -p["cpu_s"])[:top]


class Snapshot:
    """Taken before a run's tasks; `report` after them gives what run.json records."""

    def __init__(self) -> None:
        self.t = time.monotonic()
        self.load_before = load_average()
        self.cpu = cpu_by_process()

    def report(self, exclude: set[int]) -> dict:
        seconds = time.monotonic() - self.t
        return {"load_average_before": self.load_before, "load_average_after": load_average(),
                "busiest_other_processes": busiest_others(self.cpu, cpu_by_process(), exclude, seconds),
                "seconds": round(seconds, 2)}


def busy_cores(interval_s: float = 1.0) -> tuple[float, list[BusyProcess]]:
    """How many cores the machine is using now (over `interval_s`), and the busiest processes doing it."""
    before_cpu = cpu_by_process()
    before = psutil.cpu_times()
    time.sleep(interval_s)
    after = psutil.cpu_times()
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    cores = psutil.cpu_count() or 1
    busy = max(0.0, (total - idle) / total * cores) if total > 0 else 0.0
    return busy, busiest_others(before_cpu, cpu_by_process(), lab_pids(), interval_s)


def refuse_if_busy(interval_s: float = 1.0) -> None:
    """--strict: measure the machine for a second before anything starts and refuse to go on when other
    processes use as many cores as would mark a run disturbed (harness.analysis.trust)."""
    from harness.analysis.trust import disturbance_threshold
    from harness.errors import MachineBusy

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)
    busy, busiest = busy_cores(interval_s)
    if busy >= disturbance_threshold(cores):
        names = ", ".join(f"{p['name']} ({p['cores']:.1f})" for p in busiest) or "no single process stood out"
        raise MachineBusy(f"the machine is busy: {busy:.1f} of {psutil.cpu_count()} cores in use before the run "
                          f"(busiest: {names}); --strict refuses to start. Wait for it to calm down, or drop --strict "
                          "and read the run's disturbance mark")
