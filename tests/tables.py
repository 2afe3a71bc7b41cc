"""Small hand-made tables in the shapes the lab stores (tasks.csv, samples.csv), for offline tests."""
from __future__ import annotations

import pandas as pd


def tasks_table(rows):
    """rows: (submitted, started, finished, cpu_s, slot)"""
    return pd.DataFrame(rows, columns=["submitted", "started", "finished", "cpu_s", "slot"]).assign(
        switch_interval=0.005, error=None)


def samples_table(per_pid):
    """per_pid: {pid: [(t, cumulative cpu s), ...]} as process rows."""
    rows = [(t, "process", pid, None, cpu, 0.0, None, 0, 0, 0) for pid, pts in per_pid.items() for t, cpu in pts]
    return pd.DataFrame(rows, columns=["t", "kind", "pid", "tid", "user_s", "system_s", "idle_s",
                                       "vol_ctx", "invol_ctx", "rss"])
