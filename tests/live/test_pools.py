"""Every pool, end to end, on real Redis and real workers: the run folder and the physics.

Margins are for a noisy 2-core machine: "parallel" means clearly above one core, "not parallel"
means clearly below two.
"""
from __future__ import annotations

import pytest
from lab_process import assert_speedup_physical_or_marked, measured_steadily

from harness import load_run
from harness.model.machine import usable_cores
from harness.model.pools import CELERY_POOLS as POOLS  # the interpreters pool: tests/live/test_pools_beyond.py
from harness.model.spec import build_spec
from harness.pipeline import run_bench
from harness.results.records import Role, Status

SWITCH = 0.002  # not Python's default 0.005, so seeing it in every task proves it was set
CPU_BATCH = dict(workload="cpu", concurrency=2, tasks=4, duration=0.3, switch_interval=SWITCH)
IO_BATCH = dict(workload="io_sleep", concurrency=4, tasks=8, duration=0.3, switch_interval=SWITCH)
TASK_COLUMNS = {"task_id", "submitted", "started", "finished", "pid", "thread_id", "slot", "cpu_s",
                "switch_interval", "greenlet_id", "gil_enabled"}


@pytest.fixture(scope="module")
def runs(redis_url, tmp_path_factory):
    """Each pool's CPU batch and I/O batch, run once for all the tests of this module."""
    out = {}
    results = tmp_path_factory.mktemp("results")
    for pool in POOLS:
        for name, batch in (("cpu", CPU_BATCH), ("io", IO_BATCH)):
            out[pool, name] = measured_steadily(lambda pool=pool, batch=batch: run_bench(
                build_spec(pool=pool, **batch), results_dir=results, redis_url=redis_url, log=lambda _line: None))
    return out


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("batch", ["cpu", "io"])
def test_run_folder_is_complete_and_loads(runs, pool, batch):
    run = runs[pool, batch]
    reread = load_run(run.path)
    measured = (CPU_BATCH if batch == "cpu" else IO_BATCH)["tasks"]
    # Fixed work runs one task alone before the batch and one after it: the speedup's reference is their median.
    alone = [Role.REFERENCE] * (batch == "cpu")
    expected = measured + 2 * len(alone)
    assert reread.status == Status.COMPLETE
    assert reread.tasks["role"].tolist() == alone + [Role.FOREGROUND] * measured + alone
    assert reread.summary.serial_basis == ("tasks x the median of 2 tasks run alone (measured before and after)"
                                           if batch == "cpu" else "tasks x duration")
    if batch == "cpu":
        assert len(reread.summary.alone_runs_s) == 2 and reread.summary.machine_drift >= 0
        assert reread.summary.steal_cores is not None and reread.summary.unsteady in (True, False)
    assert reread.manifest.schema_version == 3
    assert reread.manifest.analysis_version >= 1
    assert len(reread.tasks) == expected
    assert TASK_COLUMNS <= set(reread.tasks.columns)
    assert reread.tasks["error"].isna().all()
    assert (reread.tasks["started"] >= reread.tasks["submitted"] - 0.05).all()
    assert (reread.tasks["finished"] > reread.tasks["started"]).all()
    assert not reread.samples.empty and {"process", "thread", "core"} <= set(reread.samples["kind"])
    for name in ("run.json", "tasks.csv", "samples.csv", "worker.log", "timeline.png", "parallelism.png"):
        assert (run.path / name).stat().st_size > 0, name
    env = reread.manifest.environment
    assert env.packages["celery"] and env.cpu_count_logical >= 1
    assert reread.manifest.settings.extra["serializer"] == "json"
    assert "***" in reread.manifest.settings.extra["broker"]["url"]  # the private Redis's password is not stored


@pytest.mark.parametrize("pool", POOLS)
@pytest.mark.parametrize("batch", ["cpu", "io"])
def test_every_task_saw_the_requested_switch_interval(runs, pool, batch):
    run = runs[pool, batch]
    assert run.tasks["switch_interval"].tolist() == [SWITCH] * len(run.tasks)
    assert run.summary.switch_interval_ok


@pytest.mark.skipif(usable_cores() < 2, reason="parallelism needs at least 2 cores")
def test_prefork_runs_cpu_work_on_more_than_one_core(runs):
    s = runs["prefork", "cpu"].summary
    assert s.mean_cores_used > 1.3
    assert_speedup_physical_or_marked(s, low=1.3)
    assert runs["prefork", "cpu"].tasks["pid"].nunique() == 2


@pytest.mark.parametrize("pool", ["threads", "solo", "gevent", "eventlet"])
def test_one_interpreter_pools_use_about_one_core_on_cpu_work(runs, pool):
    s = runs[pool, "cpu"].summary
    assert s.mean_cores_used < 1.25
    assert_speedup_physical_or_marked(s, high=1.25)
    assert runs[pool, "cpu"].tasks["pid"].nunique() == 1


def test_threads_wait_for_the_gil_on_cpu_work(runs):
    # Two threads share one GIL: each task is on the CPU for about half of its run time.
    assert runs["threads", "cpu"].summary.gil_wait_fraction > 0.3
    assert runs["solo", "cpu"].summary.gil_wait_fraction < 0.15


@pytest.mark.parametrize("pool", ["threads", "gevent", "eventlet", "prefork"])
def test_io_tasks_overlap_up_to_the_concurrency(runs, pool):
    s = runs[pool, "io"].summary
    assert s.max_tasks_running == IO_BATCH["concurrency"]
    assert s.mean_tasks_running > 0.6 * IO_BATCH["concurrency"]
    assert s.speedup > 2.0


def test_solo_runs_one_task_at_a_time(runs):
    for batch in ("cpu", "io"):
        assert runs["solo", batch].summary.max_tasks_running == 1


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pools_have_no_two_second_dispatch_gap_with_their_default_prefetch(runs, pool):
    # 8 tasks of 0.3 s on 4 slots: 0.6 s of work; a 2 s synloop wait per wave would show.
    assert runs[pool, "io"].summary.makespan_s < 1.6
    assert runs[pool, "io"].manifest.settings.extra["prefetch_multiplier"] == 0


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_task_cpu_is_its_own_not_the_threads(bench, pool):
    # io_net tasks use CPU between their waits, all in one OS thread. Charging each task with the
    # thread's CPU over its run time would count the others' CPU too: 4 tasks would add up to
    # about 4x what the worker used.
    run = bench(pool=pool, workload="io_net", concurrency=4, tasks=4, duration=0.5)
    assert run.summary.task_cpu_s <= 1.3 * run.summary.worker_cpu_s + 0.02
    assert (run.tasks["ops"] > 10).all()


def test_busy_wait_on_threads_is_flagged_phantom_and_prefork_is_not(bench):
    threads = measured_steadily(lambda: bench(pool="threads", workload="busy_wait", concurrency=2, tasks=2,
                                              duration=0.5))
    assert threads.summary.phantom
    assert threads.summary.mean_cores_used < 1.25
    if usable_cores() >= 2:
        # A spin that got no core while another process had it is phantom for real: measured on a quiet machine.
        prefork = measured_steadily(lambda: bench(pool="prefork", workload="busy_wait", concurrency=2, tasks=2,
                                                  duration=0.5))
        assert not prefork.summary.phantom


@pytest.mark.skipif(usable_cores() < 2, reason="parallelism needs at least 2 cores")
def test_gil_releasing_c_work_runs_in_parallel_on_threads(bench):
    run = bench(pool="threads", workload="gil_release", concurrency=2, tasks=4, duration=0.3)
    assert run.summary.mean_cores_used > 1.3
