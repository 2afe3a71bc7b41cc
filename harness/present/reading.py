"""What a sweep's numbers say, in sentences: pure functions on the per-cell table. No I/O."""
from __future__ import annotations

import pandas as pd

from harness.analysis.stats import KEEPS_UP, stops_paying_off
from harness.analysis.summary import PHANTOM_MARGIN_CORES


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _s(value: float) -> str:
    if pd.isna(value):
        return "n/a"
    return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"


def _ideal(value: float | None) -> str:
    """' (ideal 2x)', or nothing where no ideal is assumed (the user's own task)."""
    return "" if value is None or pd.isna(value) else f" (ideal {value:.3g}x)"


def by_pool_and_workload(table: pd.DataFrame) -> list[str]:
    out = []
    for workload, group in table.groupby("workload", sort=False):
        ranked = group.sort_values("speedup", ascending=False)
        parts = [f"{r.pool} {_x(r.speedup)}{_ideal(r.ideal_speedup)}" for r in ranked.itertuples()]
        best = ranked.iloc[0]
        out.append(f"{workload}: {', '.join(parts)}. Fastest: {best['pool']}, using "
                   f"{best['mean_cores_used']:.1f} CPU cores.")
        for r in group.itertuples():
            if getattr(r, "phantom_cores", 0) and r.phantom_cores >= PHANTOM_MARGIN_CORES:
                out.append(f"{workload} on {r.pool}: the {_x(r.speedup)} is phantom parallelism - the tasks "
                           f"overlapped in wall time on {r.mean_cores_used:.1f} cores; a wall-clock spin "
                           "finishes on time whether or not it got the CPU.")
    return out


def by_concurrency(table: pd.DataFrame, axes: list[str], cores: int) -> list[str]:
    out = []
    others = [a for a in axes if a != "concurrency"]
    for key, group in table.groupby(others, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        name = " on ".join(str(k) for k in key)
        group = group.sort_values("concurrency")
        # A mix of the user's calls has no speedup: its tasks/s on the same replay say how the settings compare.
        metric, say = (("speedup", _x) if group["speedup"].notna().any() else
                       ("throughput_per_s", lambda v: f"{v:.3g} tasks/s"))
        if group[metric].isna().all():
            continue
        best = group.loc[group[metric].idxmax()]
        first = group.iloc[0]
        text = (f"{name}: {say(first[metric])} at concurrency {first['concurrency']}, best "
                f"{say(best[metric])} at {best['concurrency']}")
        above = group[group["concurrency"] > cores]
        if not above.empty:
            text += f"; above the {cores} cores: {say(above[metric].iloc[-1])} at {above['concurrency'].iloc[-1]}"
        out.append(text + ".")
    return out


def by_switch_interval(table: pd.DataFrame, axes: list[str]) -> list[str]:
    out = []
    others = [a for a in axes if a != "switch_interval"]
    groups = table.groupby(others, sort=False) if others else [((), table)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(f"{a}={v}" for a, v in zip(others, key, strict=False)) or "all"
        group = group.sort_values("switch_interval")
        lo, hi = group.iloc[0], group.iloc[-1]
        text = (f"{name}: the second task started {_s(lo['second_start_delay_s'])} after the first at "
                f"interval {lo['switch_interval']:g} s, {_s(hi['second_start_delay_s'])} at "
                f"{hi['switch_interval']:g} s")
        if group["rtt_mean_s"].notna().any():
            text += (f"; I/O round trips averaged {_s(lo['rtt_mean_s'])} at {lo['switch_interval']:g} s and "
                     f"{_s(hi['rtt_mean_s'])} at {hi['switch_interval']:g} s")
        else:
            text += (f"; throughput {lo['throughput_per_s']:.2f} tasks/s at {lo['switch_interval']:g} s, "
                     f"{hi['throughput_per_s']:.2f} at {hi['switch_interval']:g} s")
        out.append(text + ".")
    return out


def by_cpu_fraction(table: pd.DataFrame) -> list[str]:
    """The crossover: where each pool stops keeping up with the best as the tasks' CPU share grows."""
    out = []
    for pool, x in stops_paying_off(table).items():
        rows = table[table["pool"] == pool].sort_values("cpu_fraction")
        span = (f"{_x(rows['speedup'].iloc[0])} at CPU fraction {rows['cpu_fraction'].iloc[0]:g}, "
                f"{_x(rows['speedup'].iloc[-1])} at {rows['cpu_fraction'].iloc[-1]:g}")
        if x is None:
            out.append(f"{pool} is within {KEEPS_UP:.0%} of the best pool's speedup at the highest CPU fraction "
                       f"measured: it does not fall behind for good ({span}).")
        elif x <= rows["cpu_fraction"].min():
            out.append(f"{pool} is below {KEEPS_UP:.0%} of the best pool's speedup at every CPU fraction measured "
                       f"({span}).")
        else:
            out.append(f"{pool} falls below {KEEPS_UP:.0%} of the best pool's speedup past CPU fraction {x:.2f} "
                       f"({span}).")
    return out


def sweep_reading(table: pd.DataFrame, axes: list[str], cores: int) -> list[str]:
    """Sentences for the report, chosen from the axes; every figure is taken from the table."""
    if table.empty:
        return ["No cell completed: there is nothing to read."]
    out = []
    if {"pool", "workload"} <= set(axes) and len(axes) == 2:
        out += by_pool_and_workload(table)
    if "concurrency" in axes:
        out += by_concurrency(table, axes, cores)
    if "switch_interval" in axes:
        out += by_switch_interval(table, axes)
    if {"pool", "cpu_fraction"} <= set(axes):
        out += by_cpu_fraction(table)
    if {"pool", "prefetch"} <= set(axes):
        for row in table.sort_values(["pool", "prefetch"]).itertuples():
            out.append(f"{row.pool} at prefetch multiplier {row.prefetch}: a free slot waited up to "
                       f"{_s(row.dispatch_gap_max_s)} for queued work (makespan {_s(row.makespan_s)}).")
    if not out:
        for row in table.itertuples():
            out.append(f"{row.label}: speedup {_x(row.speedup)}{_ideal(row.ideal_speedup)}, makespan "
                       f"{_s(row.makespan_s)}, second task started {_s(row.second_start_delay_s)} after the first.")
    for row in table[table["warning"].astype(bool)].itertuples():
        out.append(f"Caution, {row.label}: {row.warning}.")
    return out
