"""The event loop's side of a run: how late its loop woke (loop_lag.csv), how long a task held it, and how the
tasks' coroutines ran. Pure, no I/O.

A pool with an event loop (asyncio, gevent, eventlet) runs every task in flight on one thread: a task that
computes or blocks without yielding holds up every other, and the loop's timers fire late by as much. The
worker's probe (workloads.loop_lag) measures that lateness in windows of 0.1 s; each awaited task's record says
the longest it held the loop in one step (loop_block_s).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from workloads.loop_lag import REPORT_S

# A loop late by this much in a quarter of its windows (BLOCKED_SHARE) or more, or held this long by one step of a
# task, was blocked, not merely busy. A timer on an idle loop is late by well under a millisecond; on a loop switching
# among a thousand sleeping tasks (and Celery's own work) by a few ms, with rare spikes (measured on this 2-core
# machine at 1,000 io_sleep tasks: asyncio p95 6 ms, max 41 ms; gevent p95 19 ms, max 54 ms). Four 0.25 s cpu
# coroutines on asyncio: p95 997 ms.
BLOCKED_LAG_S = 0.05
# One late window in a short run is a hiccup (httpx's AsyncClient at 50 in flight: one step of 43 ms, one window 64 ms
# late in 15), not a loop that was kept from its timers.
BLOCKED_SHARE = 0.25


@dataclass(frozen=True)
class LoopLag:
    mean_s: float        # the ticks' mean lag while the measured tasks ran
    p95_s: float         # the 95th percentile of the windows' worst lag
    max_s: float         # the worst lag of any tick
    windows: int
    late_share: float = 0.0  # the share of the time in windows whose worst tick was BLOCKED_LAG_S late, or no tick


def loop_lag(lag: pd.DataFrame | None, start: float, end: float) -> LoopLag | None:
    """The lag of the windows reported while the measured tasks ran (start..end, epoch s; a window is stamped when it
    ends, so the one that ends just after `end` is counted too); None when there are none."""
    if lag is None or lag.empty:
        return None
    during = lag[(lag["t"] >= start) & (lag["t"] <= end + 0.2)]
    if during.empty:
        return None
    ticked = during[during["ticks"] > 0]
    if ticked.empty:
        return None
    # Time-weighted: a window that woke no timer (the loop blocked all along) counts as late, for its length; tables
    # before the window's length was kept (window_s) had windows of REPORT_S.
    length = during["window_s"] if "window_s" in during else pd.Series(REPORT_S, index=during.index)
    late = (during["ticks"] == 0) | (during["lag_max_s"] >= BLOCKED_LAG_S)
    return LoopLag(mean_s=float((ticked["lag_mean_s"] * ticked["ticks"]).sum() / ticked["ticks"].sum()),
                   p95_s=float(ticked["lag_max_s"].quantile(0.95)), max_s=float(ticked["lag_max_s"].max()),
                   windows=len(during), late_share=float(length[late].sum() / length.sum()))


def how_ran(tasks: pd.DataFrame) -> dict[str, int]:
    """How many tasks ran each way (the `ran` column): awaited on the loop, in its executor, through asyncio.run."""
    if "ran" not in tasks:
        return {}
    return {str(k): int(v) for k, v in tasks["ran"].dropna().value_counts().items()}


def longest_hold(tasks: pd.DataFrame) -> tuple[float, str] | None:
    """The longest any task held the loop in one step, and the task's name."""
    if "loop_block_s" not in tasks or tasks["loop_block_s"].dropna().empty:
        return None
    row = tasks.loc[tasks["loop_block_s"].idxmax()]
    return float(row["loop_block_s"]), str(row["name"])


def blocked_note(lag: LoopLag | None, hold: tuple[float, str] | None, loop: str) -> str | None:
    """LOOP BLOCKED, when the loop's timers fired BLOCKED_LAG_S late or worse in a quarter of its windows or more, or
    once while a task held it that long: what held it, and what to do."""
    held_long = hold is not None and hold[0] >= BLOCKED_LAG_S
    if lag is None or not (lag.late_share >= BLOCKED_SHARE or (held_long and lag.max_s >= BLOCKED_LAG_S)):
        return None
    where = "the asyncio pool's event loop" if loop == "asyncio" else f"{loop}'s hub"
    if held_long:
        assert hold is not None
        held = (f"; one step of a {hold[1]} task ran {hold[0] * 1000:,.0f} ms without awaiting (a blocking call or "
                "CPU work in a coroutine)")
    elif hold is not None:  # many short steps, none long: the tasks' CPU between their waits, queued on one thread
        held = (f"; no one step held it that long (the longest {hold[0] * 1000:,.1f} ms): the tasks' CPU between their "
                "awaits, with Celery's own work for each task on the same thread, kept the loop busy")
    else:
        held = ""
    fix = ("await it (asyncio.sleep, an async driver) or move it off the loop (asyncio.to_thread, a process pool)"
           if loop == "asyncio" else "make the call cooperative (a patched or green driver) or run CPU work elsewhere")
    return (f"LOOP BLOCKED: {where} woke its timers up to {lag.max_s * 1000:,.0f} ms late (mean "
            f"{lag.mean_s * 1000:,.1f} ms){held}. While one task holds the loop, every other task on it waits: "
            f"{fix}.")


def asyncio_run_note(ran: dict[str, int], pool: str, cpu_median_s: float | None = None) -> str | None:
    """Coroutine tasks a pool could not await, each run through asyncio.run: a loop made and closed per task (their
    own CPU, `cpu_median_s`, includes it: 0.47 ms a task here, against 0.02 ms for the same coroutine awaited)."""
    n = ran.get("asyncio.run", 0)
    if not n:
        return None
    cost = f" (a task's own CPU, the loop's included: {cpu_median_s * 1000:.2f} ms, median)" if cpu_median_s else ""
    return (f"ASYNCIO.RUN: {n} coroutine tasks ran through asyncio.run on the {pool} pool, which cannot await them: "
            f"each made and closed an event loop of its own{cost}, and nothing else ran on it. The asyncio pool "
            "(POOL=asyncio) awaits them on one loop.")


def executor_note(ran: dict[str, int], threads: int) -> str | None:
    """Plain-function tasks on the asyncio pool: they ran in its loop's default executor, a thread pool."""
    n = ran.get("executor", 0)
    if not n:
        return None
    return (f"EXECUTOR: {n} tasks are plain functions, so the asyncio pool ran them in its loop's default executor "
            f"({threads} threads, sharing the GIL): at most {threads} at once, like the threads pool at that size.")
