"""Figures of a sweep, chosen from its axes. Each takes the per-cell table (summary.csv, harness.analysis.stats)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from harness.analysis.stats import KEEPS_UP, stops_paying_off
from harness.model.workloads import WITH_CPU_FRACTION
from harness.model.workloads import workload as workload_record
from harness.present.style import POOL_COLORS, WIDE, legend_below, plt, save


def _err(table: pd.DataFrame, metric: str) -> np.ndarray:
    """Asymmetric error bars from the interquartile range."""
    lower = (table[metric] - table[f"{metric}_q25"]).clip(lower=0)
    upper = (table[f"{metric}_q75"] - table[metric]).clip(lower=0)
    return np.vstack([lower.to_numpy(), upper.to_numpy()])


DISTURBED_LABEL = "disturbed (other processes busy, or the worker stopped)"
UNSTEADY_LABEL = "unsteady (the machine's own speed changed)"


def _mark_disturbed(ax, x, y, rows: pd.DataFrame) -> None:
    """A red ring on every point (or bar top) of a cell with a disturbed repeat, an orange dashed one on a
    cell with an unsteady repeat."""
    for column, label, colour, style in (("disturbed", DISTURBED_LABEL, "#d7191c", "solid"),
                                         ("unsteady", UNSTEADY_LABEL, "#fdae61", "dashed")):
        if column not in rows:
            continue
        hit = rows[column].fillna(0).to_numpy(dtype=float) > 0
        if hit.any():
            labelled = any(t.get_label() == label for t in ax.collections)
            ax.scatter(np.asarray(x)[hit], np.asarray(y, dtype=float)[hit], s=300 if column == "unsteady" else 220,
                       facecolors="none", edgecolors=colour, linewidths=2.5, linestyles=style, zorder=4,
                       label=None if labelled else label)


def _pool_color(pool: str | None) -> str | None:
    """A pool's colour; none (matplotlib's next) where the lines are not one pool each."""
    return POOL_COLORS.get(pool) if pool is not None else None


def _line_groups(table: pd.DataFrame, axes: list[str], x: str):
    """One line per combination of the axes other than x."""
    others = [a for a in axes if a != x]
    if not others:
        yield "", table.sort_values(x)
        return
    for key, group in table.groupby(others, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        yield " ".join(f"{a}={v}" for a, v in zip(others, key, strict=False)), group.sort_values(x)


def _grouped_bars(table: pd.DataFrame, group_col: str, bar_col: str, metric: str, ylabel: str, title: str,
                  path: Path, bar_label=str, bar_color=lambda _v: None, decorate=None) -> Path:
    """Bars of `metric` (median, IQR whiskers): one group per value of `group_col`, one bar per `bar_col`."""
    groups = list(dict.fromkeys(table[group_col]))
    bars = list(dict.fromkeys(table[bar_col]))
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=WIDE)
    for i, value in enumerate(bars):
        rows = table[table[bar_col] == value].set_index(group_col).reindex(groups)
        x = np.arange(len(groups)) + (i - (len(bars) - 1) / 2) * width
        ax.bar(x, rows[metric], width, yerr=_err(rows, metric), capsize=3, label=bar_label(value),
               color=bar_color(value))
        _mark_disturbed(ax, x, rows[metric].fillna(0), rows)
        if decorate:
            decorate(ax, x, rows, first=i == 0)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_below(ax)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def _ideal_ticks(ax, x, rows, first):
    """The ideal for each bar's pool and work: a black tick over it, and a gray line at one at a time."""
    ax.scatter(x, rows["ideal_speedup"], marker="_", s=400, color="black", zorder=3, label="ideal" if first else None)
    if first:
        ax.axhline(1, color="gray", lw=1)


def speedup_by_pool_workload(table: pd.DataFrame, path: Path) -> Path:
    return _grouped_bars(table, "workload", "pool", "speedup", "speedup over one at a time",
                         "Speedup by pool and workload (bars: median, whiskers: IQR; black tick: ideal)", path,
                         bar_color=POOL_COLORS.get, decorate=_ideal_ticks)


def speedup_by_pool_driver(table: pd.DataFrame, path: Path) -> Path:
    """The drivers experiment: a group per driver (and workload), a bar per pool. A green pool's bar near 1 over a
    tick at its slots is the green trap; a pool and driver that cannot pair (psycogreen off a green pool) have no
    bar."""
    groups = table.assign(group=table["driver"].astype(str).str.replace("+", "+\n", regex=False)
                          + ("\n(" + table["workload"].astype(str) + ")" if "workload" in table else ""))
    return _grouped_bars(groups, "group", "pool", "speedup", "speedup over one at a time",
                         "Speedup by driver and pool (bars: median, whiskers: IQR; black tick: ideal)", path,
                         bar_color=POOL_COLORS.get, decorate=_ideal_ticks)


def _workload_panels(table: pd.DataFrame, axes: list[str], rows: int = 1, panel_width: float = 6.4,
                     height: float = 1.0):
    """A panel per workload where the workload is an axis (else one): the figure, its grid of axes (`rows` x
    panels), and each panel's workload (None when not an axis) with its rows of the table."""
    works = list(dict.fromkeys(table["workload"])) if "workload" in axes else [None]
    fig, axs = plt.subplots(rows, len(works), figsize=(max(WIDE[0], panel_width * len(works)), WIDE[1] * height),
                            squeeze=False)
    return fig, axs, [(w, table if w is None else table[table["workload"] == w]) for w in works]


def speedup_vs_concurrency(table: pd.DataFrame, axes: list[str], cores: int, path: Path) -> Path:
    fig, axs, panels = _workload_panels(table, axes)
    for ax, (workload, part) in zip(axs[0], panels, strict=True):
        line_axes = [a for a in axes if a != "workload"]
        if "tasks" in line_axes and part.groupby("concurrency")["tasks"].nunique().max() == 1:
            line_axes.remove("tasks")  # tasks follow the concurrency (the advisor's cells): one line per pool
        for label, group in _line_groups(part, line_axes, "concurrency"):
            pool = group["pool"].iloc[0] if "pool" in group else None
            ax.errorbar(group["concurrency"], group["speedup"], yerr=_err(group, "speedup"), marker="o",
                        capsize=3, lw=2, label=label, color=_pool_color(pool))
            _mark_disturbed(ax, group["concurrency"], group["speedup"], group)
        ax.axvline(cores, ls="--", color="gray", label=f"cores ({cores})")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("speedup over one at a time")
        ax.set_title(f"{workload} work" if workload else "speedup vs concurrency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    return save(fig, path)


# What async_comparison draws per workload, a row each: the column of summary.csv, its axis label, a scale to it.
ASYNC_ROWS = (("throughput_per_s", "tasks/s", 1.0), ("latency_p95_s", "latency p95, submit to finish (ms)", 1000.0),
              ("pss_peak_mib", "worker memory, peak (MiB PSS)", 1.0),
              ("cpu_per_task_ms", "worker CPU per task (ms)", 1.0),
              ("loop_lag_p95_s", "event loop lag p95 (ms)", 1000.0))


def async_comparison(table: pd.DataFrame, axes: list[str], path: Path) -> Path:
    """The asyncio pool against the others as the concurrency grows (lesson 13): throughput, p95 latency, memory,
    the worker's CPU per task and the loop's lag, a row each, a column per workload, a line per pool."""
    table = table.assign(cpu_per_task_ms=1000 * table["worker_cpu_s"] / table["tasks_done"].clip(lower=1))
    fig, axs, panels = _workload_panels(table, axes, rows=len(ASYNC_ROWS), height=2.6)
    for col, (workload, part) in enumerate(panels):
        for row, (metric, label, scale) in enumerate(ASYNC_ROWS):
            ax = axs[row][col]
            for name, group in _line_groups(part, [a for a in axes if a not in ("workload", "concurrency")],
                                            "concurrency"):
                values = group[metric] * scale if metric in group else None
                if values is None or values.isna().all():
                    continue
                pool = group["pool"].iloc[0] if "pool" in group else None
                ax.plot(group["concurrency"], values, marker="o", lw=2, label=name, color=_pool_color(pool))
            ax.set_xscale("log")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{workload} work" if workload else "by concurrency")
                ax.legend(fontsize=9)
            if metric == "loop_lag_p95_s":
                ax.set_yscale("symlog", linthresh=1)
                ax.set_ylim(bottom=0)
            if metric == "pss_peak_mib":  # a process per slot (prefork) is orders of magnitude above the others
                ax.set_yscale("log")
            if row == len(ASYNC_ROWS) - 1:
                ax.set_xlabel("concurrency (tasks in flight)")
    return save(fig, path)


def latency_vs_rate(table: pd.DataFrame, axes: list[str], path: Path) -> Path:
    """A sweep with a rate axis (open-loop loads): latency p99 from the schedule against the offered rate, a line per
    way of running it (the other axes), saturated cells crossed: the hockey stick measured at the rates given."""
    fig, axs, panels = _workload_panels(table, axes)
    for ax, (workload, part) in zip(axs[0], panels, strict=True):
        for label, group in _line_groups(part, [a for a in axes if a not in ("workload", "rate")], "rate"):
            pool = group["pool"].iloc[0] if "pool" in group else None
            ax.plot(group["rate"], group["load_latency_p99_s"] * 1000, marker="o", lw=2, label=label,
                    color=_pool_color(pool))
            bad = group[group["load_saturated"] > 0.5]
            ax.scatter(bad["rate"], bad["load_latency_p99_s"] * 1000, marker="x", s=90, color="#e6550d", zorder=3)
        ax.set_yscale("log")
        ax.set_xlabel("offered load (tasks/s); x: saturated")
        ax.set_ylabel("latency p99 from the schedule (ms)")
        ax.set_title(f"{workload} work" if workload else "latency against offered load")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=10)
    return save(fig, path)


def speedup_vs_cpu_fraction(table: pd.DataFrame, path: Path) -> Path:
    """The crossover: speedup against a task's CPU share, one line per pool, its ideal dashed, and where
    each pool stops keeping up with the best (harness.analysis.stats.stops_paying_off)."""
    fig, ax = plt.subplots(figsize=WIDE)
    stops = stops_paying_off(table)
    for i, (pool, group) in enumerate(table.groupby("pool", sort=False)):
        group = group.sort_values("cpu_fraction")
        color = POOL_COLORS.get(pool)
        ax.errorbar(group["cpu_fraction"], group["speedup"], yerr=_err(group, "speedup"), marker="o", capsize=3,
                    lw=2, color=color, label=pool)
        _mark_disturbed(ax, group["cpu_fraction"], group["speedup"], group)
        ax.plot(group["cpu_fraction"], group["ideal_speedup"], ls=":", color=color, lw=1.5)
        stop = stops.get(pool)
        if stop is not None:
            ax.axvline(stop, ls="--", color=color, lw=1)
            ax.annotate(f"{pool} falls behind past {stop:.2f}", (stop, 1), color=color, fontsize=10,
                        ha="left", va="bottom", xytext=(4, 4 + 16 * i), textcoords="offset points")
    ax.axhline(1, color="gray", lw=1)
    ax.set_xlabel(f"share of a task's time alone that is CPU ({' and '.join(WITH_CPU_FRACTION)} workload, "
                  "CPU_FRACTION)")
    ax.set_ylabel("speedup over one at a time")
    ax.set_title(f"Where each pool stops paying off (dotted: ideal; dashed: below {KEEPS_UP:.0%} of the best)")
    ax.grid(alpha=0.3)
    legend_below(ax)
    return save(fig, path)


def switch_interval_effects(table: pd.DataFrame, axes: list[str], path: Path) -> Path:
    right = "rtt_mean_s" if table["rtt_mean_s"].notna().any() else "throughput_per_s"
    right_label = {"rtt_mean_s": "I/O round trip, mean (s)", "throughput_per_s": "throughput (tasks/s)"}[right]
    fig, (left_ax, right_ax) = plt.subplots(1, 2, figsize=(max(WIDE[0], 15), WIDE[1]))
    for label, group in _line_groups(table, axes, "switch_interval"):
        pool = group["pool"].iloc[0] if "pool" in group else None
        # Dashed: work that finishes on the wall clock (its "speedup" may be phantom), or no background beside it.
        wall_clock = "workload" in group and workload_record(group["workload"].iloc[0]).wall_clock
        style = dict(marker="o", capsize=3, lw=2, label=label, color=_pool_color(pool),
                     ls="--" if wall_clock or "background=none" in label else "-")
        left_ax.errorbar(group["switch_interval"], group["second_start_delay_s"],
                         yerr=_err(group, "second_start_delay_s"), **style)
        right_ax.errorbar(group["switch_interval"], group[right], yerr=_err(group, right), **style)
    left_ax.set_ylabel("second task starts after the first (s)")
    left_ax.set_yscale("symlog", linthresh=1e-3)
    right_ax.set_ylabel(right_label)
    if right == "rtt_mean_s":
        right_ax.set_yscale("log")
    for ax in (left_ax, right_ax):
        ax.set_xscale("log")
        ax.set_xlabel("sys.setswitchinterval (s)")
        ax.grid(alpha=0.3, which="both")
    left_ax.set_title("Delay before the second task starts")
    right_ax.set_title(right_label.split(" (")[0] + " vs switch interval")
    right_ax.legend(fontsize=10)
    return save(fig, path)


def topology(table: pd.DataFrame, path: Path, by: str = "workers") -> Path:
    """Speedup (top) and worker memory (bottom) by how the slots are split among workers (`by` "workers"), or among
    hosts of a worker each ("hosts"), a column per workload."""
    if by == "hosts":  # the hosts, each with WORKERS_PER_HOST workers (1 where the table has none)
        per_host = table["workers_per_host"].fillna(1) if "workers_per_host" in table else 1
        table = table.assign(workers=table["hosts"].map(lambda h: len(str(h).split(","))) * per_host)
    workloads = list(dict.fromkeys(table["workload"])) if "workload" in table else [None]
    fig, axs = plt.subplots(2, len(workloads), figsize=(max(WIDE[0], 6.5 * len(workloads) + 1), 9), squeeze=False,
                            sharex=True)
    for col, name in enumerate(workloads):
        rows = table[table["workload"] == name] if name is not None else table
        for pool, group in rows.groupby("pool", sort=False) if "pool" in rows else [(None, rows)]:
            group = group.sort_values("workers")
            shape = [f"{w}x{c}" for w, c in zip(group["workers"], group["concurrency"], strict=False)]
            style = dict(marker="o", capsize=3, lw=2, label=pool, color=_pool_color(pool))
            axs[0, col].errorbar(shape, group["speedup"], yerr=_err(group, "speedup"), **style)
            _mark_disturbed(axs[0, col], shape, group["speedup"], group)
            axs[0, col].plot(shape, group["ideal_speedup"], ls=":", color=_pool_color(pool), lw=1.5)
            axs[1, col].errorbar(shape, group["pss_peak_mib"], yerr=_err(group, "pss_peak_mib"), **style)
        axs[0, col].set_title(f"{name}: speedup (dotted: ideal)")
        axs[1, col].set_title(f"{name}: memory of all the workers")
        axs[1, col].set_xlabel("workers on the hosts x slots each" if by == "hosts" else "workers x slots each")
        axs[0, col].set_ylim(bottom=0)
        axs[1, col].set_ylim(bottom=0)
        for ax in axs[:, col]:
            ax.grid(alpha=0.3)
    axs[0, 0].set_ylabel("speedup over one at a time")
    axs[1, 0].set_ylabel("peak PSS (MiB)")
    axs[0, -1].legend(fontsize=10)
    return save(fig, path)


def latency_distributions(latencies: dict[str, pd.Series], ylabel: str, path: Path) -> Path:
    """Box plots of per-task latency, one box per cell."""
    labels = list(latencies)
    # Horizontal boxes: the cells' names read level, however many there are.
    fig, ax = plt.subplots(figsize=(WIDE[0], max(WIDE[1], 0.42 * len(labels) + 2.5)))
    ax.boxplot([latencies[k].dropna().to_numpy() for k in labels], showfliers=True, vert=False)
    ax.set_yticks(range(1, len(labels) + 1))
    ax.set_yticklabels([label.replace("workload=", "").replace("pool=", "") for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")  # 0.2, not 2x10^-1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_title("Per-task latency by cell")
    ax.grid(axis="x", alpha=0.3, which="both")
    return save(fig, path)


def dispatch_gap_by_pool(table: pd.DataFrame, path: Path) -> Path:
    """The longest wait of a free slot for queued work, per pool, one bar per prefetch setting."""
    return _grouped_bars(table.sort_values("prefetch", kind="stable"), "pool", "prefetch", "dispatch_gap_max_s",
                         "longest wait of a free slot for queued work (s)",
                         "Dispatch gap by pool and prefetch setting", path,
                         bar_label=lambda v: f"prefetch multiplier {v}" + (" (no limit)" if v == 0 else ""))


def dispatch_gap_by_broker(table: pd.DataFrame, axes: list[str], path: Path) -> Path:
    """The broker as an axis: per pool, the longest wait of a free slot for queued work and the throughput, one bar
    per broker (and prefetch setting, where that is an axis too), a panel per workload where that is an axis."""
    table = table.copy()
    by = ["broker", *(["prefetch"] if "prefetch" in axes else [])]
    table["_bar"] = table[by].astype(str).agg(lambda r: " · ".join(
        f"{k} {v}" if k == "prefetch" else v for k, v in zip(by, r, strict=True)), axis=1)
    fig, axs, panels = _workload_panels(table, axes, rows=2, panel_width=7, height=1.6)
    bars = list(dict.fromkeys(table["_bar"]))
    for col, (work, part) in enumerate(panels):
        pools = list(dict.fromkeys(part["pool"]))
        width = 0.8 / len(bars)
        for row, (metric, label) in enumerate([("dispatch_gap_max_s", "longest wait of a free slot (s)"),
                                               ("throughput_per_s", "tasks/s")]):
            ax = axs[row][col]
            for i, bar in enumerate(bars):
                rows = part[part["_bar"] == bar].set_index("pool").reindex(pools)
                x = np.arange(len(pools)) + (i - (len(bars) - 1) / 2) * width
                ax.bar(x, rows[metric], width, yerr=_err(rows, metric), capsize=3, label=bar,
                       color=f"C{i}", hatch="//" if bar.startswith("rabbitmq") else None)
            ax.set_xticks(np.arange(len(pools)))
            ax.set_xticklabels(pools)
            ax.set_ylabel(label)
            ax.grid(axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(f"{work} work" if work else "dispatch gap by pool and broker")
    axs[0][0].legend(fontsize=9)
    return save(fig, path)


def hockey_stick(steps: list[dict], slo_percentile: float, slo_limit_s: float, capacity: float | None,
                 title: str, path: Path) -> Path:
    """Latency against offered load, one point per step of a capacity search: flat while the pool keeps up, then
    the hockey stick's blade. The SLO's limit and the capacity (the knee) are marked."""
    rows = pd.DataFrame(steps).sort_values("rate")
    fig, ax = plt.subplots(figsize=WIDE)
    ax.plot(rows["rate"], rows["latency_slo_s"] * 1000, marker="o", color="#3182bd",
            label=f"latency p{slo_percentile:g} (scheduled time to finish)")
    ax.plot(rows["rate"], rows["latency_p50_s"] * 1000, marker=".", color="#9ecae1", label="latency p50")
    bad = rows[rows["saturated"]]
    ax.scatter(bad["rate"], bad["latency_slo_s"] * 1000, marker="x", s=80, color="#e6550d", zorder=3,
               label="saturated")
    ax.axhline(slo_limit_s * 1000, color="gray", ls="--", lw=1, label=f"SLO: p{slo_percentile:g} < "
               f"{slo_limit_s * 1000:g} ms")
    if capacity is not None:
        ax.axvline(capacity, color="black", lw=1, label=f"capacity {capacity:.3g} tasks/s")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (tasks/s)")
    ax.set_ylabel("milliseconds")
    ax.set_title(title)
    legend_below(ax)
    ax.grid(alpha=0.3)
    return save(fig, path)


def hockey_sticks(searches: list[dict], slo_percentile: float, slo_limit_s: float, title: str, path: Path) -> Path:
    """Several capacity searches (capacity.json's dicts): a panel per work, a line per pool of the SLO's percentile
    against offered load, each pool's capacity (its knee) marked on its line with its value."""
    works = list(dict.fromkeys(s["work"] for s in searches))
    fig, axes = plt.subplots(1, len(works), figsize=(WIDE[0], WIDE[1]), squeeze=False)
    for ax, work in zip(axes[0], works, strict=True):
        for i, search in enumerate(s for s in searches if s["work"] == work):
            rows = pd.DataFrame(search["steps"]).sort_values("rate")
            color = POOL_COLORS.get(search["pool"], f"C{i}")
            ax.plot(rows["rate"], rows["latency_slo_s"] * 1000, marker="o", ms=4, color=color, label=search["pool"])
            if search["capacity"]:
                at = rows[rows["rate"] == search["capacity"]]["latency_slo_s"].iloc[0] * 1000
                ax.scatter([search["capacity"]], [at], s=120, facecolors="none", edgecolors=color, lw=2, zorder=3)
                ax.annotate(f"{search['capacity']:.3g}/s", (search["capacity"], at), textcoords="offset points",
                            xytext=(4, -12), fontsize=9, color=color)
        ax.axhline(slo_limit_s * 1000, color="gray", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # 20 and 40, not 2x10^1 and 4x10^1
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            axis.set_minor_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if str(v)[0] in "25" else ""))
        ax.set_xlabel("offered load (tasks/s)")
        ax.set_title(work)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    axes[0][0].set_ylabel(f"latency p{slo_percentile:g}, ms (dashed: the SLO)")
    fig.suptitle(title)
    return save(fig, path)


def sweep_figures(folder: Path, table: pd.DataFrame, axes: list[str], cores: int,
                  latencies: dict[str, pd.Series], latency_label: str) -> list[Path]:
    """Every figure the sweep's axes call for."""
    out: list[Path] = []
    if table.empty:
        return out
    table = table.copy()  # one block: the figures add columns, which pandas warns of on a frame built column-wise
    if {"pool", "workload"} <= set(axes) and len(axes) == 2:
        out.append(speedup_by_pool_workload(table, folder / "speedup-by-pool.png"))
    if {"pool", "driver"} <= set(axes):
        out.append(speedup_by_pool_driver(table, folder / "drivers.png"))
    if "workers" in axes and "concurrency" in table and table["concurrency"].nunique() > 1:  # "N/workers"
        out.append(topology(table, folder / "topology.png"))
    elif "hosts" in axes and "concurrency" in table and table["concurrency"].nunique() > 1:  # across hosts
        out.append(topology(table, folder / "hosts.png", by="hosts"))
    elif "concurrency" in axes:
        out.append(speedup_vs_concurrency(table, axes, cores, folder / "speedup-vs-concurrency.png"))
        if "pool" in axes and "asyncio" in set(table["pool"]) and "worker_cpu_s" in table:
            out.append(async_comparison(table, axes, folder / "async.png"))
    if "rate" in axes and "load_latency_p99_s" in table and table["load_latency_p99_s"].notna().any():
        out.append(latency_vs_rate(table, axes, folder / "latency-vs-rate.png"))
    if {"pool", "cpu_fraction"} <= set(axes):
        out.append(speedup_vs_cpu_fraction(table, folder / "crossover.png"))
    if "switch_interval" in axes:
        out.append(switch_interval_effects(table, axes, folder / "switch-interval.png"))
    if {"pool", "broker"} <= set(axes):
        out.append(dispatch_gap_by_broker(table, axes, folder / "brokers.png"))
    elif {"pool", "prefetch"} <= set(axes):
        out.append(dispatch_gap_by_pool(table, folder / "dispatch-gap.png"))
    if latencies and len(latencies) <= 60:
        out.append(latency_distributions(latencies, latency_label, folder / "latency.png"))
    return out
