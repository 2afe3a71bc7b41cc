"""Pure functions on small hand-made data: analysis, spec validation, results loader, URL redaction."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from harness.analysis import cpu, summary, timing
from harness.errors import ResultsError, SpecError
from harness.lab.services.base import redact
from harness.model.pools import pool
from harness.model.spec import build_spec
from harness.results import RunFolder, load_run
from harness.results.records import RunManifest
from harness.results.run_folder import SCHEMA_VERSION


def tasks_table(rows):
    """rows: (submitted, started, finished, cpu_s, slot)"""
    return pd.DataFrame(rows, columns=["submitted", "started", "finished", "cpu_s", "slot"]).assign(
        switch_interval=0.005, error=None)


def ctx(**kw):
    base = dict(pool="threads", workload="cpu", kind="python-cpu", concurrency=2, tasks=2, duration=1.0,
                switch_interval=0.005, cores=2)
    base.update(kw)
    return summary.RunContext(**base)


def samples_table(per_pid):
    """per_pid: {pid: [(t, cumulative cpu s), ...]} as process rows."""
    rows = [(t, "process", pid, None, cpu, 0.0, None, 0, 0, 0) for pid, pts in per_pid.items() for t, cpu in pts]
    return pd.DataFrame(rows, columns=["t", "kind", "pid", "tid", "user_s", "system_s", "idle_s",
                                       "vol_ctx", "invol_ctx", "rss"])


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


@pytest.mark.parametrize("name,kind,expected", [
    ("solo", "io", 1), ("threads", "io", 4), ("gevent", "io", 4), ("prefork", "python-cpu", 2),
    ("threads", "python-cpu", 1), ("gevent", "python-cpu", 1), ("threads", "c-cpu", 2),
    ("eventlet", "c-cpu", 1), ("prefork", "io", 4),
])
def test_ideal_speedup_follows_the_physics(name, kind, expected):
    assert pool(name).ideal_speedup(kind, concurrency=4, tasks=10, cores=2) == expected


def test_ideal_speedup_is_capped_by_the_number_of_tasks():
    assert pool("threads").ideal_speedup("io", concurrency=8, tasks=3, cores=2) == 3


def test_cpu_between_two_times_sums_the_tree_and_counts_a_late_process_from_zero():
    s = samples_table({1: [(0, 0.0), (1, 1.0), (2, 2.0)], 2: [(1, 5.0), (2, 6.0)]})
    # pid 2 appears at t=1 with 5 s already used before the window: only its growth counts
    assert cpu.cpu_seconds_between(s, 0, 2) == pytest.approx(3.0)
    assert cpu.cpu_seconds_between(s, 0.5, 1.5) == pytest.approx(1.5)


def test_cores_over_time_is_a_rate():
    s = samples_table({1: [(0, 0.0), (1, 2.0), (2, 4.0)]})
    cores = cpu.cores_over_time(s, window_s=0.5)
    assert cores["cores"].to_numpy() == pytest.approx([2.0] * 4)


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


def test_green_lanes_are_packed_and_thread_lanes_follow_slots():
    green = tasks_table([(0, 0, 1, 0, "g1"), (0, 0, 1, 0, "g2"), (0, 1, 2, 0, "g3"), (0, 1.5, 3, 0, "g4")])
    assert timing.lanes(green, concurrency=2).tolist() == [0, 1, 0, 1]
    threads = tasks_table([(0, 0, 1, 0, "t9"), (0, 0, 1, 0, "t4"), (0, 1, 2, 0, "t4")])
    assert timing.lanes(threads, concurrency=2).tolist() == [0, 1, 1]


def test_build_spec_defaults_and_pool_prefetch():
    spec = build_spec(pool="gevent", concurrency="3")
    assert spec.tasks == 12 and spec.prefetch == 0 == pool("gevent").default_prefetch
    assert build_spec(pool="prefork").prefetch == 1
    assert build_spec(pool="gevent", prefetch="4").prefetch == 4


@pytest.mark.parametrize("field,value", [("pool", "x"), ("concurrency", "1.5"), ("tasks", "0"),
                                         ("duration", "inf"), ("switch_interval", "-0.1"), ("sample_hz", "0")])
def test_build_spec_rejects_bad_values(field, value):
    with pytest.raises(SpecError):
        build_spec(**{field: value})


def test_redact_hides_passwords_only():
    assert redact("redis://:pw@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("redis://user:pw@host/0") == "redis://user:***@host/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
    # An unencoded '@' belongs to the password (redis-py reads up to the last '@'): none of it shows.
    assert redact("redis://:p@ss@w0rd@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact("error 111 connecting to redis://u:a@b@host:1/0. Refused.") == \
        "error 111 connecting to redis://u:***@host:1/0. Refused."
    assert redact("redis://127.0.0.1:6379/0?password=s3cret&db=1") == "redis://127.0.0.1:6379/0?password=***&db=1"


def _folder(tmp_path, manifest):
    folder = RunFolder(tmp_path, "r1")
    folder.write_manifest(RunManifest.from_dict(manifest))
    folder.write_frame("tasks.csv", pd.DataFrame({"task_id": ["a"]}))
    folder.write_frame("samples.csv", pd.DataFrame({"t": [0.0]}))
    return folder


def test_loader_reads_a_complete_folder_and_refuses_an_incomplete_one(tmp_path):
    folder = _folder(tmp_path, {"status": "complete", "spec": {}})
    assert load_run(folder.path).tasks["task_id"].tolist() == ["a"]
    folder.write_manifest(RunManifest.from_dict({"status": "failed", "reason": "worker died", "spec": {}}))
    with pytest.raises(ResultsError, match="run is failed, not complete: worker died"):
        load_run(folder.path)
    assert load_run(folder.path, allow_incomplete=True).status == "failed"


def test_loader_refuses_a_newer_schema_and_names_bad_files(tmp_path):
    folder = _folder(tmp_path, {"status": "complete", "spec": {}})
    manifest = json.loads(folder.file("run.json").read_text())
    folder.file("run.json").write_text(json.dumps({**manifest, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ResultsError, match="newer than this lab reads"):
        load_run(folder.path)
    folder.file("run.json").write_text("{not json")
    with pytest.raises(ResultsError, match="run.json: not valid JSON"):
        load_run(folder.path)
    folder.file("run.json").write_text(json.dumps(manifest))
    folder.file("tasks.csv").unlink()
    with pytest.raises(ResultsError, match="tasks.csv: missing"):
        load_run(folder.path)


def test_a_run_folder_is_never_reused(tmp_path):
    RunFolder(tmp_path, "same")
    with pytest.raises(FileExistsError):
        RunFolder(tmp_path, "same")


def test_spread_warning_needs_a_real_disagreement():
    from harness.analysis import stats

    runs = pd.DataFrame({"cell": [0, 0, 0, 1, 1, 1], "repeat": [0, 1, 2] * 2, "pool": ["a"] * 3 + ["b"] * 3,
                         "speedup": [1.9, 1.9, 1.9, 1.0, 1.9, 1.5], "mean_cores_used": [0.01, 0.03, 0.02, 1, 1, 1],
                         "makespan_s": [1.0] * 6})
    table = stats.cell_stats(runs.reindex(columns=["cell", "repeat", "pool", *stats.METRICS]), ["pool"])
    assert table.loc[0, "warning"] == ""  # 0.01 to 0.03 cores is noise, not disagreement
    assert "speedup varies by" in table.loc[1, "warning"]
    assert table.loc[1, "speedup"] == 1.5 and table.loc[1, "speedup_q25"] == 1.25


def test_reading_names_phantom_parallelism():
    from harness.present.reading import sweep_reading

    table = pd.DataFrame({"cell": [0, 1], "label": ["a", "b"], "pool": ["threads", "prefork"],
                          "workload": ["busy_wait"] * 2, "speedup": [1.8, 1.95], "ideal_speedup": [1, 2],
                          "mean_cores_used": [1.0, 1.9], "phantom_cores": [0.9, 0.05], "warning": ["", ""]})
    lines = sweep_reading(table, ["pool", "workload"], cores=2)
    assert any("busy_wait on threads: the 1.80x is phantom" in line for line in lines)
    assert not any("on prefork: the" in line for line in lines)


def test_loader_names_a_truncated_tasks_file(tmp_path):
    folder = RunFolder(tmp_path, "r1")
    folder.write_manifest(RunManifest.from_dict({"status": "complete", "spec": {"tasks": 3, "background_tasks": 0}}))
    folder.write_frame("tasks.csv", pd.DataFrame({"task_id": ["a", "b", "c"]}))
    folder.write_frame("samples.csv", pd.DataFrame({"t": [0.0]}))
    assert len(load_run(folder.path).tasks) == 3
    lines = folder.file("tasks.csv").read_text().splitlines()
    folder.file("tasks.csv").write_text("\n".join(lines[:2]) + "\n")  # cut short
    with pytest.raises(ResultsError, match=r"tasks.csv: 1 rows, but the run recorded 3 tasks"):
        load_run(folder.path)
    folder.file("tasks.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match="tasks.csv"):
        load_run(folder.path)


def test_deadline_follows_the_slowest_honest_schedule():
    io = build_spec(pool="gevent", workload="io_sleep", concurrency=1000, tasks=1000, duration=1.0)
    cpu = build_spec(pool="threads", workload="cpu", concurrency=2, tasks=10, duration=1.0)
    solo = build_spec(pool="solo", workload="io_sleep", concurrency=4, tasks=10, duration=1.0)
    assert io.deadline_s() < 60  # one wave of 1,000 sleeps, not 1,000 sleeps in a row
    assert cpu.deadline_s() > 2 * 10 * 1.0  # CPU work may run one task at a time
    assert solo.deadline_s() > 2 * 10 * 1.0


def test_dispatch_gaps_count_only_waits_with_work_queued():
    # two slots; tasks 3 and 4 were queued from the start but began 2 s after the slots freed
    tasks = pd.DataFrame({"submitted": [0, 0, 0, 0, 10.0], "started": [0, 0, 2.25, 2.25, 10.0],
                          "finished": [0.25, 0.25, 2.5, 2.5, 10.25], "cpu_s": 0.0,
                          "slot": ["g1", "g2", "g3", "g4", "g5"]})
    gaps = timing.dispatch_gaps(tasks, concurrency=2)
    # task 5 came long after the slot freed: idle, not a gap
    assert sorted(gaps.round(3).tolist()) == [2.0, 2.0]


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
