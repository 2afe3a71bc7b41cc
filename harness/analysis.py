"""What a run's numbers say: pure functions on the tasks and samples DataFrames. No I/O."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# A busy_wait run is called phantom when the tasks "running" at once exceed the cores they got
# by at least this much: half a core is well above a 2-core machine's noise.
PHANTOM_MARGIN_CORES = 0.5


@dataclass(frozen=True)
class RunContext:
    """What the analysis needs to know about the run besides its tables."""

    pool: str
    workload: str
    kind: str  # "python-cpu", "c-cpu" or "io"
    concurrency: int
    tasks: int
    duration: float
    switch_interval: float
    cores: int


def with_timings(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per-task derived times: queue wait, run time, and wait while running (run time minus own CPU).

    For CPU work the wait while running is the GIL wait (or, in a green pool, the wait for the
    event loop); for I/O work it is the I/O itself.
    """
    out = tasks.copy()
    out["queue_wait_s"] = out["started"] - out["submitted"]
    out["run_s"] = out["finished"] - out["started"]
    out["wait_s"] = (out["run_s"] - out["cpu_s"]).clip(lower=0)
    return out


def running_over_time(tasks: pd.DataFrame) -> pd.DataFrame:
    """Step function of tasks running: columns t (epoch s) and running, one row per start or finish."""
    events = pd.concat([
        pd.DataFrame({"t": tasks["started"], "delta": 1}),
        pd.DataFrame({"t": tasks["finished"], "delta": -1}),
    ]).sort_values(["t", "delta"], kind="stable")
    events["running"] = events["delta"].cumsum()
    return events[["t", "running"]].reset_index(drop=True)


def max_overlap(tasks: pd.DataFrame) -> int:
    if tasks.empty:
        return 0
    return int(running_over_time(tasks)["running"].max())


def _cumulative_cpu(samples: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Cumulative CPU seconds over time, one column per process (or core), indexed by sample time."""
    rows = samples[samples["kind"] == kind]
    key = "pid" if kind == "process" else "tid"
    wide = (rows.assign(cpu=rows["user_s"] + rows["system_s"])
            .pivot_table(index="t", columns=key, values="cpu", aggfunc="last")
            .sort_index())
    # A process that appears later has used no CPU before its first sample; one that ended keeps
    # its last total.
    return wide.bfill().ffill()


def cpu_seconds_between(samples: pd.DataFrame, t0: float, t1: float, kind: str = "process") -> float:
    """CPU seconds the worker's process tree (kind="process") or the machine (kind="core") used in [t0, t1]."""
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


def ideal_speedup(pool: str, kind: str, concurrency: int, tasks: int, cores: int) -> int:
    """The best speedup over serial the pool can give this kind of work, physically.

    solo runs one task at a time. I/O waits overlap in every other pool up to its concurrency.
    Pure-Python CPU work needs the GIL, so only separate processes (prefork) run it in parallel,
    up to the cores. C code that releases the GIL runs in parallel on threads too, but not in a
    green pool, where every greenlet shares one OS thread and the C call never yields.
    """
    slots = min(concurrency, tasks)
    if pool == "solo":
        return 1
    if kind == "io":
        return slots
    if pool == "prefork" or (pool == "threads" and kind == "c-cpu"):
        return min(slots, cores)
    return 1


# Fixed-work tasks: their own CPU time is how long each takes alone.
FIXED_WORK = ("cpu", "gil_release")


def serial_seconds(tasks: pd.DataFrame, ctx: RunContext) -> tuple[float, str]:
    """How long the same tasks would take run one at a time, and what that figure rests on.

    A fixed-work task alone takes its own CPU time; that is measured in the worker itself, so it
    is truer than the harness's calibration, which can be off by 10 % between processes. A
    wall-clock spin (busy_wait) or an I/O task takes its nominal duration alone, whatever CPU it got.
    """
    if ctx.workload in FIXED_WORK and tasks["cpu_s"].notna().all():
        return float(tasks["cpu_s"].sum()), "own CPU time of the tasks"
    return ctx.tasks * ctx.duration, "tasks x duration"


def summarize(tasks: pd.DataFrame, samples: pd.DataFrame, ctx: RunContext) -> dict:
    """The run's summary numbers (see README, 'How to read the numbers')."""
    t = with_timings(tasks)
    ok = t[t["error"].isna()] if "error" in t else t
    t0, t1 = float(t["submitted"].min()), float(t["finished"].max())
    makespan = t1 - t0
    serial, serial_basis = serial_seconds(t, ctx)
    speedup = serial / makespan if makespan > 0 else float("nan")
    ideal = ideal_speedup(ctx.pool, ctx.kind, ctx.concurrency, ctx.tasks, ctx.cores)
    busy = float(t["run_s"].sum())
    mean_running = busy / makespan if makespan > 0 else float("nan")
    tree_cpu = cpu_seconds_between(samples, t0, t1, "process") if not samples.empty else float("nan")
    machine_cpu = cpu_seconds_between(samples, t0, t1, "core") if not samples.empty else float("nan")
    cpu_known = t["cpu_s"].notna().all()
    cpu_share = float(t["cpu_s"].sum() / busy) if cpu_known and busy > 0 else float("nan")
    intervals = sorted(set(float(x) for x in t["switch_interval"].dropna()))

    summary = {
        "tasks_done": int(len(ok)),
        "tasks_failed": int(len(t) - len(ok)),
        "makespan_s": makespan,
        "throughput_per_s": len(t) / makespan if makespan > 0 else float("nan"),
        "serial_s": serial,
        "serial_basis": serial_basis,
        "speedup": speedup,
        "ideal_speedup": ideal,
        "efficiency": speedup / ideal,
        "cores": ctx.cores,
        "mean_tasks_running": mean_running,
        "max_tasks_running": max_overlap(t),
        "mean_cores_used": tree_cpu / makespan if makespan > 0 else float("nan"),
        "machine_cores_used": machine_cpu / makespan if makespan > 0 else float("nan"),
        "worker_cpu_s": tree_cpu,
        "task_cpu_s": float(t["cpu_s"].sum()) if cpu_known else None,
        "task_cpu_share": cpu_share,
        "queue_wait_p50_s": float(t["queue_wait_s"].quantile(0.5)),
        "queue_wait_p95_s": float(t["queue_wait_s"].quantile(0.95)),
        "run_time_p50_s": float(t["run_s"].quantile(0.5)),
        "run_time_p95_s": float(t["run_s"].quantile(0.95)),
        "slots_used": int(t["slot"].nunique()),
        "switch_intervals_seen": intervals,
        "switch_interval_ok": bool(intervals) and all(np.isclose(x, ctx.switch_interval) for x in intervals),
    }
    if ctx.kind != "io" and cpu_known:
        summary["gil_wait_mean_s"] = float(t["wait_s"].mean())
        summary["gil_wait_fraction"] = float(t["wait_s"].sum() / busy) if busy > 0 else float("nan")
    if "rtt_mean_s" in t and t["rtt_mean_s"].notna().any():
        # Round trips of io_net, weighted by how many each task made.
        summary["rtt_mean_s"] = float((t["rtt_mean_s"] * t["ops"]).sum() / t["ops"].sum())
        summary["rtt_max_s"] = float(t["rtt_max_s"].max())
        summary["round_trips"] = int(t["ops"].sum())
    gaps = dispatch_gaps(t, ctx.concurrency)
    summary["dispatch_gap_p50_s"] = float(gaps.median()) if len(gaps) else None
    summary["dispatch_gap_max_s"] = float(gaps.max()) if len(gaps) else None
    starts = t["started"].sort_values().to_numpy()
    # The tutorial's question: how long after the first task does the second one get going?
    summary["second_start_delay_s"] = float(starts[1] - starts[0]) if len(starts) > 1 else None
    phantom_cores = mean_running * (1 - cpu_share) if cpu_known else float("nan")
    summary["phantom"] = bool(ctx.workload == "busy_wait" and phantom_cores >= PHANTOM_MARGIN_CORES)
    summary["phantom_cores"] = phantom_cores if ctx.workload == "busy_wait" else None
    summary["notes"] = notes(summary, ctx)
    return summary


def notes(summary: dict, ctx: RunContext) -> list[str]:
    """Plain-language reading of the summary: what a teacher would point at."""
    out = []
    gap = summary["mean_tasks_running"] - summary["mean_cores_used"]
    if summary["phantom"]:
        out.append(
            f"PHANTOM PARALLELISM: on average {summary['mean_tasks_running']:.1f} busy_wait tasks were "
            f"'running' at once, but they got {summary['mean_tasks_running'] * summary['task_cpu_share']:.1f} "
            "cores between them. A wall-clock spin stops on time whether or not it got the CPU: "
            "measure CPU, not wall time (use the `cpu` workload).")
    if ctx.kind != "io" and gap >= PHANTOM_MARGIN_CORES and not summary["phantom"]:
        who = "the event loop's single thread" if ctx.pool in ("gevent", "eventlet") else "the GIL"
        out.append(f"{summary['mean_tasks_running']:.1f} tasks running on average but "
                   f"{summary['mean_cores_used']:.1f} cores used: {who} took the difference.")
    if summary["efficiency"] < 0.7:
        out.append(f"Speedup {summary['speedup']:.2f}x is {summary['efficiency']:.0%} of the ideal "
                   f"{summary['ideal_speedup']}x for {ctx.pool} on {ctx.kind} work.")
    if not summary["switch_interval_ok"]:
        out.append(f"WARNING: tasks saw switch intervals {summary['switch_intervals_seen']}, "
                   f"not the requested {ctx.switch_interval:g} s.")
    if summary["tasks_failed"]:
        out.append(f"{summary['tasks_failed']} task(s) raised an error: see the error column of tasks.csv.")
    return out


def lanes(tasks: pd.DataFrame, concurrency: int) -> pd.Series:
    """A timeline lane per task: its slot where slots are few (processes, threads), else packed.

    A gevent or eventlet pool spawns a new greenlet per task, so its slots are as many as its
    tasks; there the lanes are packed greedily: each task takes the lowest lane free at its start.
    """
    slots = tasks["slot"].astype(str)
    if slots.nunique() <= max(concurrency, 1):
        order = {s: i for i, s in enumerate(tasks.sort_values("started")["slot"].astype(str).unique())}
        return slots.map(order)
    lane_free_at: list[float] = []
    assigned = pd.Series(0, index=tasks.index)
    for idx, row in tasks.sort_values("started").iterrows():
        for lane, free_at in enumerate(lane_free_at):
            if free_at <= row["started"]:
                break
        else:
            lane = len(lane_free_at)
            lane_free_at.append(0.0)
        lane_free_at[lane] = row["finished"]
        assigned[idx] = lane
    return assigned


def time_breakdown(tasks: pd.DataFrame) -> pd.DataFrame:
    """Where each task's time went, submit to finish: queued, running off-CPU, and on its own CPU.

    Off-CPU while running is the GIL wait for CPU work (or the event loop's, in a green pool) and
    the I/O itself for I/O work. Rows are in submit order.
    """
    t = with_timings(tasks).sort_values("submitted")
    out = pd.DataFrame({
        "queued_s": t["queue_wait_s"].clip(lower=0),
        "off_cpu_s": t["wait_s"],
        "on_cpu_s": t[["cpu_s", "run_s"]].min(axis=1),
    })
    out.index = range(1, len(out) + 1)
    out.index.name = "task"
    return out


def dispatch_gaps(tasks: pd.DataFrame, concurrency: int) -> pd.Series:
    """Seconds between a slot becoming free and its next task starting, while work was waiting.

    Per timeline lane (see `lanes`), for each task and the next one in the same lane: counted only
    when the next task had been submitted before the slot freed, so idle time with an empty queue
    is not a gap. Celery's green-pool `synloop` at prefetch multiplier 1 shows here as ~2 s gaps.
    """
    t = tasks.assign(lane=lanes(tasks, concurrency)).sort_values(["lane", "started"])
    gaps = []
    for _, lane in t.groupby("lane"):
        prev_finished = lane["finished"].shift()
        waiting = lane["submitted"] <= prev_finished
        gaps.append((lane["started"] - prev_finished)[waiting].clip(lower=0))
    return pd.concat(gaps) if gaps else pd.Series(dtype=float)


def gil_holder_bands(oncpu: pd.DataFrame, min_share: float = 0.5, merge_gap_s: float = 0.006) -> pd.DataFrame:
    """Intervals during which one thread of a process ran on a CPU: for pure-Python work, the GIL holder.

    `oncpu` has columns t, pid, tid, oncpu_ns (cumulative). Between two samples the thread with
    the most on-CPU time in its process is the holder, if it ran at least `min_share` of the interval.
    Consecutive intervals with the same holder merge into one band, and so do two bands of the
    same thread less than `merge_gap_s` apart: the kernel adds a running thread's on-CPU time at
    each scheduler tick (every 4 ms at 250 Hz), so 1 kHz samples of a thread that runs throughout
    see it stall between ticks. Holds shorter than a tick cannot be told apart. Columns: pid,
    tid, start, end.
    """
    if oncpu.empty:
        return pd.DataFrame(columns=["pid", "tid", "start", "end"])
    bands = []
    for pid, proc in oncpu.groupby("pid"):
        wide = proc.pivot_table(index="t", columns="tid", values="oncpu_ns", aggfunc="last").sort_index().ffill()
        ran = wide.diff().iloc[1:] / 1e9
        span = pd.Series(wide.index, index=wide.index).diff().iloc[1:]
        holder = ran.idxmax(axis=1).where(ran.max(axis=1) >= min_share * span)
        times = list(wide.index)  # interval i runs from times[i] to times[i + 1]
        current, start = None, None
        for i, tid in enumerate(holder.to_numpy()):
            if current is not None and not pd.isna(tid) and tid == current:
                continue  # the same thread still holds on
            if current is not None:
                bands.append((pid, int(current), start, times[i]))
            current, start = (None, None) if pd.isna(tid) else (tid, times[i])
        if current is not None:
            bands.append((pid, int(current), start, times[-1]))
    merged: list[list] = []
    for band in sorted(bands, key=lambda b: (b[0], b[2])):
        last = merged[-1] if merged else None
        if last and last[0] == band[0] and last[1] == band[1] and band[2] - last[3] < merge_gap_s:
            last[3] = band[3]
        else:
            merged.append(list(band))
    bands = [tuple(b) for b in merged]
    return pd.DataFrame(bands, columns=["pid", "tid", "start", "end"])


def gil_handoffs(bands: pd.DataFrame, t0: float, t1: float, min_band_s: float = 0.0015) -> dict:
    """How long a thread held on before another took over, within [t0, t1].

    Bands shorter than `min_band_s` (under two samples at 1 kHz) are left out: they are a
    sample interval cut by a handover, not a hold.
    """
    inside = bands[(bands["start"] >= t0) & (bands["end"] <= t1) & (bands["end"] - bands["start"] >= min_band_s)]
    held = inside["end"] - inside["start"]
    span = t1 - t0
    return {"gil_hold_median_s": float(held.median()) if len(held) else None,
            "gil_hold_p90_s": float(held.quantile(0.9)) if len(held) else None,
            "gil_handoffs_per_s": float(max(len(held) - 1, 0) / span) if span > 0 else None}
