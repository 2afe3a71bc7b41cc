"""Lesson verdicts on hand-made summaries: each holds when the physics does, and fails when it does not."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import timing as analysis
from harness.course import verdicts
from harness.results.records import Summary


def s(**kw):
    base = dict(speedup=1.0, mean_cores_used=1.0, max_tasks_running=1, phantom=False, second_start_delay_s=0.0,
                queue_wait_p50_s=0.0, queue_wait_p95_s=0.0, rtt_mean_s=0.005)
    return Summary(**{**base, **kw})


def test_solo():
    assert verdicts.solo_one_at_a_time(s(max_tasks_running=1, speedup=0.98)).held
    assert not verdicts.solo_one_at_a_time(s(max_tasks_running=2, speedup=1.9)).held


def test_prefork_scaling():
    assert verdicts.prefork_scales_to_cores(s(speedup=1.85), s(speedup=1.9), cores=2).held
    assert not verdicts.prefork_scales_to_cores(s(speedup=1.0), s(speedup=1.0), cores=2).held
    assert not verdicts.prefork_scales_to_cores(s(speedup=1.8), s(speedup=3.5), cores=2).held  # above cores: impossible
    assert verdicts.prefork_scales_to_cores(s(speedup=1.48), s(speedup=1.81), cores=2).held  # dispatch gaps hidden
    assert not verdicts.prefork_scales_to_cores(s(speedup=1.8), s(speedup=2.3), cores=2).held


def test_threads_cpu_versus_io():
    assert verdicts.threads_cpu_versus_io(s(speedup=0.97), s(speedup=3.8, max_tasks_running=4), 4).held
    assert not verdicts.threads_cpu_versus_io(s(speedup=1.9), s(speedup=3.8), 4).held
    assert not verdicts.threads_cpu_versus_io(s(speedup=0.97), s(speedup=1.0), 4).held


def test_busy_wait_phantom():
    assert verdicts.busy_wait_is_phantom(s(phantom=True, speedup=1.9, mean_cores_used=1.0), s(speedup=0.98)).held
    assert not verdicts.busy_wait_is_phantom(s(phantom=False, speedup=1.9, mean_cores_used=1.9), s(speedup=0.98)).held


def test_switch_interval():
    assert verdicts.switch_interval_delays_second_task(s(second_start_delay_s=0.003), s(second_start_delay_s=0.98),
                                                       0.005, 1.0, 1.0).held
    assert not verdicts.switch_interval_delays_second_task(s(second_start_delay_s=0.003), s(second_start_delay_s=0.004),
                                                           0.005, 1.0, 1.0).held


def test_green_pools():
    good = (s(speedup=18.0), s(queue_wait_p50_s=0.45), s(queue_wait_p95_s=2.1), 20, 0.45)
    assert verdicts.green_pools_overlap_io_but_cpu_blocks(*good).held
    no_gap = (s(speedup=18.0), s(queue_wait_p50_s=0.45), s(queue_wait_p95_s=0.3), 20, 0.45)
    assert not verdicts.green_pools_overlap_io_but_cpu_blocks(*no_gap).held


def test_gil_release_and_convoy():
    assert verdicts.gil_release_runs_in_parallel(s(mean_cores_used=1.9), cores=2).held
    assert not verdicts.gil_release_runs_in_parallel(s(mean_cores_used=1.0), cores=2).held
    assert verdicts.convoy_effect(s(rtt_mean_s=0.005), s(rtt_mean_s=0.011), s(rtt_mean_s=0.0052)).held
    assert not verdicts.convoy_effect(s(rtt_mean_s=0.005), s(rtt_mean_s=0.0055), s(rtt_mean_s=0.005)).held


def test_decision_table_and_choice():
    rows = pd.DataFrame([
        ("prefork", "cpu", 1.9), ("threads", "cpu", 0.97), ("solo", "cpu", 0.99),
        ("prefork", "io_sleep", 1.9), ("gevent", "io_sleep", 1.95), ("solo", "io_sleep", 0.98),
        ("threads", "gil_release", 1.9), ("gevent", "gil_release", 0.98), ("prefork", "gil_release", 1.85),
    ], columns=["pool", "workload", "speedup"])
    table = verdicts.decision_table(rows)
    assert table.set_index("workload")["best pool"].to_dict() == {"cpu": "prefork", "io_sleep": "gevent",
                                                                  "gil_release": "threads"}
    assert verdicts.choosing_a_pool(table, cores=2).held
    wrong = table.assign(**{"best pool": ["threads", "solo", "gevent"]})
    assert not verdicts.choosing_a_pool(wrong, cores=2).held


def test_verdict_line_says_held_or_not():
    line = verdicts.solo_one_at_a_time(s()).line()
    assert line.startswith("verdict: HELD - solo runs one task at a time")


def test_time_breakdown_adds_up_to_submit_to_finish():
    tasks = pd.DataFrame({"submitted": [0.0, 0.0], "started": [0.0, 1.0], "finished": [1.0, 3.0],
                          "cpu_s": [0.5, 2.0]})
    parts = analysis.time_breakdown(tasks)
    assert parts.sum(axis=1).tolist() == pytest.approx([1.0, 3.0])
    assert parts.loc[2].tolist() == pytest.approx([1.0, 0.0, 2.0])


def test_free_threading():
    free, gil_on = s(speedup=1.88, work_inflation=1.02), s(speedup=0.99, work_inflation=0.99)
    shared = s(speedup=1.12, mean_cores_used=1.92, work_inflation=1.70)
    assert verdicts.free_threading(free, gil_on, shared, cores=2).held
    assert not verdicts.free_threading(s(speedup=0.98, work_inflation=1.0), gil_on, shared, cores=2).held
    assert not verdicts.free_threading(free, gil_on, s(speedup=1.8, work_inflation=1.05), cores=2).held


def test_green_trap():
    serial = ("SERIAL: gevent ran 1.0 tasks at once on db work of 8 slots, each task 0% CPU: the psycopg2 driver does "
              "not yield to the event loop while it waits")
    trapped = s(speedup=0.98, max_tasks_running=1, notes=[serial])
    patched, threads = s(speedup=7.6, max_tasks_running=8), s(speedup=7.65, max_tasks_running=8)
    v = verdicts.green_trap(trapped, patched, threads, 8)
    assert v.held and v.lesson == 12 and "gevent + psycopg2 0.98x (at most 1 at once, said SERIAL)" in v.measured
    # The trap not said, or not sprung, or psycogreen not overlapping: the lesson did not show what it claims.
    assert not verdicts.green_trap(s(speedup=0.98, max_tasks_running=1, notes=[]), patched, threads, 8).held
    assert not verdicts.green_trap(s(speedup=7.5, max_tasks_running=8, notes=[]), patched, threads, 8).held
    assert not verdicts.green_trap(trapped, s(speedup=1.0, max_tasks_running=1), threads, 8).held


def test_rewrite_as_async():
    blocked = ["LOOP BLOCKED: the asyncio pool's event loop woke its timers up to 612 ms late"]
    aio, gevent = s(speedup=180.0, pss_peak_mib=52.0), s(speedup=190.0, pss_peak_mib=58.0)
    threads, cpu = s(speedup=185.0, pss_peak_mib=61.0), s(speedup=1.0, loop_lag_max_s=0.61, notes=blocked)
    v = verdicts.rewrite_as_async(aio, gevent, threads, cpu, 300)
    assert v.held and v.lesson == 13 and "asyncio 180.0x in 52 MiB" in v.measured and "610 ms late" in v.measured
    # Slower than gevent by more than 10%, heavier than threads, or a CPU coroutine the lab did not see: not held.
    assert not verdicts.rewrite_as_async(s(speedup=160.0, pss_peak_mib=52.0), gevent, threads, cpu, 300).held
    assert not verdicts.rewrite_as_async(s(speedup=180.0, pss_peak_mib=70.0), gevent, threads, cpu, 300).held
    assert not verdicts.rewrite_as_async(aio, gevent, threads, s(loop_lag_max_s=0.61, notes=[]), 300).held
    assert not verdicts.rewrite_as_async(aio, gevent, threads, s(loop_lag_max_s=0.02, notes=blocked), 300).held
