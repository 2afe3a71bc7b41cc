"""A machine whose speed changes: the reference measured more than once, steal, UNSTEADY, numbers beyond
physics, and the same work in every cell. Hand-made tables; no worker, no broker."""
from __future__ import annotations

import dataclasses
import json
import time

import pandas as pd
import pytest

from harness.analysis import stats, summary, trust
from harness.lab import calibrate
from harness.model.spec import build_spec
from harness.model.workloads import workload
from harness.results.records import Cell, Status, Summary, SweepEntry
from harness.results.sweep_folder import SweepRun


def _tasks(rows, role="foreground"):
    """rows: (submitted, started, finished, cpu_s, slot)"""
    return pd.DataFrame(rows, columns=["submitted", "started", "finished", "cpu_s", "slot"]).assign(
        switch_interval=0.005, error=None, role=role)


def _samples(span: float, worker_cores: float, steal_cores: float | None = 0.0, lab_cores: float = 0.02):
    """A 2-core machine sampled every 0.1 s over [0, span]: the worker's tree, the lab, both cores (with steal)."""
    rows = []
    for i in range(int(span * 10) + 1):
        t = i / 10
        rows.append((t, "process", 10, None, worker_cores * t, 0.0, None))
        rows.append((t, "lab", 20, None, lab_cores * t, 0.0, None))
        for core in (0, 1):
            rows.append((t, "core", None, core, (worker_cores + lab_cores) / 2 * t, 0.0,
                         None if steal_cores is None else steal_cores / 2 * t))
    return pd.DataFrame(rows, columns=["t", "kind", "pid", "tid", "user_s", "system_s", "steal_s"])


def _ctx(pool="solo", workload_name="cpu", concurrency=1, tasks=4):
    return summary.RunContext(pool=pool, workload=workload_name, kind=workload(workload_name).kind,
                              concurrency=concurrency, tasks=tasks, duration=0.25, switch_interval=0.005, cores=2)


def _solo(alone_times, task_s=0.25):
    """A solo run of 4 tasks of `task_s` each back to back from t=1, between tasks alone of the given lengths."""
    before, after = alone_times[0], alone_times[-1]
    refs = _tasks([(0.0, 0.0, before, before, "t1")], "reference")
    start = 1.0
    batch = _tasks([(start, start + i * task_s, start + (i + 1) * task_s, task_s, "t1") for i in range(4)])
    end = start + 4 * task_s
    refs = pd.concat([refs, _tasks([(end + 0.1, end + 0.1, end + 0.1 + after, after, "t1")], "reference")])
    return batch, refs, end + 0.2 + after


def test_the_reference_is_the_median_of_the_tasks_alone_and_their_spread_is_the_drift():
    batch, refs, span = _solo([0.25, 0.25])
    s = summary.summarize(batch, _samples(span, 1.0), _ctx(), refs)
    assert s.alone_runs_s == [0.25, 0.25] and s.alone_s == 0.25 and s.machine_drift == 0.0
    assert s.serial_basis == "tasks x the median of 2 tasks run alone (measured before and after)"
    assert s.speedup == pytest.approx(1.0) and s.unsteady is False and s.unsteady_cause == ""
    assert not any("UNSTEADY" in n for n in s.notes)


def test_a_drifting_reference_makes_the_run_unsteady_and_says_so():
    # Alone the task took 0.20 s before the batch and 0.30 s after it: the machine slowed by half.
    batch, refs, span = _solo([0.20, 0.30])
    s = summary.summarize(batch, _samples(span, 1.0), _ctx(), refs)
    assert s.machine_drift == pytest.approx(0.4)  # 0.1 s over the median 0.25 s
    assert s.unsteady is True and s.unsteady_cause.startswith("speed drift: one task alone took 0.2-0.3 s")
    assert s.notes[0].startswith("UNSTEADY: speed drift") and s.disturbed is False


def test_a_speedup_above_the_pools_ideal_is_no_finding():
    # threads on pure-Python CPU work: ideal 1. Alone the task took 0.40 s twice (a slow moment), the batch
    # ran fast: a "speedup" of 1.6x that only a wrong reference gives.
    refs = _tasks([(0.0, 0.0, 0.4, 0.4, "t1"), (3.0, 3.0, 3.4, 0.4, "t1")], "reference")
    batch = _tasks([(1.0, 1.0, 2.0, 0.25, "t1"), (1.0, 1.0, 2.0, 0.25, "t2"),
                    (1.0, 1.0, 2.0, 0.25, "t1"), (1.0, 1.0, 2.0, 0.25, "t2")])
    s = summary.summarize(batch, _samples(3.5, 1.0), _ctx("threads", concurrency=2), refs)
    assert s.speedup == pytest.approx(1.6) and s.ideal_speedup == 1 and s.machine_drift == pytest.approx(0)
    assert trust.above_ideal(s) and s.unsteady is True
    assert "speedup 1.60x above the physical ideal 1x: the reference was unsteady" in s.unsteady_cause
    # The same run within the measured drift of its ideal is a finding (1.04x: within the floor of 5 %).
    assert not trust.above_ideal(dataclasses.replace(s, speedup=1.04))
    assert trust.above_ideal(dataclasses.replace(s, speedup=1.08)) and not trust.above_ideal(
        dataclasses.replace(s, speedup=1.08, machine_drift=0.09))
    # busy_wait's phantom 2x on threads is against its nominal duration, not a task alone: said as phantom.
    assert not trust.above_ideal(Summary(speedup=2.0, ideal_speedup=1, alone_s=None, phantom=True))


def test_steal_is_read_from_the_samples_and_marks_the_hypervisor():
    batch, refs, span = _solo([0.25, 0.25])
    stolen = summary.summarize(batch, _samples(span, 1.0, steal_cores=0.3), _ctx(), refs)
    assert stolen.steal_cores == pytest.approx(0.3) and stolen.unsteady is True
    assert stolen.unsteady_cause == "hypervisor: it took 0.30 cores for other guests (steal)"
    quiet = summary.summarize(batch, _samples(span, 1.0, steal_cores=0.02), _ctx(), refs)
    assert quiet.steal_cores == pytest.approx(0.02) and quiet.unsteady is False
    unknown = summary.summarize(batch, _samples(span, 1.0, steal_cores=None), _ctx(), refs)
    assert unknown.steal_cores is None and unknown.unsteady is False  # drift was still measured


def test_inflation_on_work_that_shares_nothing_is_the_machine_in_both_directions():
    # solo: one task at a time, nothing to contend for. Tasks that needed 0.7x the CPU they needed alone ran
    # on a faster machine, 1.4x on a slower one; neither is blamed on contention.
    for task_s, change in ((0.175, "faster"), (0.35, "slower")):
        batch, refs, span = _solo([0.25, 0.25], task_s=task_s)
        s = summary.summarize(batch, _samples(span, 1.0), _ctx(), refs)
        assert s.shares_nothing and trust.speed_change(s) == change
        assert f"the machine ran {change} during the batch than alone" in s.unsteady_cause
        assert not any("contended" in n for n in s.notes)
    # cpu_shared on threads: inflation is the lesson (contention), not the machine.
    refs = _tasks([(0.0, 0.0, 0.25, 0.25, "t1"), (3.0, 3.0, 3.25, 0.25, "t1")], "reference")
    batch = _tasks([(1.0, 1.0, 1.5, 0.5, "t1"), (1.0, 1.0, 1.5, 0.5, "t2")])
    s = summary.summarize(batch, _samples(3.3, 2.0), _ctx("threads", "cpu_shared", 2, 2), refs)
    assert not s.shares_nothing and trust.speed_change(s) == ""
    assert any(n.startswith("WORK INFLATION 2.00x") and "contended" in n for n in s.notes)


def test_a_long_batchs_makespan_leaves_out_the_task_run_alone_between_its_waves():
    # Two parts of 1 s each, with 0.5 s between them (a task alone of 0.25 s and the submits): makespan 2 s.
    refs = _tasks([(0.0, 0.0, 0.25, 0.25, "t1"), (2.2, 2.2, 2.45, 0.25, "t1"), (4.0, 4.0, 4.25, 0.25, "t1")],
                  "reference")
    first = [(1.0, 1.0 + 0.25 * i, 1.25 + 0.25 * i, 0.25, "t1") for i in range(4)]
    second = [(2.5, 2.5 + 0.25 * i, 2.75 + 0.25 * i, 0.25, "t1") for i in range(4)]
    batch = _tasks(first + second)
    assert summary.batch_windows(batch, refs) == [(1.0, 2.0), (2.5, 3.5)]
    s = summary.summarize(batch, _samples(4.3, 1.0), _ctx(tasks=8), refs)
    assert s.makespan_s == pytest.approx(2.0) and s.speedup == pytest.approx(1.0)
    assert s.alone_runs_s == [0.25, 0.25, 0.25] and s.mean_cores_used == pytest.approx(1.0)
    assert s.serial_basis == ("tasks x the median of 3 tasks run alone (measured before, between the parts of, "
                                 "and after the batch)")


def test_a_sweep_counts_unsteady_repeats_apart_from_disturbed_ones_and_cautions():
    cell = Cell(cell=0, settings={"pool": "solo"})
    runs = [SweepRun(SweepEntry(cell=0, repeat=r, status=Status.COMPLETE), cell,
                     Summary(speedup=1.0, disturbed=False, unsteady=r == 1)) for r in range(3)]
    table = stats.cell_stats(stats.runs_table(runs, ["pool"]), ["pool"])
    assert int(table.loc[0, "unsteady"]) == 1 and int(table.loc[0, "disturbed"]) == 0
    cautions = trust.sweep_cautions(False, 3, 3, {}, "results/sweep-x", {"solo": 1})
    assert cautions[0].startswith("UNSTEADY: 1 of 3 runs ran while the machine's own speed changed")
    assert "--rerun-disturbed" in cautions[0]
    assert trust.trust_level(3, False, 0, unsteady=1) == ("low", "1 of 3 repeats unsteady (the machine's speed "
                                                          "changed under them)")
    assert trust.unreliable(Summary(unsteady=True)) and not trust.unreliable(Summary(disturbed=False, unsteady=False))
    old = trust.sweep_cautions(False, 3, 3, {}, "x", calibrated_once=False)
    assert old[0].startswith("DIFFERENT WORK PER CELL")


def test_a_rate_is_measured_once_and_reused_within_the_hour_then_measured_again(tmp_path):
    cpu = workload("cpu")
    cache = tmp_path / "calibrations.json"
    first = calibrate.Calibrations(cache=cache)
    one = first.for_duration(cpu, 0.25, None, None)
    assert one["source"] == "measured" and one["iterations"] == round(one["iterations_per_s"] * 0.25)
    again = calibrate.Calibrations(cache=cache).for_duration(cpu, 0.5, None, None)
    assert again["source"] == "cached" and again["iterations_per_s"] == one["iterations_per_s"]
    assert again["iterations"] == round(one["iterations_per_s"] * 0.5)  # the same rate, any duration
    assert calibrate.Calibrations(cache=cache, recalibrate=True).for_duration(cpu, 0.25, None, None)["source"] \
        == "measured"
    # An hour later (or after a restart, or on another host) it is measured again.
    entries = json.loads(cache.read_text())
    for entry in entries.values():
        entry["measured_at"] = time.time() - calibrate.CACHE_MAX_AGE_S - 1
    cache.write_text(json.dumps(entries))
    assert calibrate.Calibrations(cache=cache).for_duration(cpu, 0.25, None, None)["source"] == "measured"
    entries = json.loads(cache.read_text())
    for entry in entries.values():
        entry["machine"] = "another-host|another-boot"
    cache.write_text(json.dumps(entries))
    assert calibrate.Calibrations(cache=cache).for_duration(cpu, 0.25, None, None)["source"] == "measured"


def test_a_sweeps_rates_give_every_cell_the_same_work_and_nothing_else_is_read(tmp_path):
    cpu = workload("cpu")
    k = calibrate.key(cpu, None, None)
    given = calibrate.Calibrations(given={k: {"iterations": 10_000_000, "iterations_per_s": 10_000_000.0}},
                                   cache=tmp_path / "never.json")
    cells = [given.for_duration(cpu, 0.25, None, None) for _ in range(3)]
    assert all(c == {"iterations": 2_500_000, "iterations_per_s": 10_000_000.0, "source": "sweep"} for c in cells)
    assert not (tmp_path / "never.json").exists()  # a sweep's runs neither read nor write the machine's cache
    assert calibrate.key(cpu, None, "on") != k  # the GIL asked is part of what a rate belongs to


def test_each_run_is_compared_with_the_solo_run_of_the_same_work_nearest_in_time():
    cells = [Cell(cell=0, settings={"pool": "solo", "workload": "cpu"}),
             Cell(cell=1, settings={"pool": "prefork", "workload": "cpu"}),
             Cell(cell=2, settings={"pool": "prefork", "workload": "io_sleep"})]
    # The machine was twice as fast at t=100 as at t=0: solo did 4 tasks/s then 8; prefork next to each
    # did 7.6 and 15.2. Against the nearest solo run both are 1.9x; a ratio of medians would say 1.5-3x.
    runs = pd.DataFrame({"cell": [0, 1, 0, 1, 2], "throughput_per_s": [4.0, 7.6, 8.0, 15.2, 30.0],
                         "batch_started_t": [0.0, 5.0, 100.0, 104.0, 50.0]})
    ratios = stats.against_nearest_baseline(runs, cells)
    assert ratios[1] == pytest.approx(1.9) and ratios[3] == pytest.approx(1.9)
    assert pd.isna(ratios[0]) and pd.isna(ratios[4])  # solo itself; io_sleep has no solo run


def test_a_sweeps_runs_alternate_each_work_with_its_solo_baseline():
    from harness.sweeps import MAX_WARM, _plan_order

    cells = [Cell(cell=i, settings={"pool": p, "workload": w, "concurrency": 2, "duration": 0.1})
             for i, (p, w) in enumerate([(p, w) for p in ("prefork", "threads", "solo") for w in ("cpu", "io_sleep")])]
    todo = [SweepEntry(cell=c.cell, repeat=r, status=Status.PENDING) for r in range(2) for c in cells]
    order = _plan_order(todo, cells, fresh_workers=False)
    specs = [build_spec(**c.settings) for c in cells]
    names = [(specs[e.cell].pool, specs[e.cell].workload, e.repeat) for e in order.entries]
    assert names[:3] == [("solo", "cpu", 0), ("prefork", "cpu", 0), ("threads", "cpu", 0)]
    assert names[6:9] == [("threads", "cpu", 1), ("prefork", "cpu", 1), ("solo", "cpu", 1)]  # mirrored
    assert order.keep == 3 <= MAX_WARM and sorted(map(str, order.entries)) == sorted(map(str, todo))
    assert _plan_order(todo, cells, fresh_workers=True).entries == todo


def test_of_several_marked_measurements_the_steadiest_departs_least():
    steady = Summary(machine_drift=0.03, steal_cores=0.01, work_inflation=1.02, shares_nothing=True,
                     speedup=0.98, ideal_speedup=1, alone_s=0.25)
    assert trust.departure(steady) == pytest.approx(0.03)
    drifted = dataclasses.replace(steady, machine_drift=0.4)
    faster = dataclasses.replace(steady, work_inflation=0.67)  # solo at 1.47x: the batch ran on a faster machine
    beyond = dataclasses.replace(steady, speedup=1.13)
    disturbed = dataclasses.replace(steady, disturbed=True)
    ranked = sorted([drifted, faster, beyond, disturbed, steady], key=trust.departure)
    assert ranked[0] is steady and ranked[1] is beyond and ranked[-1] is disturbed
    assert trust.departure(faster) == pytest.approx(0.40, abs=0.01)
