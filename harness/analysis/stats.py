"""Statistics over repeats: pure functions on DataFrames of run summaries. No I/O."""
from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.trust import bootstrap_interval
from harness.model.pools import BASELINE_POOL  # every other is compared with it, cell against cell
from harness.model.spec import RunSpec
from harness.results.records import Cell, stored_spec
from harness.results.sweep_folder import SweepRun

# Summary fields that are compared across cells and repeats.
METRICS = ["makespan_s", "throughput_per_s", "speedup", "ideal_speedup", "efficiency", "mean_tasks_running",
           "mean_cores_used", "queue_wait_p50_s", "run_time_p50_s", "run_time_p95_s", "gil_wait_mean_s",
           "second_start_delay_s", "rtt_mean_s", "rtt_max_s", "phantom_cores", "dispatch_gap_p50_s",
           "dispatch_gap_max_s", "work_inflation", "latency_p95_s", "rss_peak_mib", "uss_peak_mib", "pss_peak_mib",
           "task_stretch",
           "alone_cpu_share", "gil_wait_fraction", "other_cores_used", "machine_drift", "steal_cores", "vs_solo",
           # whether a pool ran waiting tasks one at a time (harness.analysis.summary.ran_waits_serially), and the CPU
           # of the server they waited on
           "max_tasks_running", "task_cpu_share", "service_cores_used",
           # an open-loop load's (harness.analysis.load): latency from the schedule, what finished, whether it held
           "load_offered_rate", "load_finish_rate", "load_backlog_growth_per_s", "load_saturated",
           "load_latency_p50_s", "load_latency_p99_s", "load_submit_late_p99_s",
           # a pool with an event loop: how late it woke its timers; and the worker's CPU for its tasks
           "loop_lag_p95_s", "loop_lag_max_s", "worker_cpu_s", "tasks_done"]
# Repeats of a cell "disagree widely" when the range of one of these exceeds this share of the
# median and also its floor: an I/O cell's 0.01 vs 0.03 cores is noise, not disagreement.
STABLE_METRICS = {"makespan_s": 0.05, "speedup": 0.1, "mean_cores_used": 0.1}
SPREAD_WARNING = 0.25


def cell_spec(cell: Cell) -> RunSpec:
    """The settings a cell gave, typed, as given: a setting it left out reads as its default, and one derived
    from the others as None (it was derived when the run ran: harness.results.records.stored_spec). Not
    validated again, so a cell of an older lab still reads."""
    return stored_spec(cell.settings)[0]


def runs_table(runs: list[SweepRun], axes: list[str]) -> pd.DataFrame:
    """One row per finished run: cell, repeat, axis values and summary metrics.

    `runs` are a sweep's entries (harness.results.sweep_folder.Sweep.entries); a run without a summary (not
    complete) has no row. The axes are columns named after settings, read from each cell's settings as given.
    """
    rows = []
    for r in runs:
        summary = r.summary
        if summary is None:
            continue
        row = {"cell": r.entry.cell, "repeat": r.entry.repeat, **{a: r.settings[a] for a in axes}}
        row.update({m: summary.metric(m) for m in METRICS})
        row["disturbed"] = bool(summary.disturbed)
        row["unsteady"] = bool(summary.unsteady)
        row["reliable"] = not (row["disturbed"] or row["unsteady"])
        row["batch_started_t"] = summary.batch_started_t
        rows.append(row)
    return pd.DataFrame(rows, columns=["cell", "repeat", *axes, *METRICS, "disturbed", "unsteady", "reliable",
                                       "batch_started_t"])


def against_nearest_baseline(runs: pd.DataFrame, cells: list[Cell]) -> pd.Series:
    """Per run: its tasks/s over that of the solo run of the same work nearest to it in time (NaN without
    one). On a machine whose speed drifts, a ratio between runs seconds apart holds where one between cells'
    medians, measured minutes apart, does not; a cell's figure is the median of its runs' ratios. The same
    work here is the same work settings and the same task length (tasks/s over tasks/s allows other counts);
    a solo run marked disturbed or unsteady is no baseline."""
    from harness.model.experiment import work_key

    by_number = {c.cell: c for c in cells}
    specs = {n: cell_spec(c) for n, c in by_number.items()}

    def same_work(n: int) -> tuple[tuple[str, ...], tuple[str, str]]:
        # The task length: the duration (the background tasks' follows from it) and the background tasks.
        return work_key(by_number[n].settings), (str(specs[n].duration), str(specs[n].background_tasks))

    work = runs["cell"].map(same_work)
    is_base = runs["cell"].map(lambda n: specs[n].pool == BASELINE_POOL)
    if "reliable" in runs:
        usable = runs["reliable"].fillna(True).astype(bool)
    else:
        usable = pd.Series(True, index=runs.index)
    out = pd.Series(np.nan, index=runs.index, dtype=float)
    for key in set(work):
        same = runs[work == key]
        base = same[is_base[same.index] & usable[same.index] & same["batch_started_t"].notna()]
        if base.empty:
            continue
        for idx, row in same.iterrows():
            if is_base[idx] or pd.isna(row["batch_started_t"]) or not row["throughput_per_s"]:
                continue
            nearest = base.loc[(base["batch_started_t"] - row["batch_started_t"]).abs().idxmin()]
            if nearest["throughput_per_s"]:
                out[idx] = float(row["throughput_per_s"]) / float(nearest["throughput_per_s"])
    return out


def cell_stats(runs: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Per cell: n, the median, 25th and 75th percentiles of every metric, a bootstrap interval of the
    median speedup (from two repeats), how many repeats were disturbed, and a spread warning."""
    rows = []
    for cell, group in runs.groupby("cell", sort=True):
        row = {"cell": cell, **{a: group[a].iloc[0] for a in axes}, "n": len(group)}
        row["speedup_ci_low"], row["speedup_ci_high"] = bootstrap_interval(pd.to_numeric(group["speedup"]))
        row["disturbed"] = int(group["disturbed"].sum()) if "disturbed" in group else 0
        row["unsteady"] = int(group["unsteady"].sum()) if "unsteady" in group else 0
        warnings = []
        for m in METRICS:
            values = pd.to_numeric(group[m], errors="coerce").dropna()
            if values.empty:
                row[m] = row[f"{m}_q25"] = row[f"{m}_q75"] = np.nan
                continue
            row[m] = float(values.median())
            row[f"{m}_q25"] = float(values.quantile(0.25))
            row[f"{m}_q75"] = float(values.quantile(0.75))
            if m in STABLE_METRICS and len(values) > 1 and row[m]:
                spread_abs = float(values.max() - values.min())
                spread = spread_abs / abs(row[m])
                if spread > SPREAD_WARNING and spread_abs > STABLE_METRICS[m]:
                    warnings.append(f"{m} varies by {spread:.0%} over {len(values)} repeats")
        row["warning"] = "; ".join(warnings)
        rows.append(row)
    return pd.DataFrame(rows)


# Settings every sweep table shows beside its axes: how the slots were arranged. A cell's concurrency
# can follow from another axis ("N/workers"), and a figure of topologies needs both.
SHAPE = ("concurrency", "workers")


def sweep_table(entries: list[SweepRun], axes: list[str], cells: list[Cell]) -> pd.DataFrame:
    """summary.csv of a sweep: one row per cell (with its label), from its entries' run summaries."""
    columns = [*axes, *(c for c in SHAPE if c not in axes and all(c in e.settings for e in entries))]
    runs = runs_table(entries, columns)
    if not runs.empty:
        runs["vs_solo"] = against_nearest_baseline(runs, cells)
    table = cell_stats(runs, columns) if not runs.empty else runs
    labels = {c.cell: c.label for c in cells}
    if not table.empty:
        table.insert(1, "label", table["cell"].map(labels))
    return table.copy()  # one block: cell_stats builds it a column at a time, which pandas warns of when read on


def latencies_by_cell(foregrounds: list[tuple[str, pd.DataFrame]]) -> dict[str, pd.Series]:
    """Per-task latency (submit to finish) of the measured tasks, pooled over repeats, per cell label."""
    out: dict[str, list] = {}
    for label, tasks in foregrounds:
        out.setdefault(label, []).append(tasks["finished"] - tasks["submitted"])
    return {label: pd.concat(parts, ignore_index=True) for label, parts in out.items()}


# A pool "keeps up" while its speedup is within this share of the best pool's at the same x.
KEEPS_UP = 0.9


def stops_paying_off(table: pd.DataFrame, x: str = "cpu_fraction", metric: str = "speedup",
                     by: str = "pool") -> dict[str, float | None]:
    """For each pool, the x (interpolated) past which its `metric` stays below KEEPS_UP of the best pool's.

    The crossover experiment's question: as a task's CPU share grows, where does a pool stop giving
    what the best pool gives (prefork's extra memory starts to buy something)? A dip that recovers
    is not a stop: the answer is where the pool falls behind for the rest of the range. None: it
    keeps up at the largest x; the smallest x measured: it never kept up.
    """
    wide = table.pivot_table(index=x, columns=by, values=metric, aggfunc="median").sort_index()
    ratio = wide.div(wide.max(axis=1), axis=0)
    out: dict[str, float | None] = {}
    xs = ratio.index.to_numpy(dtype=float)
    for name in ratio.columns:
        r = ratio[name].to_numpy(dtype=float)
        if not r[-1] < KEEPS_UP:
            out[name] = None
            continue
        i = len(r) - 1
        while i > 0 and r[i - 1] < KEEPS_UP:  # back to the start of the final run below
            i -= 1
        if i == 0:
            out[name] = float(xs[0])
            continue
        # Linear between the last x where it kept up and the first where it did not.
        x0, x1, r0, r1 = xs[i - 1], xs[i], r[i - 1], r[i]
        out[name] = float(x0 + (r0 - KEEPS_UP) / (r0 - r1) * (x1 - x0)) if r0 != r1 else float(x1)
    return out
