"""The asyncio pool against a real broker and real Celery workers: tasks in flight on one loop, acknowledged after
their coroutine; the loop's lag; a plain function in the executor; a coroutine task on a pool that cannot await it."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import redis
from lab_process import harness

from harness.analysis.loop import BLOCKED_LAG_S
from harness.model.machine import usable_cores
from harness.model.pools import executor_threads

ROOT = str(Path(__file__).resolve().parents[2])
ASYNC = "examples.async_tasks"


def test_a_thousand_sleeps_in_flight_on_one_loop_are_acked_and_cost_less_memory_than_a_thousand_threads(
        bench, redis_url):
    # Sleeps of 2 s: longer than sending a thousand tasks takes (about 1.2 s here), so all are in flight at once.
    runs = {p: bench(pool=p, workload="io_sleep", concurrency=1000, tasks=1000, duration=2.0) for p in
            ("asyncio", "threads")}
    aio = runs["asyncio"]
    assert aio.summary.tasks_done == 1000 and aio.summary.tasks_failed == 0
    assert set(aio.foreground["ran"]) == {"awaited"}
    # All in flight at once: a thousand slots used, and a sleep of 2 s took about that, not a queue's turn.
    assert aio.summary.slots_used == 1000 and aio.summary.max_tasks_running >= 900
    assert aio.summary.run_time_p50_s < 2.0 * 1.25
    # Acked after the coroutine, by Celery's own code: nothing is left unacknowledged on the broker.
    assert redis.Redis.from_url(redis_url).hlen("unacked") == 0
    # A coroutine costs its asyncio task and a small greenlet, not an OS thread with its stack.
    assert aio.summary.pss_peak_mib < runs["threads"].summary.pss_peak_mib
    assert aio.summary.loop_lag_p95_s is not None and aio.summary.loop_lag_p95_s < BLOCKED_LAG_S


def test_cpu_coroutines_hold_the_loop_and_its_lag_shows_it(bench):
    cpu = bench(pool="asyncio", workload="cpu", concurrency=4, tasks=4, duration=0.2)
    s = cpu.summary
    assert s.mean_cores_used < 1.3  # one loop, one thread
    assert s.loop_block_max_s > 0.1  # a step of the coroutine ran its whole loop without awaiting
    assert s.loop_lag_max_s > 0.1 and any(n.startswith("LOOP BLOCKED") and "cpu task" in n for n in s.notes)
    sleeping = bench(pool="asyncio", workload="io_sleep", concurrency=4, tasks=8, duration=0.2)
    assert sleeping.summary.loop_lag_p95_s < BLOCKED_LAG_S
    assert not any(n.startswith("LOOP BLOCKED") for n in sleeping.summary.notes)


@pytest.mark.parametrize("pool_name", ["gevent", "eventlet"])
def test_the_green_pools_hub_lag_is_measured_the_same_way(bench, pool_name):
    run = bench(pool=pool_name, workload="io_sleep", concurrency=10, tasks=20, duration=0.2)
    lag = run.table("loop_lag.csv")
    assert lag is not None and len(lag) >= 3 and set(lag["pid"]) == set(run.foreground["pid"])
    assert run.summary.loop_lag_p95_s is not None and run.summary.loop_lag_p95_s < BLOCKED_LAG_S


def test_a_plain_function_runs_in_the_loops_executor_and_is_recorded_so(bench):
    run = bench(pool="asyncio", workload="gil_release", concurrency=8, tasks=8, duration=0.1)
    assert set(run.foreground["ran"]) == {"executor"}
    assert run.summary.ideal_speedup == min(8, executor_threads(run.manifest.environment.cores), usable_cores())
    assert any(n.startswith("EXECUTOR") for n in run.summary.notes)


def test_the_users_coroutine_task_is_awaited_on_asyncio_and_run_through_asyncio_run_elsewhere(bench):
    awaited = bench(pool="asyncio", task=f"{ASYNC}:call_service", args="[0.2]", task_path=ROOT, concurrency=8,
                    tasks=16)
    assert set(awaited.foreground["ran"]) == {"awaited"} and awaited.summary.max_tasks_running >= 6
    elsewhere = bench(pool="threads", task=f"{ASYNC}:call_service", args="[0.2]", task_path=ROOT, concurrency=4,
                      tasks=8)
    assert set(elsewhere.foreground["ran"]) == {"asyncio.run"}
    assert any(n.startswith("ASYNCIO.RUN") for n in elsewhere.summary.notes)
    blocking = bench(pool="asyncio", task=f"{ASYNC}:blocking_call", args="[0.2]", task_path=ROOT, concurrency=4,
                     tasks=4)
    note = next(n for n in blocking.summary.notes if n.startswith("LOOP BLOCKED"))
    assert "one step of a task task ran" in note
    assert blocking.summary.loop_block_max_s >= 0.19  # the whole sleep, in one step


def test_several_asyncio_workers_each_run_a_loop(bench):
    run = bench(pool="asyncio", workload="io_sleep", concurrency=10, tasks=40, duration=0.2, workers=2)
    assert run.foreground["pid"].nunique() == 2
    assert run.foreground["slot"].str.match(r"worker [12]: coroutine \d+").all()
    lag = run.table("loop_lag.csv")
    assert lag is not None and lag["pid"].nunique() == 2


def test_the_advisor_measures_the_asyncio_pool_for_a_coroutine_task(workdir):
    out = harness("advise", "--task", f"{ASYNC}:call_service", "--args", "[0.1]", "--once", cwd=workdir, timeout=400)
    assert out.returncode == 0, out.stderr
    assert "call_service is a coroutine function: measuring the asyncio pool too" in out.stdout + out.stderr
    folder = Path(out.stdout.strip().splitlines()[-1].split("report: ")[1]).parent
    cells = json.loads((workdir / folder / "sweep.json").read_text())["cells"]
    assert any("pool=asyncio" in c["label"] for c in cells)
    assert out.stdout.startswith("Recommendation: ") and "solo pool" not in out.stdout.splitlines()[0]


AIO_POOL = "custom:celery_aio_pool.pool:AsyncIOPool"


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="celery-aio-pool declares Python < 3.13: not installed here")
def test_celery_aio_pool_is_measurable_as_a_custom_pool(bench):
    """PyPI's celery-aio-pool runs the lab's recording (a sync task) through asyncio.to_thread, the user's coroutine
    through asyncio.run there; it is measured like any custom pool, with no ideal claimed for it."""
    run = bench(pool=AIO_POOL, task=f"{ASYNC}:call_service", args="[0.1]", task_path=ROOT, concurrency=4, tasks=8)
    s = run.summary
    assert s.tasks_done == 8 and s.tasks_failed == 0 and s.ideal_speedup is None
    assert set(run.foreground["ran"]) == {"asyncio.run"} and any(n.startswith("ASYNCIO.RUN") for n in s.notes)
    assert run.foreground["slot"].str.startswith("thread ").all()  # to_thread's threads, in the worker's process
