"""What a run's tasks used besides CPU time: the worker tree's memory, io_net's round trips. Pure, no I/O."""
from __future__ import annotations

import pandas as pd

MIB = 2 ** 20


def memory(samples: pd.DataFrame, t0: float, t1: float) -> dict:
    """The worker tree's memory while the tasks ran: RSS summed over its processes, and USS and PSS where read.

    RSS counts pages the processes share (prefork's children share the parent's code and libraries)
    once per process, so its sum overstates a process tree. USS, the pages a process alone holds, is
    what one more process costs, but its sum leaves the shared pages out. PSS splits each shared page
    between its sharers: its sum is the tree's real footprint. Peak and mean over the samples in [t0, t1].
    """
    out: dict[str, float | None] = {f"{c}_{s}_mib": None for c in ("rss", "uss", "pss") for s in ("peak", "mean")}
    if samples.empty or "rss" not in samples:
        return out
    processes = samples[samples["kind"] == "process"]
    for column in ("rss", "uss", "pss"):
        if column not in processes:
            continue
        per_time = _total_over_time(processes.dropna(subset=[column]), column)
        during = per_time[(per_time.index >= t0) & (per_time.index <= t1)]
        # A run shorter than the memory samples' period may have none while its tasks ran: then the
        # samples of the whole run (the worker idle before and after) stand in.
        chosen = during if len(during) else per_time
        if len(chosen):
            out[f"{column}_peak_mib"] = float(chosen.max() / MIB)
            out[f"{column}_mean_mib"] = float(chosen.mean() / MIB)
    return out


def _total_over_time(processes: pd.DataFrame, column: str) -> pd.Series:
    """One value per process per sample time, then the tree's total at each time. Several hosts (a `host` column)
    are sampled each on its own clock's instants: each host's total is carried to every instant (its last reading
    before it, or its first), and the hosts' totals added, so no instant counts only one host's workers."""
    if "host" not in processes or not processes["host"].notna().any():
        return processes.groupby("t")[column].sum()
    per_host = [group.groupby("t")[column].sum() for _, group in processes.groupby(processes["host"].fillna(""))]
    instants = sorted(set().union(*(s.index for s in per_host)))
    return sum((s.reindex(instants).ffill().bfill() for s in per_host), pd.Series(0.0, index=instants))


def round_trips(tasks: pd.DataFrame) -> dict:
    """io_net's round trips over all tasks, weighted by how many each task made; empty for other work."""
    if "rtt_mean_s" not in tasks or not tasks["rtt_mean_s"].notna().any():
        return {}
    return {"rtt_mean_s": float((tasks["rtt_mean_s"] * tasks["ops"]).sum() / tasks["ops"].sum()),
            "rtt_max_s": float(tasks["rtt_max_s"].max()),
            "round_trips": int(tasks["ops"].sum())}
