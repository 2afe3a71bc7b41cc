"""CPU use over time from the sampler's cumulative counters: pure functions on samples.csv. No I/O."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _cumulative_cpu(samples: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Cumulative CPU seconds over time, one column per process (or core), indexed by sample time."""
    rows = samples[samples["kind"] == kind]
    key = ["tid" if kind == "core" else "pid"]  # a core's number is kept in the tid column
    if "host" in rows and rows["host"].notna().any():  # several hosts: a pid (or a core) is one only on its host
        rows, key = rows.assign(host=rows["host"].fillna("")), ["host", *key]
    wide = (rows.assign(cpu=rows["user_s"] + rows["system_s"])
            .pivot_table(index="t", columns=key, values="cpu", aggfunc="last")
            .sort_index())
    # A process that appears later has used no CPU before its first sample; one that ended keeps
    # its last total.
    return wide.bfill().ffill()


def cpu_seconds_between(samples: pd.DataFrame, t0: float, t1: float, kind: str = "process") -> float:
    """CPU seconds the worker's process tree (kind="process"), the lab's own processes (kind="lab": the
    harness and its broker) or the machine (kind="core") used in [t0, t1]."""
    wide = _cumulative_cpu(samples, kind)
    if len(wide) < 2:
        return float("nan")
    total = wide.sum(axis=1)
    times = total.index.to_numpy(dtype=float)
    values = total.to_numpy(dtype=float)
    return float(np.interp(t1, times, values) - np.interp(t0, times, values))


def cores_over_time(samples: pd.DataFrame, kind: str = "process", window_s: float = 0.1) -> pd.DataFrame:
    """CPU cores in use over time (columns t, cores), averaged over windows of `window_s`.

    `t` is the middle of each window.
    """
    wide = _cumulative_cpu(samples, kind)
    if len(wide) < 2:
        return pd.DataFrame({"t": [], "cores": []})
    total = wide.sum(axis=1)
    t = total.index.to_numpy(dtype=float)
    edges = np.arange(t[0], t[-1] + window_s, window_s)
    if len(edges) < 2:
        edges = np.array([t[0], t[-1]])
    cumulative = np.interp(edges, t, total.to_numpy(dtype=float))
    cores = np.diff(cumulative) / np.diff(edges)
    return pd.DataFrame({"t": (edges[1:] + edges[:-1]) / 2, "cores": cores})


# /proc/<pid>/stat states of a process that was stopped, not scheduled: SIGSTOP or a terminal's
# Ctrl-Z (T), a debugger (t).
STOPPED_STATES = ("T", "t")


def stopped_seconds(samples: pd.DataFrame, t0: float, t1: float) -> float | None:
    """Seconds of [t0, t1] during which a process of the worker was stopped: each sample at which one was
    counts until the next sample. None where states were not sampled (runs stored before they were)."""
    if samples.empty or "state" not in samples:
        return None
    rows = samples[(samples["kind"] == "process")]
    if rows.empty or rows["state"].isna().all():
        return None
    stopped = rows.assign(stopped=rows["state"].isin(STOPPED_STATES)).groupby("t")["stopped"].any().sort_index()
    times = stopped.index.to_numpy(dtype=float)
    ends = np.append(times[1:], times[-1])
    starts, ends = np.clip(times, t0, t1), np.clip(ends, t0, t1)
    return float(((ends - starts) * stopped.to_numpy()).sum())


def steal_seconds_between(samples: pd.DataFrame, t0: float, t1: float) -> float | None:
    """CPU seconds the hypervisor gave other guests in [t0, t1], summed over this machine's cores (the
    steal field of /proc/stat); None where it was not sampled (runs stored before analysis 6)."""
    if samples.empty or "steal_s" not in samples:
        return None
    rows = samples[samples["kind"] == "core"]
    if rows.empty or rows["steal_s"].isna().all():
        return None
    wide = rows.pivot_table(index="t", columns="tid", values="steal_s", aggfunc="last").sort_index().bfill().ffill()
    if len(wide) < 2:
        return None
    total = wide.sum(axis=1)
    times, values = total.index.to_numpy(dtype=float), total.to_numpy(dtype=float)
    return float(np.interp(t1, times, values) - np.interp(t0, times, values))


def steal_over_time(samples: pd.DataFrame, window_s: float = 0.5) -> pd.DataFrame:
    """Cores the hypervisor took for other guests over time (columns t, cores); empty where not sampled."""
    if samples.empty or "steal_s" not in samples or samples.loc[samples["kind"] == "core", "steal_s"].isna().all():
        return pd.DataFrame({"t": [], "cores": []})
    rows = samples[samples["kind"] == "core"]
    return cores_over_time(rows.assign(user_s=rows["steal_s"], system_s=0.0), "core", window_s)
