"""harness.analysis.timing: when each task waited and ran, how many ran at once, their lanes."""
from __future__ import annotations

import pandas as pd
from tables import tasks_table

from harness.analysis import timing


def test_timings_are_derived_per_task():
    t = timing.with_timings(tasks_table([(0.0, 0.5, 2.5, 1.0, "a")]))
    assert t.loc[0, "queue_wait_s"] == 0.5
    assert t.loc[0, "run_s"] == 2.0
    assert t.loc[0, "wait_s"] == 1.0


def test_overlap_counts_tasks_running_at_once():
    t = tasks_table([(0, 0, 2, 1, "a"), (0, 1, 3, 1, "b"), (0, 2, 4, 1, "a")])
    # at t=2 one task ends and another starts: never three at once
    assert timing.max_overlap(t) == 2
    steps = timing.running_over_time(t)
    assert steps["running"].iloc[-1] == 0


def test_green_lanes_are_packed_and_thread_lanes_follow_slots():
    green = tasks_table([(0, 0, 1, 0, "g1"), (0, 0, 1, 0, "g2"), (0, 1, 2, 0, "g3"), (0, 1.5, 3, 0, "g4")])
    assert timing.lanes(green, concurrency=2).tolist() == [0, 1, 0, 1]
    threads = tasks_table([(0, 0, 1, 0, "t9"), (0, 0, 1, 0, "t4"), (0, 1, 2, 0, "t4")])
    assert timing.lanes(threads, concurrency=2).tolist() == [0, 1, 1]


def test_dispatch_gaps_count_only_waits_with_work_queued():
    # two slots; tasks 3 and 4 were queued from the start but began 2 s after the slots freed
    tasks = pd.DataFrame({"submitted": [0, 0, 0, 0, 10.0], "started": [0, 0, 2.25, 2.25, 10.0],
                          "finished": [0.25, 0.25, 2.5, 2.5, 10.25], "cpu_s": 0.0,
                          "slot": ["g1", "g2", "g3", "g4", "g5"]})
    gaps = timing.dispatch_gaps(tasks, concurrency=2)
    # task 5 came long after the slot freed: idle, not a gap
    assert sorted(gaps.round(3).tolist()) == [2.0, 2.0]
