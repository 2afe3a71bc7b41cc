"""A mix of the user's calls (APP=, CALLS=): results per task name beside those of the mix. Pure; no I/O.

A mix has no one task to time alone, so no speedup: pools are compared by tasks/s on the same seeded replay.
Per task name: its share of the throughput, what its callers waited (submit to finish), its own CPU over its run
time, and the time it ran off the CPU (waiting on I/O, the GIL or the event loop). Memory belongs to the worker
processes, which every task shares: it is the mix's alone.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis.timing import with_timings

# A task name whose own CPU is at least this share of its run time alone is CPU-bound: it wants a process of its
# own (prefork); below it, it mostly waits and wants cheap slots (the advisor's split, harness.analysis.advice).
CPU_BOUND_SHARE = 0.5


def per_task(tasks: pd.DataFrame, makespan_s: float) -> list[dict[str, Any]]:
    """One row per task name, in the order the names first ran: the figures the mix's summary has for all."""
    if tasks.empty or "name" not in tasks:
        return []
    t = with_timings(tasks)
    latency = t["finished"] - t["submitted"]
    rows = []
    for name, group in t.groupby("name", sort=False):
        busy = float(group["run_s"].sum())
        cpu = group["cpu_s"].astype(float)
        failed = int(group["error"].notna().sum()) if "error" in group else 0
        lat = latency[group.index]
        rows.append({
            "task": str(name),
            "tasks": int(len(group)),
            "failed": failed,
            "throughput_per_s": len(group) / makespan_s if makespan_s > 0 else float("nan"),
            "latency_p50_s": float(lat.quantile(0.5)),
            "latency_p95_s": float(lat.quantile(0.95)),
            "queue_wait_p50_s": float(group["queue_wait_s"].quantile(0.5)),
            "run_time_p50_s": float(group["run_s"].quantile(0.5)),
            "run_time_p95_s": float(group["run_s"].quantile(0.95)),
            "cpu_share": float(cpu.sum() / busy) if busy > 0 and cpu.notna().all() else None,
            "off_cpu_share": float(group["wait_s"].sum() / busy) if busy > 0 and cpu.notna().all() else None,
        })
    return rows


def cpu_bound(row: dict[str, Any]) -> bool:
    share = row.get("cpu_share")
    return share is not None and share >= CPU_BOUND_SHARE


def per_task_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame(rows or [], columns=["task", "tasks", "failed", "throughput_per_s", "latency_p50_s",
                                             "latency_p95_s", "queue_wait_p50_s", "run_time_p50_s", "run_time_p95_s",
                                             "cpu_share", "off_cpu_share"])


def per_task_by_cell(runs: list[tuple[str, list[dict[str, Any]] | None]]) -> pd.DataFrame:
    """A sweep of mixes: per cell (its label) and task name, the median over the cell's repeats of each figure."""
    rows = [{"label": label, **row} for label, per in runs for row in per or []]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    numbers = ["throughput_per_s", "latency_p50_s", "latency_p95_s", "cpu_share"]
    return frame.groupby(["label", "task"], sort=False)[numbers].median().reset_index()
