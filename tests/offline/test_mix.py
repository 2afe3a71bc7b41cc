"""A mix of the user's calls, on hand-made tables: its figures per task name, no speedup, and the advisor's queue
split (which names go where, and when the measured split is recommended)."""
from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from harness.analysis import advice
from harness.analysis.mix import per_task, per_task_by_cell
from harness.analysis.summary import RunContext, summarize
from harness.present.console import split_lines


def mix_tasks() -> pd.DataFrame:
    """Two CPU tasks (0.1 s, all CPU) and three waits (0.2 s, 5 % CPU), submitted at 0, over a 1 s batch."""
    rows = [("app.render", 0.0, 0.0, 0.1, 0.1), ("app.render", 0.0, 0.1, 0.2, 0.1),
            ("app.notify", 0.0, 0.0, 0.2, 0.01), ("app.notify", 0.0, 0.2, 0.4, 0.01),
            ("app.notify", 0.0, 0.8, 1.0, 0.01)]
    frame = pd.DataFrame(rows, columns=["name", "submitted", "started", "finished", "cpu_s"])
    return frame.assign(switch_interval=0.005, error=None, slot="thread 1", gil_enabled=None)


def test_per_task_gives_each_name_its_share_of_the_throughput_and_its_own_latencies():
    rows = {r["task"]: r for r in per_task(mix_tasks(), makespan_s=1.0)}
    assert list(rows) == ["app.render", "app.notify"]  # in the order the names first ran
    render, notify = rows["app.render"], rows["app.notify"]
    assert render["tasks"] == 2 and notify["tasks"] == 3 and render["failed"] == 0
    assert render["throughput_per_s"] == 2.0 and notify["throughput_per_s"] == 3.0
    assert math.isclose(render["latency_p95_s"], 0.195) and math.isclose(notify["latency_p50_s"], 0.4)
    assert math.isclose(render["cpu_share"], 1.0) and math.isclose(notify["cpu_share"], 0.05)
    assert math.isclose(notify["off_cpu_share"], 0.95)


def test_a_mix_has_no_speedup_but_its_figures_per_task_name():
    ctx = RunContext(pool="threads", workload="app", kind="own", concurrency=2, tasks=5, duration=0.25,
                     switch_interval=0.005, cores=2)
    summary = summarize(mix_tasks(), pd.DataFrame(columns=["t", "kind", "pid", "user_s", "system_s"]), ctx)
    assert math.isnan(summary.speedup) and summary.efficiency is None and math.isnan(summary.serial_s)
    assert "mix of your calls" in summary.serial_basis
    assert summary.throughput_per_s == 5.0 and [r["task"] for r in summary.per_task] == ["app.render", "app.notify"]


def test_per_task_by_cell_takes_the_median_over_repeats():
    a = per_task(mix_tasks(), makespan_s=1.0)
    b = per_task(mix_tasks(), makespan_s=2.0)
    table = per_task_by_cell([("threads c=2", a), ("threads c=2", b), ("solo c=1", None)])
    render = table[(table["label"] == "threads c=2") & (table["task"] == "app.render")].iloc[0]
    assert render["throughput_per_s"] == 1.5 and len(table) == 2


PROBE = [{"task": "app.render", "cpu_share": 0.97}, {"task": "app.revenue", "cpu_share": 0.6},
         {"task": "app.notify", "cpu_share": 0.02}]
POOLS = ["solo", "prefork", "threads", "gevent", "eventlet"]


def test_the_split_puts_computing_names_on_processes_and_waiting_ones_on_cheap_slots():
    split = advice.plan_split(PROBE, cores=2, pools=POOLS)
    assert split["cpu_tasks"] == ["app.render", "app.revenue"] and split["waiting_tasks"] == ["app.notify"]
    assert (split["cpu_pool"], split["cpu_concurrency"]) == ("prefork", 2)
    assert split["waiting_pool"] == "gevent"  # green, not deprecated, where it imports
    assert split["waiting_concurrency"] == 100  # 2 cores / 2 % CPU
    assert split["routes"] == "app.render=prefork:2;app.revenue=prefork:2"
    assert advice.plan_split(PROBE, 2, ["solo", "prefork", "threads"])["waiting_pool"] == "threads"
    # All of one kind, or no pool that runs Python in parallel: nothing to split.
    assert advice.plan_split(PROBE[:2], 2, POOLS) is None and advice.plan_split(PROBE, 2, ["solo", "gevent"]) is None


def _table(split_rate: float) -> pd.DataFrame:
    rows = [("solo", 1, None, 10.0), ("prefork", 8, None, 50.0), ("threads", 16, None, 30.0),
            ("gevent", 100, None, 12.0), ("gevent", 100, "app.render=prefork:2;app.revenue=prefork:2", split_rate)]
    return pd.DataFrame(rows, columns=["pool", "concurrency", "routes", "throughput_per_s"]).assign(
        speedup=math.nan, pss_peak_mib=100.0)


def test_a_split_that_beats_every_single_pool_is_recommended_with_its_routes_and_workers():
    plan = advice.plan_split(PROBE, cores=2, pools=POOLS)
    found = advice.recommend(_table(65.0), 0.3, plan, "shop")
    assert (found.pool, found.concurrency) == ("prefork", 8)  # the best single pool, the split aside
    split = found.split
    assert split["recommended"] and math.isclose(split["ratio"], 1.3)
    assert math.isclose(split["vs_waiting_pool_alone"], 65.0 / 12.0)
    assert "Better still, split the queues: Route app.render, app.revenue to a prefork queue (c=2)" in found.reason
    assert split["commands"] == ["celery -A shop worker -P prefork -c 2 -Q cpu",
                                 "celery -A shop worker -P gevent -c 100 -Q io"]
    text = "\n".join(split_lines(found))
    assert '"app.notify": {"queue": "io"},' in text and "celery -A shop worker -P gevent -c 100 -Q io" in text


def test_a_split_within_the_noise_is_said_but_not_recommended():
    plan = advice.plan_split(PROBE, cores=2, pools=POOLS)
    found = advice.recommend(_table(53.0), 0.3, plan, "shop")  # 1.06x the best single pool: within 10 %
    assert not found.split["recommended"] and "Better still" not in found.reason
    assert any(note.startswith("A split measured, not worth it") for note in found.notes)
    assert split_lines(found) == []


def _summary(**fields):
    from harness.results.records import Summary

    base = dict(tasks_done=8, mean_tasks_running=1.0, max_tasks_running=1, task_cpu_share=0.02)
    return Summary(**{**base, **fields})


def _io(pool: str, driver: str | None = "psycopg2", concurrency: int = 4) -> RunContext:
    return RunContext(pool=pool, workload="db", kind="io", concurrency=concurrency, tasks=8, duration=0.25,
                      switch_interval=0.005, cores=2, driver=driver)


def test_waits_run_one_at_a_time_on_a_pool_that_overlaps_them_are_said_with_the_driver():
    from harness.analysis.summary import serial_waits

    green = serial_waits(_summary(), _io("gevent"))
    assert green.startswith("SERIAL: gevent ran 1.0 tasks at once on db work of 4 slots, each task 2% CPU: the "
                            "psycopg2 driver does not yield to the event loop")
    assert "psycopg or psycopg2+psycogreen may overlap the waits" in green
    assert "holds the GIL" in serial_waits(_summary(), _io("threads"))
    # Not the trap: two ran at once at some point (a slow dispatch), the tasks computed, one slot, or solo.
    assert serial_waits(_summary(max_tasks_running=2, mean_tasks_running=1.2), _io("gevent")) is None
    assert serial_waits(_summary(task_cpu_share=0.9), _io("gevent")) is None
    assert serial_waits(_summary(), _io("gevent", concurrency=1)) is None
    assert serial_waits(_summary(), _io("solo")) is None


def test_a_wait_that_blocks_the_hub_is_said_from_the_speedup_where_records_overlap():
    """Under gevent a task that yields before its wait in C (examples.tasks:wait_in_c as it was, which ran ldconfig
    through find_library first) overlaps others' records while each wait blocks the hub: 9 "running" at most with 128
    slots, but 1.3x one at a time (measured here)."""
    from harness.analysis.summary import serial_waits

    own = RunContext(pool="gevent", workload="task", kind="own", concurrency=128, tasks=256, duration=0.2,
                     switch_interval=0.005, cores=2)
    said = serial_waits(_summary(max_tasks_running=9, mean_tasks_running=2.2, speedup=1.3, task_cpu_share=0.01), own)
    assert said.startswith("SERIAL: gevent gained 1.3x over one at a time on task work of 128 slots, each task 1% CPU: "
                           "the code your task waits in does not yield to the event loop")
    # Overlapped (a driver that yields), or too few slots for a low speedup to mean anything: nothing said.
    assert serial_waits(_summary(max_tasks_running=128, mean_tasks_running=100, speedup=110.0), own) is None
    two = replace(own, concurrency=2)
    assert serial_waits(_summary(max_tasks_running=2, mean_tasks_running=1.4, speedup=1.3), two) is None


def test_driver_settings_belong_to_the_db_workload_and_psycogreen_to_green_pools():
    import pytest

    from harness.errors import SpecError
    from harness.model.spec import build_spec

    assert build_spec(workload="db").driver == "psycopg" and build_spec(workload="cpu").driver is None
    assert build_spec(workload="db", pool="gevent", driver="psycopg2+psycogreen").driver == "psycopg2+psycogreen"
    with pytest.raises(SpecError, match="only the db and http workloads take a DRIVER, not 'io_sleep'"):
        build_spec(workload="io_sleep", driver="psycopg2")
    with pytest.raises(SpecError, match="DRIVER=psycopg2 is a db client; the http workload takes requests, httpx"):
        build_spec(workload="http", driver="psycopg2")
    assert build_spec(workload="http").driver == "requests"
    with pytest.raises(SpecError, match="psycogreen patches the driver for a green pool"):
        build_spec(workload="db", pool="threads", driver="psycopg2+psycogreen")
    with pytest.raises(SpecError, match="do not load in a subinterpreter"):
        build_spec(workload="db", pool="interpreters")
    with pytest.raises(SpecError, match="unknown DRIVER 'psycopg4'"):
        build_spec(workload="db", driver="psycopg4")
