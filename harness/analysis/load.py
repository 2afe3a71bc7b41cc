"""An open-loop load's figures (RATE, harness.model.arrivals): latency from each task's scheduled time, its
percentile spectrum, how late the submitter was, and whether the pool kept up. Pure functions on tasks.csv and
queue.csv.

Latency runs from the scheduled time, not the moment the task was sent, so a submitter held up by a stalled
system cannot hide the stall (coordinated omission, as wrk2 measures it). The spectrum comes from an HdrHistogram
(microseconds, three significant digits): its percentiles are exact to 0.1 % at any depth of the tail, where a
sample quantile of a few hundred tasks interpolates.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

# Percentiles a load run reports, and those its spectrum figure marks.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# HdrHistogram's range: 1 µs to an hour, three significant digits.
LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
# The submitter fell behind when its p99 lateness exceeded this, or two gaps between arrivals at the rate: a task
# sent that late arrives in another moment than the schedule said (the run is marked, its latencies are still
# measured from the schedule).
BEHIND_FLOOR_S = 0.02
BEHIND_GAPS = 2.0
# Saturated: the tasks in the system (scheduled, not finished) grew through the load's second half by more than
# this share of the rate per second (and at least GROWTH_FLOOR a second), or fewer finished per second than
# arrived by more than FINISH_SHORTFALL (beyond the noise of a few hundred arrivals).
GROWTH_SHARE = 0.05
GROWTH_FLOOR = 0.5
FINISH_SHORTFALL = 0.15


def histogram(seconds: pd.Series) -> HdrHistogram:
    """Seconds into an HdrHistogram of microseconds (values beyond its range clipped to it)."""
    h = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    for value in np.clip(np.round(seconds.dropna().to_numpy(dtype=float) * 1e6), LOWEST_US, HIGHEST_US):
        h.record_value(int(value))
    return h


def percentiles(h: HdrHistogram, points: tuple[float, ...] = PERCENTILES) -> dict[str, float | None]:
    """p50 ... p99.9 and max, in seconds (None with no values)."""
    if h.get_total_count() == 0:
        return {**{_name(p): None for p in points}, "max": None}
    out: dict[str, float | None] = {_name(p): h.get_value_at_percentile(p) / 1e6 for p in points}
    out["max"] = h.get_max_value() / 1e6
    return out


def spectrum(seconds: pd.Series, steps_per_half: int = 5) -> pd.DataFrame:
    """The latency spectrum in wrk2's manner: the value at each percentile, with the percentiles spaced evenly on
    1/(1 - p) (the tail drawn as wide as the body). Columns percentile, value_s, one_over_tail."""
    h = histogram(seconds)
    if h.get_total_count() == 0:
        return pd.DataFrame(columns=["percentile", "value_s", "one_over_tail"])
    count = h.get_total_count()
    points = []
    halvings = int(np.ceil(np.log2(max(count, 2)))) + 1  # as deep as the tail has values
    for k in range(halvings * steps_per_half + 1):
        tail = 0.5 ** (k / steps_per_half)
        points.append(100.0 * (1 - tail))
    rows = [{"percentile": p, "value_s": h.get_value_at_percentile(p) / 1e6, "one_over_tail": 1 / (1 - p / 100)}
            for p in points if p < 100]
    rows.append({"percentile": 100.0, "value_s": h.get_max_value() / 1e6, "one_over_tail": float(count)})
    return pd.DataFrame(rows)


def _name(p: float) -> str:
    return f"p{p:g}".replace(".", "")


def latency_at(tasks: pd.DataFrame, warmup_s: float, percentile: float) -> float | None:
    """The latency (scheduled time to finish) at `percentile`, of the tasks scheduled after the warm-up."""
    start = float(tasks["scheduled"].min())
    after = tasks[tasks["scheduled"] >= start + warmup_s]
    h = histogram(after["finished"] - after["scheduled"])
    return h.get_value_at_percentile(percentile) / 1e6 if h.get_total_count() else None


def in_system(tasks: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Tasks scheduled by each time and not yet finished: the queue and the tasks running."""
    scheduled = np.sort(tasks["scheduled"].to_numpy(dtype=float))
    finished = np.sort(tasks["finished"].dropna().to_numpy(dtype=float))
    return np.searchsorted(scheduled, times, side="right") - np.searchsorted(finished, times, side="right")


def load_figures(tasks: pd.DataFrame, rate: float, load_time_s: float, warmup_s: float,
                 queue: pd.DataFrame | None = None) -> dict[str, Any]:
    """The load's figures from its measured tasks (columns scheduled, submitted, started, finished)."""
    t = tasks.sort_values("scheduled")
    start = float(t["scheduled"].min())
    after = t[t["scheduled"] >= start + warmup_s]
    latency = after["finished"] - after["scheduled"]
    late = t["submitted"] - t["scheduled"]
    late_p = percentiles(histogram(late.clip(lower=0)), (50.0, 99.0))
    behind_limit = max(BEHIND_FLOOR_S, BEHIND_GAPS / rate)
    half, end = start + load_time_s / 2, start + load_time_s
    times = np.linspace(half, end, 21)
    growth = float(np.polyfit(times - half, in_system(t, times), 1)[0])
    finished_in_half = int(((t["finished"] >= half) & (t["finished"] < end)).sum())
    finish_rate = finished_in_half / (load_time_s / 2)
    offered = len(t) / load_time_s
    saturated = (growth > max(GROWTH_FLOOR, GROWTH_SHARE * offered)
                 or finish_rate < (1 - FINISH_SHORTFALL) * offered)
    depth = queue[(queue["t"] >= half) & (queue["t"] <= end)] if queue is not None and len(queue) else None
    depth_growth = (float(np.polyfit(depth["t"] - half, depth["depth"], 1)[0])
                    if depth is not None and len(depth) >= 3 else None)
    return {
        "offered_rate": offered,
        "finish_rate": finish_rate,
        "backlog_growth_per_s": growth,
        "queue_depth_growth_per_s": depth_growth,
        "queue_depth_max": int(queue["depth"].max()) if queue is not None and len(queue) else None,
        "saturated": bool(saturated),
        "warmup_s": warmup_s,
        "latency_tasks": int(latency.notna().sum()),
        **{f"latency_{k}_s": v for k, v in percentiles(histogram(latency)).items()},
        **{f"wait_{k}_s": v for k, v in percentiles(histogram(after["started"] - after["scheduled"]),
                                                    (50.0, 99.0)).items()},
        "submit_late_p50_s": late_p["p50"],
        "submit_late_p99_s": late_p["p99"],
        "submit_late_max_s": late_p["max"],
        "submitter_behind": bool(late_p["p99"] is not None and late_p["p99"] > behind_limit),
    }


def saturation_sentence(figures: dict[str, Any]) -> str | None:
    """"saturated: 40 tasks/s offered, 27 finished per second, the queue grew by 13 a second", or None."""
    if not figures.get("saturated"):
        return None
    return (f"SATURATED: {figures['offered_rate']:.3g} tasks/s offered, {figures['finish_rate']:.3g} finished per "
            f"second, the queue grew by {max(figures['backlog_growth_per_s'], 0):.2g} a second: this pool does not "
            "hold this rate (its latency grows for as long as the load lasts).")


def behind_sentence(figures: dict[str, Any], rate: float) -> str | None:
    if not figures.get("submitter_behind"):
        return None
    return (f"SUBMITTER BEHIND: tasks were sent {figures['submit_late_p99_s'] * 1000:.0f} ms late at p99 (max "
            f"{figures['submit_late_max_s'] * 1000:.0f} ms) at {rate:g}/s: the arrivals were not the schedule's; "
            "latencies still count from the schedule, but lower the rate or quiet the machine before trusting them.")
