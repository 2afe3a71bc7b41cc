"""A run's summary: pure functions from its stored tables and manifest to the numbers. No I/O.

The summary is stamped with ANALYSIS_VERSION: raise it whenever a change here changes a number, so
`python -m harness summarize` can tell which stored summaries are older than this analysis.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis.cpu import cpu_seconds_between, stopped_seconds
from harness.analysis.gil import gil_handoffs, gil_holder_bands
from harness.analysis.resources import memory, round_trips
from harness.analysis.trust import disturbance_note, is_disturbed, was_stopped
from harness.analysis.timing import contended_windows, dispatch_gaps, max_overlap, with_timings
from harness.model.pools import CPU_KINDS, pool
from harness.model.workloads import workload

# 1: serial time inferred (own CPU of fixed-work tasks, else tasks x duration).
# 2: serial time measured from the reference task run alone; work inflation.
# 3: GIL holds measured only while two or more tasks ran at once (gil_contended_s); memory (RSS, USS);
#    alone_cpu_share, task_stretch; mixed and own work.
# 4: other processes' cores while the tasks ran (other_cores_used) and whether that disturbed the run.
# 5: how long the worker stood stopped (worker_stopped_s, from the sampled process states); a run whose
#    worker was stopped for a twentieth of it is disturbed, and its lost time is not blamed on the GIL.
ANALYSIS_VERSION = 5
# A busy_wait run is called phantom when the tasks "running" at once exceed the cores they got
# by at least this much: half a core is well above a 2-core machine's noise.
PHANTOM_MARGIN_CORES = 0.5
# Tasks that each burned this much more CPU than the same task alone did extra work, not the same
# work faster: contention (a shared object on a free-threaded build), SMT siblings, memory bandwidth.
INFLATION_FLAG = 1.25


@dataclass(frozen=True)
class RunContext:
    """What the analysis needs to know about the run besides its tables."""

    pool: str
    workload: str
    kind: str  # "python-cpu", "c-cpu", "io", "mixed" or "own" (harness.model.workloads.KINDS)
    concurrency: int
    tasks: int
    duration: float
    switch_interval: float
    cores: int
    free_threaded: bool = False  # the worker's interpreter was built without the GIL
    gil: str | None = None       # the GIL asked of it: "on", "off", or None for the build's default
    cpu_fraction: float | None = None  # mixed work: the share of a task's time alone that is CPU
    workers: int = 1  # worker processes on the run's queue, each with `concurrency` slots


def _alone(reference: pd.DataFrame | None) -> pd.Series | None:
    """The reference task's row, when the run has one that ran without error."""
    if reference is None or len(reference) != 1:
        return None
    row = reference.iloc[0]
    return None if "error" in row and isinstance(row["error"], str) else row


def serial_seconds(tasks: pd.DataFrame, ctx: RunContext, reference: pd.DataFrame | None = None) -> tuple[float, str]:
    """How long the same tasks would take run one at a time, and what that figure rests on.

    Measured where the run has a reference task (schema version 3 on): the same task run alone on
    the same worker first, so the figure holds on every build. The tasks' own CPU would not: on a
    free-threaded build threads that contend burn more CPU for the same work, and a speedup from
    CPU time then reports the cores as busy, not the work as done.

    Older folders have no reference: a fixed-work task alone takes its own CPU time, and a
    wall-clock spin (busy_wait) or an I/O task its nominal duration.
    """
    alone = _alone(reference)
    if alone is not None:
        return ctx.tasks * float(alone["finished"] - alone["started"]), "tasks x one task run alone (measured)"
    if workload(ctx.workload).fixed_work and tasks["cpu_s"].notna().all():
        return float(tasks["cpu_s"].sum()), "own CPU time of the tasks"
    return ctx.tasks * ctx.duration, "tasks x duration"


def work_inflation(tasks: pd.DataFrame, ctx: RunContext, reference: pd.DataFrame | None) -> float | None:
    """Mean own CPU of a task in the batch over the own CPU of the same task alone; fixed work only.

    1 when the work is the same however many run at once; above 1 when each task burned more CPU
    for the same work. Only fixed work has a fixed amount to compare (a spin or a sleep does not).
    """
    alone = _alone(reference)
    if alone is None or not workload(ctx.workload).fixed_work or not tasks["cpu_s"].notna().all():
        return None
    return float(tasks["cpu_s"].mean() / alone["cpu_s"]) if alone["cpu_s"] > 0 else None


def summarize(tasks: pd.DataFrame, samples: pd.DataFrame, ctx: RunContext,
              reference: pd.DataFrame | None = None) -> dict:
    """The run's summary numbers (see README, 'How to read the numbers').

    `tasks` are the measured tasks; `reference` the one task run alone before them, where the run has one.
    """
    t = with_timings(tasks)
    ok = t[t["error"].isna()] if "error" in t else t
    t0, t1 = float(t["submitted"].min()), float(t["finished"].max())
    makespan = t1 - t0
    serial, serial_basis = serial_seconds(t, ctx, reference)
    alone = _alone(reference)
    speedup = serial / makespan if makespan > 0 else float("nan")
    gil_seen = t["gil_enabled"].dropna().astype(bool) if "gil_enabled" in t else pd.Series(dtype=bool)
    gil_free = ctx.free_threaded and ctx.gil != "on" and not gil_seen.any()
    ideal = pool(ctx.pool).ideal_speedup(ctx.kind, ctx.concurrency, ctx.tasks, ctx.cores, gil_free, ctx.cpu_fraction,
                                         ctx.workers)
    busy = float(t["run_s"].sum())
    mean_running = busy / makespan if makespan > 0 else float("nan")
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
        "alone_s": float(alone["finished"] - alone["started"]) if alone is not None else None,
        "alone_cpu_s": float(alone["cpu_s"]) if alone is not None else None,
        # How much of a task's time alone was its own CPU: the share the GIL can take from it.
        "alone_cpu_share": _share(alone["cpu_s"], alone["finished"] - alone["started"]) if alone is not None else None,
        # How much longer a task ran beside the others than alone: what the GIL, the event loop or
        # contention took from each task (for CPU work most of it is the GIL wait below).
        "task_stretch": _share(t["run_s"].mean(), alone["finished"] - alone["started"]) if alone is not None else None,
        "work_inflation": work_inflation(t, ctx, reference),
        "speedup": speedup,
        "ideal_speedup": ideal,
        "efficiency": speedup / ideal if ideal else None,
        "cores": ctx.cores,
        "mean_tasks_running": mean_running,
        "max_tasks_running": max_overlap(t),
        **cpu_use(samples, t0, t1, ctx.cores),
        "task_cpu_s": float(t["cpu_s"].sum()) if cpu_known else None,
        "task_cpu_share": cpu_share,
        "queue_wait_p50_s": float(t["queue_wait_s"].quantile(0.5)),
        "queue_wait_p95_s": float(t["queue_wait_s"].quantile(0.95)),
        "run_time_p50_s": float(t["run_s"].quantile(0.5)),
        "run_time_p95_s": float(t["run_s"].quantile(0.95)),
        # What a caller waits: submit to finish.
        "latency_p95_s": float((t["finished"] - t["submitted"]).quantile(0.95)),
        "slots_used": int(t["slot"].nunique()),
        "switch_intervals_seen": intervals,
        "switch_interval_ok": bool(intervals) and all(np.isclose(x, ctx.switch_interval) for x in intervals),
    }
    summary.update(_waits(t, ctx, busy, mean_running, cpu_share if cpu_known else None))
    summary["gil_enabled_tasks"] = int(gil_seen.sum()) if len(gil_seen) else None
    summary.update(memory(samples, t0, t1))
    summary["notes"] = notes(summary, ctx)
    return summary


def cpu_use(samples: pd.DataFrame, t0: float, t1: float, cores: int) -> dict:
    """Cores used in [t0, t1] by the worker, by the whole machine, and by other processes: what neither the
    worker nor the lab (harness, broker) used; None where the lab's own processes were not sampled (runs
    stored before analysis 4) or too few samples fell in a short run. Whether that disturbed the run."""
    span = t1 - t0
    tree_cpu = cpu_seconds_between(samples, t0, t1, "process") if not samples.empty else float("nan")
    machine_cpu = cpu_seconds_between(samples, t0, t1, "core") if not samples.empty else float("nan")
    lab_sampled = not samples.empty and bool((samples["kind"] == "lab").any())
    lab_cpu = cpu_seconds_between(samples, t0, t1, "lab") if lab_sampled else float("nan")
    other = (machine_cpu - tree_cpu - lab_cpu) / span if lab_sampled and span > 0 else float("nan")
    other_cores = max(0.0, other) if np.isfinite(other) else None
    stopped = stopped_seconds(samples, t0, t1)
    return {"mean_cores_used": tree_cpu / span if span > 0 else float("nan"),
            "machine_cores_used": machine_cpu / span if span > 0 else float("nan"),
            "other_cores_used": other_cores, "worker_stopped_s": stopped,
            "disturbed": is_disturbed(other_cores, cores, stopped, span), "worker_cpu_s": tree_cpu}


def _waits(t: pd.DataFrame, ctx: RunContext, busy: float, mean_running: float, cpu_share: float | None) -> dict:
    """What the tasks waited for: the GIL (CPU work), round trips, free slots, the second start; and
    whether busy_wait's parallelism was phantom."""
    out: dict[str, Any] = {}
    if ctx.kind in CPU_KINDS and cpu_share is not None:  # mixed and own tasks also wait on purpose: see task_stretch
        out["gil_wait_mean_s"] = float(t["wait_s"].mean())
        out["gil_wait_fraction"] = float(t["wait_s"].sum() / busy) if busy > 0 else float("nan")
    out.update(round_trips(t))
    gaps = dispatch_gaps(t, ctx.concurrency)
    out["dispatch_gap_p50_s"] = float(gaps.median()) if len(gaps) else None
    out["dispatch_gap_max_s"] = float(gaps.max()) if len(gaps) else None
    starts = t["started"].sort_values().to_numpy()
    # The tutorial's question: how long after the first task does the second one get going?
    out["second_start_delay_s"] = float(starts[1] - starts[0]) if len(starts) > 1 else None
    phantom_cores = mean_running * (1 - cpu_share) if cpu_share is not None else float("nan")
    out["phantom"] = bool(ctx.workload == "busy_wait" and phantom_cores >= PHANTOM_MARGIN_CORES)
    out["phantom_cores"] = phantom_cores if ctx.workload == "busy_wait" else None
    return out


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 and pd.notna(part) else None


def notes(summary: dict, ctx: RunContext) -> list[str]:
    """Plain-language reading of the summary: what a teacher would point at."""
    out = [disturbance_note(summary)] if summary.get("disturbed") else []
    # Tasks beyond the cores take turns on them whatever the pool: only the cores they could have
    # had and did not get are the GIL's (or the event loop's) doing.
    running, used = summary["mean_tasks_running"], summary["mean_cores_used"]
    gap = min(running, ctx.cores) - used
    gil_free = ctx.free_threaded and ctx.gil != "on" and not summary["gil_enabled_tasks"]
    if summary["phantom"]:
        out.append(
            f"PHANTOM PARALLELISM: on average {summary['mean_tasks_running']:.1f} busy_wait tasks were "
            f"'running' at once, but they got {summary['mean_tasks_running'] * summary['task_cpu_share']:.1f} "
            "cores between them. A wall-clock spin stops on time whether or not it got the CPU: "
            "measure CPU, not wall time (use the `cpu` workload).")
    if ctx.kind in CPU_KINDS and gap >= PHANTOM_MARGIN_CORES and not summary["phantom"]:  # a GIL, or one OS thread
        who = ("the worker being stopped" if was_stopped(summary.get("worker_stopped_s"), summary["makespan_s"]) else
               "other processes on the machine" if summary.get("disturbed") else
               "locks the tasks share, or the OS (no GIL on this worker)" if gil_free else pool(ctx.pool).waiter)
        out.append(f"{running:.1f} tasks running on average but {used:.1f} cores used: "
                   f"{who} took the difference.")
    elif ctx.kind in CPU_KINDS and running - ctx.cores >= PHANTOM_MARGIN_CORES and not summary["phantom"]:
        out.append(f"{running:.1f} tasks running on average on {ctx.cores} cores: they took turns on the cores "
                   "(more tasks than cores), which no pool can avoid.")
    share = summary.get("alone_cpu_share")
    if ctx.kind in ("mixed", "own") and share is not None:
        # Such a task waits on purpose part of the time: it wants its share of a core while it runs.
        wanted = min(summary["mean_tasks_running"] * share, ctx.cores)
        if wanted - summary["mean_cores_used"] >= PHANTOM_MARGIN_CORES:
            out.append(f"{summary['mean_tasks_running']:.1f} tasks running on average, each {share:.0%} CPU alone, "
                       f"wanted {wanted:.1f} cores but got {summary['mean_cores_used']:.1f}: "
                       f"{pool(ctx.pool).waiter} (or the cores) took the difference.")
    inflation = summary.get("work_inflation")
    if inflation is not None and inflation > INFLATION_FLAG:
        out.append(f"WORK INFLATION {inflation:.2f}x: each task used {inflation:.2f}x the CPU it used alone. The cores "
                   "were busy but the work did not go faster: the tasks contended (for an object they share, on a "
                   "free-threaded build; for SMT siblings or memory bandwidth).")
    if summary["efficiency"] is not None and summary["efficiency"] < 0.7:
        out.append(f"Speedup {summary['speedup']:.2f}x is {summary['efficiency']:.0%} of the ideal "
                   f"{summary['ideal_speedup']}x for {ctx.pool} on {ctx.kind} work.")
    gil_on = summary["gil_enabled_tasks"]
    if ctx.free_threaded and ctx.gil != "on" and gil_on:
        out.append(f"THE GIL WAS ON in {gil_on} of {summary['tasks_done'] + summary['tasks_failed']} tasks on a "
                   "free-threaded worker that did not ask for it: a C extension not marked free-threading-safe "
                   "turned it back on (the worker's log names it).")
    if not summary["switch_interval_ok"]:
        out.append(f"WARNING: tasks saw switch intervals {summary['switch_intervals_seen']}, "
                   f"not the requested {ctx.switch_interval:g} s.")
    if summary["tasks_failed"]:
        out.append(f"{summary['tasks_failed']} task(s) raised an error: see the error column of tasks.csv.")
    return out


def context(spec: dict[str, Any], environment: dict[str, Any], settings: dict[str, Any] | None = None) -> RunContext:
    """The RunContext of a stored run: its spec, the cores it could use (recorded in its environment),
    and the worker's interpreter (recorded in its settings)."""
    cores = environment.get("cpu_affinity") or environment.get("cpu_count_logical") or 1
    interpreter = (settings or {}).get("worker_interpreter") or {}
    return RunContext(pool=spec["pool"], workload=spec["workload"], kind=workload(spec["workload"]).kind,
                      concurrency=spec["concurrency"], tasks=spec["tasks"], duration=spec["duration"],
                      switch_interval=spec["switch_interval"], cores=int(cores),
                      free_threaded=bool(interpreter.get("free_threaded")), gil=spec.get("gil"),
                      cpu_fraction=spec.get("cpu_fraction"), workers=spec.get("workers", 1))


def gil_probe_summary(oncpu: pd.DataFrame, contention: pd.DataFrame, foreground: pd.DataFrame,
                      cost: dict[str, Any] | None) -> dict[str, Any]:
    """The GIL probes' figures while two or more measured tasks ran at once, with what the probes cost."""
    bands = gil_holder_bands(oncpu)
    return {
        **gil_handoffs(bands, contended_windows(foreground)),
        "contention_mean": float(contention["contention"].mean()) if len(contention) else None,
        **(cost or {}),
    }


def summarize_run(manifest: dict[str, Any], tasks: pd.DataFrame, samples: pd.DataFrame,
                  oncpu: pd.DataFrame | None = None, contention: pd.DataFrame | None = None) -> dict[str, Any]:
    """The summary of a stored run, from its manifest (spec, environment, settings) and raw tables."""
    foreground = tasks[tasks["role"] == "foreground"] if "role" in tasks else tasks
    reference = tasks[tasks["role"] == "reference"] if "role" in tasks else None
    ctx = context(manifest["spec"], manifest["environment"], manifest.get("settings"))
    summary = summarize(foreground, samples, ctx, reference)
    if oncpu is not None:
        contention = contention if contention is not None else pd.DataFrame(columns=["t", "pid", "contention"])
        summary["gil_probe"] = gil_probe_summary(oncpu, contention, foreground,
                                                 (manifest.get("settings") or {}).get("gil_probe_cost"))
    return summary
