"""Figures of one run, drawn from its stored tables (harness.present.style sets the look)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from harness.analysis import cpu, timing
from harness.analysis import load as load_analysis
from harness.analysis.gil import gil_holder_bands
from harness.analysis.loop import BLOCKED_LAG_S
from harness.analysis.trust import disturbance_cause
from harness.errors import ResultsError
from harness.present.style import WIDE, legend_below, plt, run_title, save
from harness.results.records import Role
from harness.results.run_folder import tasks_of

if TYPE_CHECKING:
    from harness.model.spec import RunSpec
    from harness.results.records import Summary
    from harness.results.run_folder import Run

# Fill and edge colour of a task's bar, by its role in the run.
ROLE_COLORS = {Role.FOREGROUND: ("#9ecae1", "#3182bd"), Role.BACKGROUND: ("#fdd0a2", "#e6550d"),
               Role.REFERENCE: ("#d9d9d9", "#636363")}


def timeline(tasks: pd.DataFrame, spec: RunSpec, path: Path) -> Path:
    """One lane per execution slot, one bar per task from its start to its finish, shaded by how much of
    that time was its own CPU (own CPU / run time): the CPU is spread over the run, not a phase of it."""
    t = timing.with_timings(tasks)
    t0 = float(t["submitted"].min())
    lane = timing.lanes(t, spec.slots)  # every worker's slots (WORKERS, HOSTS): a lane each, grouped by worker
    names = timing.lane_labels(t, spec.slots)
    n_lanes = int(lane.max()) + 1 if len(lane) else 1
    fig, ax = plt.subplots(figsize=(WIDE[0], min(16.0, max(WIDE[1], 0.6 * n_lanes + 3))))
    role = t["role"] if "role" in t else pd.Series(Role.FOREGROUND.value, index=t.index)
    starts = t["started"] - t0
    share = (t["cpu_s"] / t["run_s"]).clip(0, 1).where(t["run_s"] > 0)
    edge = len(t) <= 200  # outlines blur into noise on a timeline of thousands of tasks
    colors = [_shade(ROLE_COLORS[Role(r)][1], f) for r, f in zip(role, share, strict=False)]
    ax.barh(lane, t["run_s"], left=starts, height=0.7, color=colors,
            edgecolor=role.map(lambda r: ROLE_COLORS[Role(r)][1]) if edge else "none")
    if len(t) <= 40:  # the share written on each bar, where there is room to read it
        for y, x, w, f in zip(lane, starts, t["run_s"], share, strict=False):
            if pd.notna(f) and w > 0.06 * max(float((t["finished"] - t0).max()), 1e-9):
                ax.text(x + w / 2, y, f"{f:.0%} CPU", ha="center", va="center", fontsize=12,
                        color="white" if f > 0.55 else "#222")
    if n_lanes <= 32:  # beyond that the lanes are a texture, not something to read one by one
        ax.set_yticks(range(n_lanes))
        ax.set_yticklabels(names or [f"slot {i + 1}" for i in range(n_lanes)])
    else:
        ax.set_ylabel(f"{n_lanes} slots")
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task was submitted")
    ax.set_title(run_title(spec))
    handles = [Patch(facecolor=_shade("#3182bd", 1.0), label="task running, all of it on a CPU"),
               Patch(facecolor=_shade("#3182bd", 0.2), edgecolor="#3182bd",
                     label="task running, little of it on a CPU (waiting: GIL, I/O)")]
    for other, label in ((Role.REFERENCE, "one task alone, before and after (the reference)"),
                         (Role.BACKGROUND, "background task")):
        if (role == other.value).any():
            handles.append(Patch(facecolor=ROLE_COLORS[other][0], edgecolor=ROLE_COLORS[other][1], label=label))
    legend_below(ax, handles, ncol=2)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def _shade(color: str, cpu_share: float) -> tuple:
    """The role's colour, from near white (no CPU) to full (all of the run on a CPU); grey when unknown."""
    if pd.isna(cpu_share):
        return (0.85, 0.85, 0.85, 1.0)
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    f = 0.15 + 0.85 * float(cpu_share)
    return (1 - f * (1 - r), 1 - f * (1 - g), 1 - f * (1 - b), 1.0)


def _other_cores(samples: pd.DataFrame) -> pd.DataFrame:
    """Cores used by processes other than the worker and the lab over time (empty for runs that did not
    sample the lab's own processes)."""
    if samples.empty or not (samples["kind"] == "lab").any():
        return pd.DataFrame({"t": [], "cores": []})
    machine = cpu.cores_over_time(samples, "core")
    t = machine["t"].to_numpy()
    others = machine["cores"].to_numpy()
    for kind in ("process", "lab"):
        part = cpu.cores_over_time(samples, kind)
        if part.empty:  # too few samples to tell
            return pd.DataFrame({"t": [], "cores": []})
        others = others - np.interp(t, part["t"].to_numpy(), part["cores"].to_numpy())
    return pd.DataFrame({"t": t, "cores": others.clip(min=0)})


# HOSTS: one colour per host's line (beside the workers' orange and the tasks' blue).
HOST_COLORS = ("#31a354", "#756bb1", "#e7298a", "#8c6d31", "#17becf", "#636363")


def parallelism(tasks: pd.DataFrame, samples: pd.DataFrame, spec: RunSpec, cores: int, path: Path,
                summary: Summary | None = None) -> Path:
    """Tasks running vs CPU cores the worker used, over time; the machine's cores marked, and what other
    processes used (a disturbed run says so in its title)."""
    t0 = float(tasks["submitted"].min())
    running = timing.running_over_time(tasks)
    fig, ax = plt.subplots(figsize=WIDE)
    ax.step(running["t"] - t0, running["running"], where="post", lw=2.5, color="#3182bd",
            label="tasks running")
    if not samples.empty:
        # Counters advance by clock ticks (10 ms): over short windows a rate jitters above the cores it
        # cannot exceed. A window of a fortieth of the run (50 to 250 ms), capped at the cores, shows what
        # was used.
        span = float(tasks["finished"].max()) - t0
        used = cpu.cores_over_time(samples, "process", window_s=min(0.25, max(0.05, span / 40)))
        used = used.assign(cores=used["cores"].clip(upper=cores))
        ax.plot(used["t"] - t0, used["cores"], lw=2, color="#e6550d",
                label="CPU cores used by the workers" + (" (every host)" if spec.hosts else ""))
        for i, host in enumerate(spec.host_names):  # HOSTS: each host's share, beneath the whole
            mine = samples[samples["host"] == host] if "host" in samples else samples[:0]
            per_host = cpu.cores_over_time(mine, "process", window_s=min(0.25, max(0.05, span / 40)))
            if len(per_host):
                ax.plot(per_host["t"] - t0, per_host["cores"].clip(upper=cores), lw=1.2, ls="--",
                        color=HOST_COLORS[i % len(HOST_COLORS)], label=f"CPU cores used on {host}")
        others = _other_cores(samples)
        if len(others):
            ax.plot(others["t"] - t0, others["cores"], lw=1.5, ls=":", color="#636363",
                    label="CPU cores used by other processes")
    ax.axhline(cores, ls="--", color="gray", lw=1.5,
               label=f"cores of the hosts, each machine once ({cores})" if spec.hosts else
               f"cores on this machine ({cores})")
    end = float(tasks["finished"].max()) - t0
    ax.set_xlim(0, end * 1.02 if end > 0 else 1)
    ax.set_ylim(0, max(cores, float(running["running"].max())) + 0.7)
    ax.set_xlabel("seconds since the first task was submitted")
    ax.set_ylabel("tasks running · CPU cores used")
    if summary is not None and summary.disturbed:
        ax.set_title(f"{run_title(spec)}\nDISTURBED: {disturbance_cause(summary)}", color="#b00020")
    elif summary is not None and summary.unsteady:
        ax.set_title(f"{run_title(spec)}\nUNSTEADY: {summary.unsteady_cause}", color="#b00020", fontsize="small")
    else:
        ax.set_title(run_title(spec))
    legend_below(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def breakdown(tasks: pd.DataFrame, spec: RunSpec, path: Path) -> Path:
    """One stacked bar per task: queued, running but off the CPU, on its own CPU."""
    parts = timing.time_breakdown(tasks)
    fig, ax = plt.subplots(figsize=(WIDE[0], min(16.0, max(WIDE[1], 0.35 * len(parts) + 3))))
    left = pd.Series(0.0, index=parts.index)
    for column, color, label in (("queued_s", "#d9d9d9", "waiting in the queue"),
                                 ("off_cpu_s", "#fdae6b", "running, off the CPU (GIL, event loop or I/O)"),
                                 ("on_cpu_s", "#08519c", "on its own CPU")):
        ax.barh(parts.index, parts[column], left=left, color=color, label=label)
        left = left + parts[column]
    ax.invert_yaxis()
    ax.set_xlabel("seconds from submit to finish")
    ax.set_ylabel("task (in submit order)")
    ax.set_title(run_title(spec))
    legend_below(ax)
    return save(fig, path)


def per_task_figure(summary: Summary, spec: RunSpec, path: Path) -> Path:
    """The user's app's mix, per task name: what its callers waited (latency p50 and p95, submit to finish) and how
    its run time split between its own CPU and off the CPU (I/O, the GIL, the event loop)."""
    from harness.analysis.mix import per_task_frame

    rows = per_task_frame(summary.per_task)
    names = [name.rsplit(".", 1)[-1] for name in rows["task"]]
    fig, (lat, cpu_ax) = plt.subplots(1, 2, figsize=(WIDE[0], max(WIDE[1] * 0.7, 0.5 * len(rows) + 2.5)))
    y = np.arange(len(rows))
    lat.barh(y - 0.2, rows["latency_p50_s"], height=0.4, color="#9ecae1", label="p50")
    lat.barh(y + 0.2, rows["latency_p95_s"], height=0.4, color="#3182bd", label="p95")
    lat.set_yticks(y, names)
    lat.invert_yaxis()
    lat.set_xlabel("latency, submit to finish (s)")
    lat.legend(loc="lower right")
    on = rows["cpu_share"].fillna(0).astype(float)
    cpu_ax.barh(y, on, color="#08519c", label="own CPU")
    cpu_ax.barh(y, 1 - on, left=on, color="#fdae6b", label="off the CPU (I/O, GIL, event loop)")
    cpu_ax.set_yticks(y, [f"{n} ({t:.3g}/s)" for n, t in zip(names, rows["throughput_per_s"], strict=True)])
    cpu_ax.invert_yaxis()
    cpu_ax.set_xlim(0, 1)
    cpu_ax.set_xlabel("share of its run time")
    legend_below(cpu_ax)
    fig.suptitle(run_title(spec) + " - per task")
    return save(fig, path)


def gil_timeline(tasks: pd.DataFrame, bands: pd.DataFrame, contention: pd.DataFrame, spec: RunSpec,
                 path: Path) -> Path:
    """Who held the GIL: a band per thread while it ran on a CPU, tasks as thin bars beneath,
    ticks every switch interval; below, gilknocker's contention over time."""
    t0 = float(tasks["submitted"].min())
    end = float(tasks["finished"].max())
    rules = spec.pool_rules
    labels: dict[str, int] = {}  # slot -> its lane
    for slot in tasks.sort_values("started")["slot"].astype(str):
        labels.setdefault(slot, len(labels))
    task_slots = set(labels)
    for row in bands.itertuples():  # threads that ran but took no task: the worker's own loop
        labels.setdefault(rules.slot_name(row.pid, row.tid, None), len(labels))
    fig, (ax, cx) = plt.subplots(2, 1, figsize=(WIDE[0], max(WIDE[1], 4 + 0.7 * len(labels))), sharex=True,
                                 gridspec_kw={"height_ratios": [max(2, len(labels)), 1.5]})
    for row in bands.itertuples():
        ax.barh(labels[rules.slot_name(row.pid, row.tid, None)], row.end - row.start, left=row.start - t0,
                height=0.6, color="#08519c")
    for row in tasks.itertuples():
        ax.barh(labels[str(row.slot)] + 0.38, row.finished - row.started, left=row.started - t0, height=0.12,
                color="#fd8d3c")
    interval = spec.switch_interval
    n_ticks = (end - t0) / interval
    if n_ticks <= 60:  # a line every switch interval while they can be told apart; past that, a hatch
        for k in range(int(n_ticks) + 1):
            ax.axvline(k * interval, color="gray", lw=0.6, alpha=0.5)
    # Lanes named as in timeline.png (slot N, in order of first task), with the OS thread beside it.
    names = {slot: (f"slot {i + 1} ({slot})" if slot in task_slots else f"{slot}: no task (the worker's own)")
             for slot, i in labels.items()}
    ax.set_yticks(list(labels.values()))
    ax.set_yticklabels([names[slot] for slot in labels])
    ax.invert_yaxis()
    ax.set_title(f"Who held the GIL (on a CPU)\n{run_title(spec)}")
    ticks = (f"a line every switch interval ({interval:g} s)" if n_ticks <= 60
             else f"switch interval {interval:g} s (too many to draw)")
    legend_below(cx, [Patch(color="#08519c", label="on a CPU (for Python code: holding the GIL)"),
                      Patch(color="#fd8d3c", label="task running"),
                      Line2D([], [], color="gray", lw=0.8, label=ticks)], ncol=2)
    if len(contention):
        for pid, part in contention.groupby("pid"):
            cx.plot(part["t"] - t0, part["contention"], lw=1.5, label=f"pid {pid}")
    cx.set_ylim(0, 1.05)
    cx.set_ylabel("GIL contention")
    cx.set_xlabel("seconds since the first task was submitted")
    cx.set_xlim(0, (end - t0) * 1.02)
    cx.grid(alpha=0.3)
    return save(fig, path)


def latency_spectrum(tasks: pd.DataFrame, summary: Summary, spec: RunSpec, path: Path) -> Path:
    """An open-loop load's latency spectrum in wrk2's manner: latency (from the scheduled time) at each percentile,
    the percentiles spaced on 1/(1 - p) so that the tail is as wide as the body; the task's own run time beside it."""
    load = summary.load
    assert load is not None and spec.load_time is not None
    measured = tasks[tasks["scheduled"] >= tasks["scheduled"].min() + (load.warmup_s or 0)]
    fig, ax = plt.subplots(figsize=WIDE)
    for column, label, color in (("finished", "latency (scheduled time to finish)", "#3182bd"),
                                 ("started", "queue wait (scheduled time to start)", "#9ecae1")):
        curve = load_analysis.spectrum(measured[column] - measured["scheduled"])
        ax.plot(curve["one_over_tail"], curve["value_s"] * 1000, marker=".", color=color, label=label)
    run_p50 = float((measured["finished"] - measured["started"]).median())
    ax.axhline(run_p50 * 1000, color="gray", ls="--", lw=1, label=f"a task's run time (p50 {run_p50 * 1000:.0f} ms)")
    ax.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
    ax.set_xlim(1, max(2.0, float(len(measured))))
    ax.set_xlabel("percentile")
    ax.set_ylabel("milliseconds")
    state = "SATURATED" if load.saturated else "held"
    ax.set_title(f"{run_title(spec)}\nlatency spectrum at {spec.rate:g} tasks/s ({state})")
    legend_below(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def queue_depth(tasks: pd.DataFrame, queue: pd.DataFrame, spec: RunSpec, path: Path) -> Path:
    """An open-loop load over time: arrivals and finishes per second, the tasks in the system, the broker's queue."""
    t0 = float(tasks["scheduled"].min())
    end = float(tasks["finished"].max())
    times = np.linspace(t0, end, 200)
    fig, ax = plt.subplots(figsize=WIDE)
    ax.plot(times - t0, load_analysis.in_system(tasks, times), color="#3182bd", label="tasks in the system (queued or "
            "running)")
    if len(queue):
        ax.plot(queue["t"] - t0, queue["depth"], color="#e6550d", lw=1, label="the broker's queue (sampled)")
    assert spec.load_time is not None
    ax.axvspan(0, spec.load_time, color="#f0f0f0", zorder=0, label=f"arrivals ({spec.rate:g}/s)")
    ax.set_xlabel("seconds from the first arrival")
    ax.set_ylabel("tasks")
    ax.set_title(f"{run_title(spec)}\nthe queue over the load")
    legend_below(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def loop_lag_figure(tasks: pd.DataFrame, lag: pd.DataFrame, spec: RunSpec, path: Path) -> Path:
    """The event loop's lag over the run (each window's worst and mean tick, a line per worker process), over the
    tasks running: a task that holds the loop shows as a tall step while the others wait."""
    t0 = float(tasks["submitted"].min())
    fig, ax = plt.subplots(figsize=WIDE)
    for k, (pid, rows) in enumerate(lag.groupby("pid")):
        who = f" (process {pid})" if lag["pid"].nunique() > 1 else ""
        # A window is stamped when it ends, and a late tick is known only once the loop ran it: each value belongs
        # to the time before its stamp (where="pre").
        ax.step(rows["t"] - t0, rows["lag_max_s"] * 1000, where="pre", color="#e31a1c", alpha=1 - 0.3 * (k % 3),
                label=f"worst timer in each 0.1 s{who}")
        ax.step(rows["t"] - t0, rows["lag_mean_s"] * 1000, where="pre", color="#fd8d3c", lw=1, alpha=0.8,
                label=f"mean{who}")
    ax.axhline(BLOCKED_LAG_S * 1000, color="#555555", ls=":", lw=1, label="blocked beyond this")
    ax.set_xlabel("seconds from the first submit")
    ax.set_ylabel("how late the loop woke a timer (ms)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(bottom=0)
    running = timing.running_over_time(tasks_of(tasks, Role.FOREGROUND))
    twin = ax.twinx()
    twin.step(running["t"] - t0, running["running"], where="post", color="#3182bd", lw=1, alpha=0.5)
    twin.set_ylabel("tasks running", color="#3182bd")
    twin.set_ylim(bottom=0)
    ax.set_title(f"{run_title(spec)}\nthe event loop's lag: a task that does not yield holds every other")
    legend_below(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def draw_run_figures(run: Run) -> list[Path]:
    """Every figure of a stored run with its summary, into its folder."""
    spec, tasks, summary = run.spec, run.tasks, run.summary
    if summary is None:  # the figures are drawn once the run is summarized (harness.pipeline)
        raise ResultsError(f"{run.path / 'run.json'}: no summary to draw the figures from")
    out = [timeline(tasks, spec, run.path / "timeline.png"),
           parallelism(tasks, run.samples, spec, summary.cores, run.path / "parallelism.png", summary)]
    if summary.per_task:
        out.append(per_task_figure(summary, spec, run.path / "per_task.png"))
    if summary.load is not None:
        foreground = tasks[tasks["role"] == Role.FOREGROUND] if "role" in tasks else tasks
        out.append(latency_spectrum(foreground, summary, spec, run.path / "latency-spectrum.png"))
        out.append(queue_depth(foreground, run.queue, spec, run.path / "queue.png"))
    oncpu = run.table("gil_oncpu.csv")
    if oncpu is not None:
        contention = run.table("gil_contention.csv")
        out.append(gil_timeline(tasks, gil_holder_bands(oncpu), contention, spec, run.path / "gil.png"))
    lag = run.table("loop_lag.csv")
    if lag is not None and not lag.empty:
        out.append(loop_lag_figure(tasks, lag, spec, run.path / "loop-lag.png"))
    return out
