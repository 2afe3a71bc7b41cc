"""Per-task times and the timeline: pure functions on the tasks table (one row per task). No I/O."""
from __future__ import annotations

import pandas as pd


def with_timings(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per-task derived times: queue wait, run time, and wait while running (run time minus own CPU).

    For CPU work the wait while running is the GIL wait (or, in a green pool, the wait for the
    event loop); for I/O work it is the I/O itself.
    """
    out = tasks.copy()
    # An open-loop load's task waits from its scheduled time (harness.analysis.load): a late send is the system's
    # delay too, which measuring from the send would hide.
    origin = out["scheduled"] if "scheduled" in out and out["scheduled"].notna().all() else out["submitted"]
    out["queue_wait_s"] = out["started"] - origin
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


def contended_windows(tasks: pd.DataFrame, at_least: int = 2) -> list[tuple[float, float]]:
    """The (start, end) intervals during which at least `at_least` tasks were running at once."""
    if tasks.empty:
        return []
    steps = running_over_time(tasks)
    windows, opened = [], None
    for t, running in zip(steps["t"], steps["running"], strict=False):
        if running >= at_least and opened is None:
            opened = float(t)
        elif running < at_least and opened is not None:
            if t > opened:
                windows.append((opened, float(t)))
            opened = None
    return windows


def max_overlap(tasks: pd.DataFrame) -> int:
    if tasks.empty:
        return 0
    return int(running_over_time(tasks)["running"].max())


def owner(slot: str) -> str:
    """Whose a slot is, where a run has several workers or hosts: its name's prefix ("host2 worker 3"), else ""."""
    return slot.rpartition(": ")[0]


def slot_order(tasks: pd.DataFrame) -> list[str]:
    """The slots in lane order: grouped by host and worker (their names' prefix), each group in order of first task."""
    first = tasks.sort_values("started")["slot"].astype(str).unique()
    return sorted(first, key=lambda s: owner(s))  # a stable sort: first-task order within a group


def lane_labels(tasks: pd.DataFrame, concurrency: int) -> list[str] | None:
    """The lanes' names where each is a slot (lanes()): "slot 3", or "host2 worker 3: slot 1" with several workers;
    None where lanes are packed."""
    if tasks["slot"].astype(str).nunique() > max(concurrency, 1):
        return None
    labels: list[str] = []
    count: dict[str, int] = {}
    for slot in slot_order(tasks):
        group = owner(slot)
        count[group] = count.get(group, 0) + 1
        labels.append(f"{group}: slot {count[group]}" if group else f"slot {count[group]}")
    return labels


def lanes(tasks: pd.DataFrame, concurrency: int) -> pd.Series:
    """A timeline lane per task: its slot where slots are few (processes, threads), else packed.

    A gevent or eventlet pool spawns a new greenlet per task, so its slots are as many as its
    tasks; there the lanes are packed greedily: each task takes the lowest lane free at its start.
    """
    slots = tasks["slot"].astype(str)
    if slots.nunique() <= max(concurrency, 1):
        order = {s: i for i, s in enumerate(slot_order(tasks))}
        return slots.map(order)
    lane_free_at: list[float] = []
    assigned = pd.Series(0, index=tasks.index)
    for idx, row in tasks.sort_values("started").iterrows():
        for lane, free_at in enumerate(lane_free_at):  # noqa: B007 (the lane found is used after the loop)
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
