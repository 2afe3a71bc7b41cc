"""A run's summary: pure functions from its stored tables and manifest to the numbers. No I/O.

The summary is stamped with ANALYSIS_VERSION: raise it whenever a change here changes a number, so
`python -m harness summarize` can tell which stored summaries are older than this analysis.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.analysis import hosts, loop
from harness.analysis.cpu import cpu_seconds_between, steal_seconds_between, stopped_seconds
from harness.analysis.gil import gil_handoffs, gil_holder_bands
from harness.analysis.load import behind_sentence, load_figures, saturation_sentence
from harness.analysis.mix import per_task
from harness.analysis.resources import memory, round_trips
from harness.analysis.timing import contended_windows, dispatch_gaps, max_overlap, with_timings
from harness.analysis.trust import (
    INFLATION_LIMIT,
    disturbance_note,
    is_disturbed,
    unsteadiness,
    unsteady_note,
    was_stopped,
)
from harness.model.brokers import broker
from harness.model.drivers import driver
from harness.model.pools import CPU_KINDS, executor_threads, pool
from harness.model.spec import RunSpec
from harness.model.workloads import PART_CPU_KINDS, workload
from harness.results.records import Environment, GilProbe, Load, Role, RunManifest, RunSettings, Summary
from harness.results.run_folder import tasks_of

# 1: serial time inferred (own CPU of fixed-work tasks, else tasks x duration).
# 2: serial time measured from the reference task run alone; work inflation.
# 3: GIL holds measured only while two or more tasks ran at once (gil_contended_s); memory (RSS, USS);
#    alone_cpu_share, task_stretch; mixed and own work.
# 4: other processes' cores while the tasks ran (other_cores_used) and whether that disturbed the run.
# 5: how long the worker stood stopped (worker_stopped_s, from the sampled process states); a run whose
#    worker was stopped for a twentieth of it is disturbed, and its lost time is not blamed on the GIL.
# 6: the reference is the median of every task run alone (before the batch, after it, between the waves of a
#    long one); their spread is the machine's drift (machine_drift); the hypervisor's steal (steal_cores); a
#    run is UNSTEADY when the machine's speed changed under it (harness.analysis.trust); a long batch's
#    makespan leaves out the task run alone between its waves.
# 7: the user's app's mix (APP=, CALLS=): no serial reference, figures per task name (per_task); latency p50; the
#    SERIAL note (a pool that overlaps waits ran them one at a time: serial_waits).
# 8: the CPU of the servers the tasks waited on (the run's PostgreSQL, its HTTP service: service_cores_used), apart
#    from other processes'; the SERVER-BOUND note.
# 9: THE BROKER'S GAP note (a green pool's seconds-long dispatch gap on Redis is the transport's, not the pool's).
# 10: the event loop's lag (loop_lag_*, from loop_lag.csv) and the longest a task held it (loop_block_max_s); the
#     LOOP BLOCKED, ASYNCIO.RUN and EXECUTOR notes; the asyncio pool's ideal for a plain function is its executor's.
# 11: a run on several hosts (HOSTS=): per host its tasks, cores used, machine and clock (hosts); the HOSTS and CLOCKS
#     notes; CPU keyed by host and pid.
ANALYSIS_VERSION = 11
# Tasks whose own CPU is below this share of their run time mostly wait (for serial_waits).
MOSTLY_WAITS = 0.5
# A busy_wait run is called phantom when the tasks "running" at once exceed the cores they got
# by at least this much: half a core is well above a 2-core machine's noise.
PHANTOM_MARGIN_CORES = 0.5


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
    physical_cores: int | None = None  # the machine's cores, not counting SMT siblings (None: as many as `cores`)
    driver: str | None = None  # the db workload's driver (harness.model.drivers)
    broker: str = "redis"  # the tasks' broker (harness.model.brokers)

    def gil_free(self, gil_enabled_tasks: int) -> bool:
        """Whether the tasks ran without a GIL: a free-threaded worker, not asked for one, and no task saw it on
        (a C extension not marked safe turns it back on)."""
        return self.free_threaded and self.gil != "on" and not gil_enabled_tasks

    @property
    def wall_clock(self) -> bool:
        """The workload finishes on the wall clock whether or not it got the CPU (its speedup may be phantom)."""
        return workload(self.workload).wall_clock


@dataclass(frozen=True)
class Alone:
    """The serial reference: the tasks run alone (before, between the waves of, and after the batch) that
    ran without error, their median run time and own CPU, and how far apart they were."""

    run_s: float
    cpu_s: float
    runs_s: tuple[float, ...]

    @property
    def drift(self) -> float | None:
        """The range of the times alone over their median: how much the machine's speed moved during the
        run; None with a single one (runs stored before analysis 6)."""
        if len(self.runs_s) < 2 or self.run_s <= 0:
            return None
        return (max(self.runs_s) - min(self.runs_s)) / self.run_s


def references(reference: pd.DataFrame | None) -> pd.DataFrame:
    """The tasks run alone that ran without error, in the order they ran."""
    if reference is None or reference.empty:
        return pd.DataFrame(columns=["submitted", "started", "finished", "cpu_s"])
    ok = reference[reference["error"].isna()] if "error" in reference else reference
    return ok.sort_values("submitted")


def alone(reference: pd.DataFrame | None) -> Alone | None:
    """The run's serial reference, where it has one."""
    refs = references(reference)
    if refs.empty:
        return None
    runs = (refs["finished"] - refs["started"]).astype(float)
    return Alone(float(runs.median()), float(refs["cpu_s"].astype(float).median()), tuple(runs))


def batch_windows(tasks: pd.DataFrame, reference: pd.DataFrame | None) -> list[tuple[float, float]]:
    """The spans during which the measured tasks ran, first submit to last finish: one, or one per part
    of a long batch, whose parts a task run alone separated (its time belongs to no pool)."""
    alone_at = reference["submitted"] if reference is not None else []  # one that raised cut the batch all the same
    cuts = sorted(float(x) for x in alone_at if tasks["submitted"].min() < x < tasks["finished"].max())
    windows, rest = [], tasks
    for cut in cuts:
        part, rest = rest[rest["submitted"] < cut], rest[rest["submitted"] >= cut]
        if len(part):
            windows.append((float(part["submitted"].min()), float(part["finished"].max())))
    if len(rest):
        windows.append((float(rest["submitted"].min()), float(rest["finished"].max())))
    return windows


# When a run's tasks alone ran, by how many there were (and say so in the console).
WHEN_ALONE = {2: "before and after", 3: "before, between the parts of, and after the batch"}


def serial_seconds(tasks: pd.DataFrame, ctx: RunContext, reference: pd.DataFrame | None = None) -> tuple[float, str]:
    """How long the same tasks would take run one at a time, and what that figure rests on.

    Measured where the run has a reference (schema version 3 on): the same task run alone on the same
    worker, before the batch and after it (analysis 6 on), so the figure holds on every build. The tasks'
    own CPU would not: on a free-threaded build threads that contend burn more CPU for the same work,
    and a speedup from CPU time then reports the cores as busy, not the work as done.

    Older folders have no reference: a fixed-work task alone takes its own CPU time, and a
    wall-clock spin (busy_wait) or an I/O task its nominal duration.
    """
    if workload(ctx.workload).mix:
        return float("nan"), "a mix of your calls: none is the work alone; pools compare by tasks/s on one replay"
    one = alone(reference)
    if one is not None:
        n = len(one.runs_s)
        return ctx.tasks * one.run_s, ("tasks x one task run alone (measured)" if n == 1 else
                                       f"tasks x the median of {n} tasks run alone (measured {WHEN_ALONE[min(n, 3)]})")
    if workload(ctx.workload).fixed_work and tasks["cpu_s"].notna().all():
        return float(tasks["cpu_s"].sum()), "own CPU time of the tasks"
    return ctx.tasks * ctx.duration, "tasks x duration"


def work_inflation(tasks: pd.DataFrame, ctx: RunContext, reference: pd.DataFrame | None) -> float | None:
    """Mean own CPU of a task in the batch over the own CPU of the same task alone; fixed work only.

    1 when the work is the same however many run at once; above 1 when each task burned more CPU
    for the same work (contention, or a machine that slowed), below 1 when the machine sped up. Only
    fixed work has a fixed amount to compare (a spin or a sleep does not).
    """
    one = alone(reference)
    if one is None or not workload(ctx.workload).fixed_work or not tasks["cpu_s"].notna().all():
        return None
    return float(tasks["cpu_s"].mean() / one.cpu_s) if one.cpu_s > 0 else None


def shares_nothing(ctx: RunContext, max_running: int) -> bool:
    """Whether the run's tasks could not have contended with each other: a pool that runs them one at a time
    or in processes of their own, tasks that never overlapped, or work that touches only its own objects; and
    never more of them at once than the machine has physical cores (beyond those, two tasks share a core's
    SMT siblings, and each runs slower for it, steadily). Their CPU beyond (or below) the same task's alone
    is then the machine's speed changing, never contention."""
    if max_running <= 1:
        return True
    if max_running > (ctx.physical_cores or ctx.cores):
        return False
    return pool(ctx.pool).isolates_tasks or not workload(ctx.workload).may_share


def summarize(tasks: pd.DataFrame, samples: pd.DataFrame, ctx: RunContext,
              reference: pd.DataFrame | None = None) -> Summary:
    """The run's summary numbers (see README, 'How to read the numbers').

    `tasks` are the measured tasks; `reference` the tasks run alone (before, between the parts of and after
    the batch), where the run has them.
    """
    t = with_timings(tasks)
    ok = t[t["error"].isna()] if "error" in t else t
    t0, t1 = float(t["submitted"].min()), float(t["finished"].max())
    windows = batch_windows(t, reference)
    makespan = sum(end - start for start, end in windows)
    serial, serial_basis = serial_seconds(t, ctx, reference)
    one = alone(reference)
    speedup = serial / makespan if makespan > 0 else float("nan")
    gil_seen = t["gil_enabled"].dropna().astype(bool) if "gil_enabled" in t else pd.Series(dtype=bool)
    gil_free = ctx.gil_free(int(gil_seen.sum()))
    ideal = pool(ctx.pool).ideal_speedup(ctx.kind, ctx.concurrency, ctx.tasks, ctx.cores, gil_free, ctx.cpu_fraction,
                                         ctx.workers, coroutine=workload(ctx.workload).awaited(ctx.driver))
    busy = float(t["run_s"].sum())
    mean_running = busy / makespan if makespan > 0 else float("nan")
    cpu_known = t["cpu_s"].notna().all()
    cpu_share = float(t["cpu_s"].sum() / busy) if cpu_known and busy > 0 else float("nan")
    intervals = sorted(set(float(x) for x in t["switch_interval"].dropna()))

    fields: dict[str, Any] = {
        "tasks_done": int(len(ok)),
        "tasks_failed": int(len(t) - len(ok)),
        "makespan_s": makespan,
        # When the batch began (epoch s): a sweep compares each run with its solo baseline nearest in time.
        "batch_started_t": t0,
        "throughput_per_s": len(t) / makespan if makespan > 0 else float("nan"),
        "serial_s": serial,
        "serial_basis": serial_basis,
        "alone_s": one.run_s if one is not None else None,
        "alone_cpu_s": one.cpu_s if one is not None else None,
        # Every time alone, in the order they ran, and their range over their median: the machine's drift.
        "alone_runs_s": list(one.runs_s) if one is not None else None,
        "machine_drift": one.drift if one is not None else None,
        # How much of a task's time alone was its own CPU: the share the GIL can take from it.
        "alone_cpu_share": _share(one.cpu_s, one.run_s) if one is not None else None,
        # How much longer a task ran beside the others than alone: what the GIL, the event loop or
        # contention took from each task (for CPU work most of it is the GIL wait below).
        "task_stretch": _share(t["run_s"].mean(), one.run_s) if one is not None else None,
        "work_inflation": work_inflation(t, ctx, reference),
        "shares_nothing": shares_nothing(ctx, max_overlap(t)),
        "speedup": speedup,
        "ideal_speedup": ideal,
        "efficiency": speedup / ideal if ideal and np.isfinite(speedup) else None,
        "cores": ctx.cores,
        "mean_tasks_running": mean_running,
        "max_tasks_running": max_overlap(t),
        **cpu_use(samples, windows, ctx.cores),
        "task_cpu_s": float(t["cpu_s"].sum()) if cpu_known else None,
        "task_cpu_share": cpu_share,
        "queue_wait_p50_s": float(t["queue_wait_s"].quantile(0.5)),
        "queue_wait_p95_s": float(t["queue_wait_s"].quantile(0.95)),
        "run_time_p50_s": float(t["run_s"].quantile(0.5)),
        "run_time_p95_s": float(t["run_s"].quantile(0.95)),
        # What a caller waits: submit to finish.
        "latency_p95_s": float((t["finished"] - t["submitted"]).quantile(0.95)),
        "latency_p50_s": float((t["finished"] - t["submitted"]).quantile(0.5)),
        # The user's app's mix: the same figures per task name.
        "per_task": per_task(t, makespan) if workload(ctx.workload).mix else None,
        "slots_used": int(t["slot"].nunique()),
        "switch_intervals_seen": intervals,
        "switch_interval_ok": bool(intervals) and all(np.isclose(x, ctx.switch_interval) for x in intervals),
    }
    fields.update(_waits(t, ctx, busy, mean_running, cpu_share if cpu_known else None))
    fields["gil_enabled_tasks"] = int(gil_seen.sum()) if len(gil_seen) else None
    fields.update(memory(samples, t0, t1))
    summary = Summary(**fields)
    summary = dataclasses.replace(summary, **unsteadiness(summary))
    summary.notes = notes(summary, ctx)
    return summary


def cpu_use(samples: pd.DataFrame, windows: list[tuple[float, float]], cores: int) -> dict[str, Any]:
    """Cores used while the measured tasks ran (`windows`) by the worker, by the whole machine, and by other
    processes: what neither the worker nor the lab (harness, broker) used; None where the lab's own processes
    were not sampled (runs stored before analysis 4) or too few samples fell in a short run. Whether that
    disturbed the run. The cores the hypervisor took for other guests (steal; None where not sampled)."""
    span = sum(end - start for start, end in windows)

    def used(kind: str) -> float:
        return sum(cpu_seconds_between(samples, start, end, kind) for start, end in windows)

    tree_cpu = used("process") if not samples.empty else float("nan")
    machine_cpu = used("core") if not samples.empty else float("nan")
    lab_sampled = not samples.empty and bool((samples["kind"] == "lab").any())
    lab_cpu = used("lab") if lab_sampled else float("nan")
    # The servers the tasks waited on (the run's PostgreSQL or HTTP service): their CPU is the tasks' doing.
    service_sampled = not samples.empty and bool((samples["kind"] == "service").any())
    service_cpu = used("service") if service_sampled else 0.0
    other = (machine_cpu - tree_cpu - lab_cpu - service_cpu) / span if lab_sampled and span > 0 else float("nan")
    other_cores = max(0.0, other) if np.isfinite(other) else None
    stopped_parts = [stopped_seconds(samples, start, end) for start, end in windows]
    stopped = None if None in stopped_parts else sum(x for x in stopped_parts if x is not None)
    stolen = [steal_seconds_between(samples, start, end) for start, end in windows]
    steal = sum(x for x in stolen if x is not None) / span if span > 0 and all(x is not None for x in stolen) else None
    return {"mean_cores_used": tree_cpu / span if span > 0 else float("nan"),
            "machine_cores_used": machine_cpu / span if span > 0 else float("nan"),
            "other_cores_used": other_cores, "worker_stopped_s": stopped, "steal_cores": steal,
            "service_cores_used": service_cpu / span if service_sampled and span > 0 else None,
            "disturbed": is_disturbed(other_cores, cores, stopped, span), "worker_cpu_s": tree_cpu}


def _waits(t: pd.DataFrame, ctx: RunContext, busy: float, mean_running: float,
           cpu_share: float | None) -> dict[str, Any]:
    """What the tasks waited for: the GIL (CPU work), round trips, free slots, the second start; and
    whether busy_wait's parallelism was phantom. Summary fields, by name."""
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
    out["phantom"] = bool(ctx.wall_clock and phantom_cores >= PHANTOM_MARGIN_CORES)
    out["phantom_cores"] = phantom_cores if ctx.wall_clock else None
    return out


def _share(part: float, whole: float) -> float | None:
    return float(part / whole) if whole > 0 and pd.notna(part) else None


def notes(summary: Summary, ctx: RunContext) -> list[str]:
    """Plain-language reading of the summary: what a teacher would point at."""
    out = [disturbance_note(summary)] if summary.disturbed else []
    if summary.unsteady:
        out.append(unsteady_note(summary))
    # Tasks beyond the cores take turns on them whatever the pool: only the cores they could have
    # had and did not get are the GIL's (or the event loop's) doing.
    running, used = summary.mean_tasks_running, summary.mean_cores_used
    gap = min(running, ctx.cores) - used
    gil_free = ctx.gil_free(summary.gil_enabled_tasks or 0)
    if summary.phantom:
        out.append(
            f"PHANTOM PARALLELISM: on average {summary.mean_tasks_running:.1f} {ctx.workload} tasks were "
            f"'running' at once, but they got {summary.mean_tasks_running * summary.task_cpu_share:.1f} "
            "cores between them. A wall-clock spin stops on time whether or not it got the CPU: "
            "measure CPU, not wall time (use the `cpu` workload).")
    if ctx.kind in CPU_KINDS and gap >= PHANTOM_MARGIN_CORES and not summary.phantom:  # a GIL, or one OS thread
        who = ("the worker being stopped" if was_stopped(summary.worker_stopped_s, summary.makespan_s) else
               "other processes on the machine" if summary.disturbed else
               "locks the tasks share, or the OS (no GIL on this worker)" if gil_free else pool(ctx.pool).waiter)
        out.append(f"{running:.1f} tasks running on average but {used:.1f} cores used: "
                   f"{who} took the difference.")
    elif ctx.kind in CPU_KINDS and running - ctx.cores >= PHANTOM_MARGIN_CORES and not summary.phantom:
        out.append(f"{running:.1f} tasks running on average on {ctx.cores} cores: they took turns on the cores "
                   "(more tasks than cores), which no pool can avoid.")
    serial = serial_waits(summary, ctx)
    if serial:
        out.append(serial)
    server = workload(ctx.workload).server
    if server and summary.service_cores_used is not None and summary.service_cores_used >= SERVER_BOUND * ctx.cores:
        out.append(f"SERVER-BOUND: the run's {server} used {summary.service_cores_used:.1f} of the machine's "
                   f"{ctx.cores} cores while the tasks ran: its CPU, not the pool, limited the speedup (the tasks "
                   "only waited for it).")
    share = summary.alone_cpu_share
    if ctx.kind in PART_CPU_KINDS and share is not None:
        # Such a task waits on purpose part of the time: it wants its share of a core while it runs.
        wanted = min(summary.mean_tasks_running * share, ctx.cores)
        if wanted - summary.mean_cores_used >= PHANTOM_MARGIN_CORES:
            out.append(f"{summary.mean_tasks_running:.1f} tasks running on average, each {share:.0%} CPU alone, "
                       f"wanted {wanted:.1f} cores but got {summary.mean_cores_used:.1f}: "
                       f"{pool(ctx.pool).waiter} (or the cores) took the difference.")
    inflation = summary.work_inflation
    if inflation is not None and inflation > INFLATION_LIMIT and not summary.shares_nothing:
        out.append(f"WORK INFLATION {inflation:.2f}x: each task used {inflation:.2f}x the CPU it used alone. The cores "
                   "were busy but the work did not go faster: the tasks contended (for an object they share, on a "
                   "free-threaded build; for SMT siblings or memory bandwidth).")
    if summary.efficiency is not None and summary.efficiency < 0.7:
        out.append(f"Speedup {summary.speedup:.2f}x is {summary.efficiency:.0%} of the ideal "
                   f"{summary.ideal_speedup}x for {ctx.pool} on {ctx.kind} work.")
    gil_on = summary.gil_enabled_tasks
    if gil_on and ctx.gil_free(0):
        out.append(f"THE GIL WAS ON in {gil_on} of {summary.tasks_done + summary.tasks_failed} tasks on a "
                   "free-threaded worker that did not ask for it: a C extension not marked free-threading-safe "
                   "turned it back on (the worker's log names it).")
    if not summary.switch_interval_ok:
        out.append(f"WARNING: tasks saw switch intervals {summary.switch_intervals_seen}, "
                   f"not the requested {ctx.switch_interval:g} s.")
    gap_note = broker_gap_note(summary, ctx)
    if gap_note:
        out.append(gap_note)
    if summary.tasks_failed:
        out.append(f"{summary.tasks_failed} task(s) raised an error: see the error column of tasks.csv.")
    return out


# A free slot that waited this long for queued work waited on the transport, not on the tasks.
BROKER_GAP_S = 1.0


def broker_gap_note(summary: Summary, ctx: RunContext) -> str:
    """Where the broker, not the pool, explains a loss: a green pool on Redis whose free slots waited seconds for
    queued work (its synloop's 2 s wait on a polling transport at a prefetch limit). "" otherwise."""
    gap = summary.dispatch_gap_max_s
    if gap is None or gap < BROKER_GAP_S or not pool(ctx.pool).green or broker(ctx.broker).pushes:
        return ""
    return (f"THE BROKER'S GAP: free slots waited up to {gap:.2f} s for queued work. That is Redis's transport "
            f"with {ctx.pool}'s synloop at a prefetch limit (it asks for more only between 2 s waits), not the pool: "
            "through RabbitMQ, which pushes messages, the same pool's gap was milliseconds (experiments/brokers.toml). "
            "Use PREFETCH=0 (the lab's default for green pools) or BROKER=rabbitmq.")


# The server the tasks waited on limited them when it used at least this share of the machine's cores.
SERVER_BOUND = 0.75
# A pool that overlaps waits "ran them serially" when the tasks running at once stayed below this while each task
# mostly waited: far from the slots it had, near one at a time.
SERIAL_RUNNING = 1.5
# A speedup below SERIAL_RUNNING says "serial" only with this many slots or more: with 2 or 3 a pool's dispatch alone
# can hold a fair run near it.
SERIAL_SLOTS = 4


def ran_waits_serially(pool_name: str, slots: int, tasks: int, max_running: float, mean_running: float,
                       cpu_share: float, speedup: float = float("nan")) -> bool:
    """Whether a pool that overlaps waits ran tasks that mostly wait about one at a time: never two at once (a
    worker slow to hand out tasks, green pools' 2 s dispatch gap at prefetch 1, still starts its first ones
    together; a wait that blocks the worker lets no second task begin until the first has ended), or, with
    SERIAL_SLOTS slots or more, hardly faster than one at a time. The second because a task's recorded start is
    not its wait's: on a green pool a task that yields before its blocking wait (a socket, a child process: ctypes'
    find_library runs one) counts as running while another's wait blocks the hub (such a wait in C under gevent at
    128 slots: 2.2 "running" on average, 9 at most, 1.3x one at a time)."""
    rules = pool(pool_name)
    if "io" not in (rules.parallel_kinds or ()) or slots < 2 or tasks < 2 or not cpu_share < MOSTLY_WAITS:
        return False
    return bool((max_running <= 1 and mean_running < SERIAL_RUNNING)
                or (slots >= SERIAL_SLOTS and speedup < SERIAL_RUNNING))


def serial_waits(summary: Summary, ctx: RunContext) -> str | None:
    """The green trap, said from the measurements: a pool that should overlap waits ran its waiting tasks about one at
    a time. The cause is the code the tasks wait in (for the db workload, its driver): a wait that blocks the OS
    thread blocks every greenlet of a green pool, and one that holds the GIL every thread of a threads pool."""
    rules = pool(ctx.pool)
    slots = ctx.concurrency * ctx.workers
    if ctx.kind not in ("io", "own") or not ran_waits_serially(ctx.pool, slots, ctx.tasks, summary.max_tasks_running,
                                                                 summary.mean_tasks_running, summary.task_cpu_share,
                                                                 summary.speedup):
        return None
    code = (f"the {ctx.driver} driver" if ctx.driver else "the code your task waits in" if ctx.kind == "own"
            else f"the code the {ctx.workload} tasks wait in")
    # On the asyncio pool a sync driver's waits run in the executor's threads: the GIL's case, not the loop's.
    in_threads = rules.awaits and ctx.driver is not None and not driver(ctx.driver).coroutine
    how = ("does not yield to the event loop while it waits, so each wait blocked every task"
           if rules.loop and not in_threads else "holds the GIL while it waits, so each wait blocked every thread")
    others = ""
    if ctx.driver:
        from harness.model.drivers import DRIVERS, fits

        kind = DRIVERS[ctx.driver].kind
        same = [d for d in DRIVERS if d != ctx.driver and fits(d, kind, rules.green, rules.awaits)]
        others = f"; {' or '.join(same)} may overlap the waits (measure them)" if same else ""
    ran = (f"ran {summary.mean_tasks_running:.1f} tasks at once" if summary.max_tasks_running <= 1 else
           f"gained {summary.speedup:.1f}x over one at a time")
    return (f"SERIAL: {rules.name} {ran} on {ctx.workload} work of {slots} slots, each task "
            f"{summary.task_cpu_share:.0%} CPU: {code} {how}{others}.")


def context(spec: RunSpec, environment: Environment, settings: RunSettings) -> RunContext:
    """The RunContext of a stored run: its spec, the cores it could use (recorded in its environment),
    and the worker's interpreter (recorded in its settings)."""
    return RunContext(pool=spec.pool, workload=spec.workload, kind=workload(spec.workload).kind,
                      concurrency=spec.concurrency, tasks=spec.tasks, duration=spec.duration,
                      switch_interval=spec.switch_interval, cores=environment.cores,
                      free_threaded=settings.free_threaded, gil=spec.gil, cpu_fraction=spec.cpu_fraction,
                      workers=spec.workers, physical_cores=environment.physical_cores,
                      driver=getattr(spec, "driver", None), broker=getattr(spec, "broker", None) or "redis")


def _with_load(summary: Summary, ctx: RunContext, foreground: pd.DataFrame, rate: float, load_time_s: float,
               warmup_s: float, queue: pd.DataFrame | None) -> Summary:
    """An open-loop load's summary: its figures (harness.analysis.load), and no speedup. The makespan of tasks that
    arrived over LOAD_TIME measures the schedule, not the pool: how the pool held the rate is in its latency and
    whether it saturated."""
    figures = load_figures(foreground, rate, load_time_s, warmup_s, queue)
    summary = dataclasses.replace(summary, speedup=float("nan"), efficiency=None, load=Load.from_dict(figures),
                                  serial_basis="an open-loop load: judged by its latency at the rate, not a speedup")
    said = [s for s in (saturation_sentence(figures), behind_sentence(figures, rate)) if s]
    summary.notes = said + notes(summary, ctx)
    return summary


def gil_probe_summary(oncpu: pd.DataFrame, contention: pd.DataFrame, foreground: pd.DataFrame,
                      cost: dict[str, Any] | None) -> GilProbe:
    """The GIL probes' figures while two or more measured tasks ran at once, with what the probes cost."""
    bands = gil_holder_bands(oncpu)
    return GilProbe.from_dict({
        **gil_handoffs(bands, contended_windows(foreground)),
        "contention_mean": float(contention["contention"].mean()) if len(contention) else None,
        **(cost or {}),
    })


def with_loop(summary: Summary, ctx: RunContext, foreground: pd.DataFrame, lag: pd.DataFrame | None) -> Summary:
    """The event loop's figures (a pool with a loop: its lag; the asyncio pool: the longest a task held it) and how
    coroutine tasks ran, with their notes ahead of the others."""
    rules = pool(ctx.pool)
    said: list[str | None] = []
    if len(foreground):
        start, end = float(foreground["started"].min()), float(foreground["finished"].max())
        lag_seen = loop.loop_lag(lag, start, end)
        hold = loop.longest_hold(foreground)
        if lag_seen is not None:
            summary = dataclasses.replace(summary, loop_lag_mean_s=lag_seen.mean_s, loop_lag_p95_s=lag_seen.p95_s,
                                          loop_lag_max_s=lag_seen.max_s)
        if hold is not None:
            summary = dataclasses.replace(summary, loop_block_max_s=hold[0])
        ran = loop.how_ran(foreground)
        by_run = foreground[foreground["ran"] == "asyncio.run"] if "ran" in foreground else foreground.iloc[:0]
        cpu_median = float(by_run["cpu_s"].median()) if len(by_run) else None
        said = [loop.blocked_note(lag_seen, hold, rules.loop or ""), loop.asyncio_run_note(ran, ctx.pool, cpu_median),
                loop.executor_note(ran, executor_threads(ctx.cores))]
    summary.notes = [s for s in said if s] + summary.notes
    return summary


def summarize_run(manifest: RunManifest, tasks: pd.DataFrame, samples: pd.DataFrame,
                  oncpu: pd.DataFrame | None = None, contention: pd.DataFrame | None = None,
                  queue: pd.DataFrame | None = None, lag: pd.DataFrame | None = None) -> Summary:
    """The summary of a stored run, from its manifest (spec, environment, settings) and raw tables."""
    foreground = tasks_of(tasks, Role.FOREGROUND)
    reference = tasks_of(tasks, Role.REFERENCE) if "role" in tasks else None
    ctx = context(manifest.spec, manifest.environment, manifest.settings)
    summary = summarize(foreground, samples, ctx, reference)
    spec = manifest.spec
    if spec.rate is not None and "scheduled" in foreground and len(foreground):
        summary = _with_load(summary, ctx, foreground, spec.rate, float(spec.load_time or 0),
                             float(spec.warmup or 0), queue)
    if oncpu is not None:
        contention = contention if contention is not None else pd.DataFrame(columns=["t", "pid", "contention"])
        summary.gil_probe = gil_probe_summary(oncpu, contention, foreground, manifest.settings.gil_probe_cost)
    summary = with_loop(summary, ctx, foreground, lag)
    fleet = manifest.settings.extra.get("fleet")
    if spec.hosts and isinstance(fleet, dict) and len(foreground):
        summary = with_hosts(summary, ctx, spec, foreground, samples, fleet)
    return summary


def with_hosts(summary: Summary, ctx: RunContext, spec: RunSpec, foreground: pd.DataFrame, samples: pd.DataFrame,
               fleet: dict[str, Any]) -> Summary:
    """HOSTS: the figures per host, the HOSTS note, and CLOCKS where a host's clock is known too loosely."""
    rows = hosts.per_host(foreground, samples, fleet, spec.host_names,
                          {i: str(spec.host_of(i)) for i in range(1, spec.workers + 1)})
    shortest = float((foreground["finished"] - foreground["started"]).min())
    said = [hosts.hosts_note(rows, fleet.get("harness_clock"), ctx.cores),
            hosts.clock_note(rows, shortest, fleet.get("harness_clock"))]
    summary = dataclasses.replace(summary, hosts=rows)
    summary.notes = summary.notes + [s for s in said if s]
    return summary
