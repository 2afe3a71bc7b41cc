"""harness.analysis.summary: a run's numbers and notes from small hand-made tables."""
from __future__ import annotations

import pytest
from tables import samples_table, tasks_table

from harness.analysis import summary
from harness.model.pools import pool


def ctx(**kw):
    base = dict(pool="threads", workload="cpu", kind="python-cpu", concurrency=2, tasks=2, duration=1.0,
                switch_interval=0.005, cores=2)
    base.update(kw)
    return summary.RunContext(**base)


def test_two_busy_waits_sharing_one_core_are_phantom():
    tasks = tasks_table([(0, 0, 1, 0.5, "t1"), (0, 0, 1, 0.5, "t2")])
    samples = samples_table({1: [(0, 0.0), (1, 1.0)]})
    s = summary.summarize(tasks, samples, ctx(workload="busy_wait"))
    assert s.phantom and s.phantom_cores == pytest.approx(1.0)
    assert s.mean_tasks_running == pytest.approx(2.0)
    assert s.mean_cores_used == pytest.approx(1.0)
    assert any("PHANTOM" in n for n in s.notes)


def test_two_busy_waits_on_two_cores_are_real():
    tasks = tasks_table([(0, 0, 1, 0.98, "p1"), (0, 0, 1, 0.97, "p2")])
    samples = samples_table({1: [(0, 0.0), (1, 0.98)], 2: [(0, 0.0), (1, 0.97)]})
    s = summary.summarize(tasks, samples, ctx(pool="prefork", workload="busy_wait"))
    assert not s.phantom
    assert s.speedup == pytest.approx(2.0)
    assert s.efficiency == pytest.approx(1.0)


def test_fixed_work_serial_time_is_the_tasks_own_cpu():
    tasks = tasks_table([(0, 0, 2, 1.0, "t1"), (0, 0, 2, 1.0, "t2")])
    s = summary.summarize(tasks, samples_table({1: [(0, 0.0), (2, 2.0)]}), ctx(duration=0.9))
    assert s.serial_s == pytest.approx(2.0) and s.speedup == pytest.approx(1.0)
    assert s.gil_wait_mean_s == pytest.approx(1.0) and s.gil_wait_fraction == pytest.approx(0.5)


def test_wrong_switch_interval_is_reported():
    tasks = tasks_table([(0, 0, 1, 1.0, "t1")]).assign(switch_interval=0.005)
    s = summary.summarize(tasks, samples_table({1: [(0, 0.0), (1, 1.0)]}), ctx(tasks=1, switch_interval=0.001))
    assert not s.switch_interval_ok
    assert any("WARNING" in n for n in s.notes)


def test_speedup_is_measured_against_one_task_alone_and_inflation_is_flagged():
    # The free-threaded trap: two threads each burn twice the CPU the task needs alone and finish
    # together in the time two tasks alone take. The cores were busy; the work went no faster.
    reference = tasks_table([(0.0, 0.0, 1.0, 1.0, "t1")]).assign(role="reference")
    batch = tasks_table([(1.0, 1.0, 3.0, 2.0, "t1"), (1.0, 1.0, 3.0, 2.0, "t2")])
    samples = samples_table({1: [(1.0, 0.0), (3.0, 4.0)]})
    s = summary.summarize(batch, samples, ctx(workload="cpu_shared"), reference)
    assert s.serial_basis == "tasks x one task run alone (measured)" and s.alone_s == 1.0
    assert s.speedup == pytest.approx(1.0)  # 2 tasks x 1 s alone / 2 s
    assert s.work_inflation == pytest.approx(2.0)
    assert any(n.startswith("WORK INFLATION 2.00x") for n in s.notes)
    # The same numbers on work that shares nothing: no contention is possible, so the machine slowed.
    own = summary.summarize(batch, samples, ctx(workload="cpu"), reference)
    assert not any("WORK INFLATION" in n or "contended" in n for n in own.notes)
    assert any("the machine ran slower during the batch than alone" in n for n in own.notes)
    assert own.unsteady is True and "speed drift" in own.unsteady_cause
    # Inferred from the tasks' own CPU (the rule kept for folders without a reference), it reads 2x.
    assert summary.summarize(batch, samples, ctx()).speedup == pytest.approx(2.0)


def test_the_gil_serialising_the_same_work_is_no_inflation():
    reference = tasks_table([(0.0, 0.0, 1.0, 1.0, "t1")])
    batch = tasks_table([(1.0, 1.0, 3.0, 1.0, "t1"), (1.0, 1.0, 3.0, 1.0, "t2")])
    s = summary.summarize(batch, samples_table({1: [(1.0, 0.0), (3.0, 2.0)]}), ctx(), reference)
    assert s.speedup == pytest.approx(1.0) and s.work_inflation == pytest.approx(1.0)
    assert not any("INFLATION" in n for n in s.notes)
    io = summary.summarize(batch, samples_table({1: [(1.0, 0.0), (3.0, 2.0)]}),
                           ctx(workload="io_sleep", kind="io"), reference)
    assert io.work_inflation is None  # a sleep has no fixed amount of work to compare


def test_a_gil_turned_back_on_in_a_free_threaded_worker_is_said():
    tasks = tasks_table([(0, 0, 1, 1.0, "t1"), (0, 0, 1, 1.0, "t2")]).assign(gil_enabled=[True, False])
    samples = samples_table({1: [(0, 0.0), (1, 2.0)]})
    s = summary.summarize(tasks, samples, ctx(free_threaded=True))
    assert s.gil_enabled_tasks == 1 and any(n.startswith("THE GIL WAS ON in 1 of 2 tasks") for n in s.notes)
    asked = summary.summarize(tasks, samples, ctx(free_threaded=True, gil="on"))
    assert not any("THE GIL WAS ON" in n for n in asked.notes)
    gil_build = summary.summarize(tasks, samples, ctx())
    assert not any("THE GIL WAS ON" in n for n in gil_build.notes)


def test_without_a_gil_python_code_runs_in_parallel_wherever_c_code_releasing_it_does():
    assert pool("threads").ideal_speedup("python-cpu", 4, 10, 2, gil_free=True) == 2
    assert pool("threads").ideal_speedup("python-cpu", 4, 10, 2) == 1
    assert pool("gevent").ideal_speedup("python-cpu", 4, 10, 2, gil_free=True) == 1  # still one OS thread
    assert pool("solo").ideal_speedup("python-cpu", 4, 10, 2, gil_free=True) == 1
    free = summary.summarize(tasks_table([(0, 0, 1, 1.0, "t1"), (0, 0, 1, 1.0, "t2")]).assign(gil_enabled=False),
                             samples_table({1: [(0, 0.0), (1, 2.0)]}), ctx(free_threaded=True))
    assert free.ideal_speedup == 2


def test_more_tasks_than_cores_is_not_blamed_on_a_gil_the_worker_does_not_have():
    # Eight free-threaded tasks on 2 cores, both cores busy: they took turns on the cores; no GIL did it.
    tasks = tasks_table([(0, 0, 1, 0.25, f"t{i}") for i in range(8)]).assign(gil_enabled=False)
    samples = samples_table({1: [(0, 0.0), (1, 2.0)]})
    free = summary.summarize(tasks, samples, ctx(free_threaded=True, concurrency=8))
    assert not any("GIL" in n for n in free.notes)
    assert any(n.startswith("8.0 tasks running on average on 2 cores: they took turns") for n in free.notes)
    # The same eight on a GIL build that got one core of the two: the GIL took the core it could have had.
    held = summary.summarize(tasks.assign(gil_enabled=True), samples_table({1: [(0, 0.0), (1, 1.0)]}),
                             ctx(concurrency=8))
    assert any(n.endswith("the GIL took the difference.") for n in held.notes)
    # Free-threaded but only one core used of two: not a GIL, something the tasks share (or the OS).
    locked = summary.summarize(tasks, samples_table({1: [(0, 0.0), (1, 1.0)]}), ctx(free_threaded=True, concurrency=8))
    assert any("no GIL on this worker" in n for n in locked.notes)


def test_a_green_pools_seconds_long_dispatch_gap_on_redis_is_said_to_be_the_brokers():
    from harness.analysis.summary import RunContext, broker_gap_note
    from harness.results.records import Summary

    gap = Summary(dispatch_gap_max_s=1.95)
    ctx = dict(workload="io_sleep", kind="io", concurrency=2, tasks=8, duration=0.05, switch_interval=0.005, cores=2)
    said = broker_gap_note(gap, RunContext(pool="gevent", broker="redis", **ctx))
    assert said.startswith("THE BROKER'S GAP: free slots waited up to 1.95 s") and "BROKER=rabbitmq" in said
    assert broker_gap_note(gap, RunContext(pool="gevent", broker="rabbitmq", **ctx)) == ""  # pushed: not the case
    assert broker_gap_note(gap, RunContext(pool="threads", broker="redis", **ctx)) == ""  # not a synloop pool
    assert broker_gap_note(Summary(dispatch_gap_max_s=0.004), RunContext(pool="gevent", **ctx)) == ""
