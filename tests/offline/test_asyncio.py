"""The asyncio pool's rules, its bridge from Celery's synchronous tracer to the loop, and the loop's analysis, on
hand-made tables (no worker: the live tests in tests/live/test_asyncio_pool.py run real ones)."""
from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import loop
from harness.errors import SpecError
from harness.model.pools import POOLS, executor_threads
from harness.model.spec import build_spec
from harness.model.workloads import WORKLOADS
from workloads import asyncio_pool


def test_the_asyncio_pool_overlaps_awaited_waits_runs_their_cpu_on_one_thread_and_plain_functions_in_its_executor():
    aio = POOLS["asyncio"]
    assert aio.awaits and aio.loop == "asyncio" and not aio.green and not aio.stays_warm
    assert aio.ideal_speedup("io", 1000, 4000, 2) == 1000
    assert aio.ideal_speedup("python-cpu", 8, 8, 2) == 1  # a CPU coroutine holds the one loop
    assert aio.ideal_speedup("mixed", 10, 10, 2, cpu_fraction=0.5) == 2  # its bursts on one thread: 1 / 0.5
    # A plain function (no coroutine twin) in the default executor: the threads pool's rule at its size.
    assert executor_threads(2) == 6 and executor_threads(64) == 32
    assert aio.ideal_speedup("io", 100, 100, 2, coroutine=False) == 6
    assert aio.ideal_speedup("c-cpu", 100, 100, 2, coroutine=False) == 2
    assert aio.slot_name(1, 2, coroutine=17) == "coroutine 17" and aio.slot_name(1, 2) == "thread 2"
    assert {name for name, w in WORKLOADS.items() if w.coroutine} == {"cpu", "io_sleep", "io_net", "mixed", "db",
                                                                       "http"}
    assert WORKLOADS["io_sleep"].runs(awaits=True) is WORKLOADS["io_sleep"].coroutine
    assert WORKLOADS["io_sleep"].runs(awaits=False) is WORKLOADS["io_sleep"].function
    assert WORKLOADS["gil_release"].runs(awaits=True) is WORKLOADS["gil_release"].function
    # The db and http workloads are coroutines only through an async driver; a sync one runs in the executor.
    assert WORKLOADS["http"].runs(True, "aiohttp") is WORKLOADS["http"].coroutine
    assert WORKLOADS["db"].runs(True, "asyncpg") is WORKLOADS["db"].coroutine
    assert WORKLOADS["db"].runs(True, "psycopg2") is WORKLOADS["db"].function
    assert WORKLOADS["http"].runs(True, None) is WORKLOADS["http"].function  # requests, by default
    assert build_spec(pool="asyncio", workload="http", driver="httpx-async").coroutine
    assert not build_spec(pool="asyncio", workload="http", driver="httpx").coroutine


@pytest.mark.parametrize("name", ["aiohttp", "httpx-async", "asyncpg", "psycopg-async"])
def test_an_async_driver_off_the_asyncio_pool_is_refused_in_one_line(name):
    work = "http" if name in ("aiohttp", "httpx-async") else "db"
    with pytest.raises(SpecError, match=f"DRIVER={name} is an async client: it runs on a pool that awaits "
                                        r"\(asyncio\)") as refused:
        build_spec(pool="threads", workload=work, driver=name)
    assert "\n" not in str(refused.value)
    build_spec(pool="asyncio", workload=work, driver=name)  # where it belongs


def test_the_gil_probe_on_the_asyncio_pool_is_refused_in_one_line():
    with pytest.raises(SpecError, match="asyncio runs its coroutines on one OS thread") as refused:
        build_spec(pool="asyncio", workload="io_sleep", gil_probe=True)
    assert "\n" not in str(refused.value)


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def _compute_then_wait() -> str:
    _spin(0.03)
    await asyncio.sleep(0.05)
    _spin(0.01)
    return "done"


def test_a_coroutine_driven_step_by_step_reports_its_own_cpu_and_its_longest_hold_of_the_loop():
    async def main() -> tuple:
        stepped = asyncio_pool.Stepped(_compute_then_wait())
        result = await stepped
        return result, stepped

    result, stepped = asyncio.run(main())
    assert result == "done" and stepped.steps >= 2
    assert 0.04 <= stepped.cpu_s < 0.06  # the waiting is not CPU
    assert 0.03 <= stepped.longest_step_s < 0.05  # the first step; the wait ended it


def test_a_cancelled_coroutine_is_cancelled_where_it_waits():
    async def main() -> None:
        task = asyncio.ensure_future(asyncio_pool.Stepped(asyncio.sleep(10)))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())


def test_celerys_synchronous_side_awaits_a_task_coroutine_on_the_loop_through_the_bridge():
    """What the pool does per message: a sync function (Celery's tracer, here a stand-in) run in a greenlet, its task's
    coroutine awaited by the loop; many at once overlap their waits."""
    def tracer(delay: float) -> dict:
        async def body(d: float) -> float:
            await asyncio.sleep(d)
            return d

        how: dict = {}
        asyncio_pool.await_task(body, (delay,), {}, how)
        return how

    async def main() -> tuple[list[dict], float]:
        t0 = time.perf_counter()
        out = await asyncio.gather(*(asyncio_pool._bridged(k, tracer, 0.1) for k in range(1, 51)))
        return out, time.perf_counter() - t0

    out, elapsed = asyncio.run(main())
    assert [o["result"] for o in out] == [0.1] * 50 and {o["ran"] for o in out} == {"awaited"}
    assert sorted(o["coroutine"] for o in out) == list(range(1, 51))
    assert elapsed < 50 * 0.1 / 5  # overlapped, not one after another (5 s)
    with pytest.raises(RuntimeError, match="only on the asyncio pool's event loop"):
        asyncio_pool.await_task(_compute_then_wait, (), {}, {})


def test_a_coroutine_that_holds_the_loop_and_then_raises_still_reports_how_it_ran():
    async def hold_then_fail() -> None:
        _spin(0.03)
        raise ValueError("the service said no")

    def tracer() -> dict:
        how: dict = {}
        with pytest.raises(ValueError, match="the service said no"):
            asyncio_pool.await_task(hold_then_fail, (), {}, how)
        return how

    how = asyncio.run(asyncio_pool._bridged(3, tracer))
    assert how["ran"] == "awaited" and how["coroutine"] == 3 and "result" not in how
    assert how["loop_block_s"] >= 0.03 and how["cpu_s"] >= 0.03


def _lag(rows: list[tuple[float, float]], t0: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame([(t0 + 0.1 * i, 7, 10, mean, worst) for i, (mean, worst) in enumerate(rows)],
                        columns=["t", "pid", "ticks", "lag_mean_s", "lag_max_s"])


def test_the_loops_lag_is_read_while_the_tasks_ran_and_a_blocked_loop_is_told_from_a_busy_one():
    busy = _lag([(0.001, 0.003)] * 40 + [(0.004, 0.054)])  # a thousand sleeping greenlets: one spike
    lag = loop.loop_lag(busy, 100.0, 104.0)
    assert lag is not None and lag.windows == 41 and lag.max_s == 0.054 and lag.p95_s < 0.01
    assert loop.blocked_note(lag, None, "gevent") is None
    hiccup = loop.loop_lag(_lag([(0.002, 0.01)] * 12 + [(0.01, 0.064)] * 2), 100.0, 102.0)  # 2 late windows in 14
    assert hiccup is not None and loop.blocked_note(hiccup, (0.043, "http"), "asyncio") is None
    # Windows that woke no timer (ticks 0: the loop blocked all along) count as late for their length.
    silent = _lag([(0.001, 0.002)] * 6 + [(None, None)] * 3 + [(0.3, 0.3)]).assign(
        ticks=[10] * 6 + [0] * 3 + [1], window_s=0.1)
    held = loop.loop_lag(silent, 100.0, 101.0)
    assert held is not None and held.late_share == pytest.approx(0.4) and held.max_s == 0.3
    assert held.mean_s == pytest.approx((6 * 10 * 0.001 + 0.3) / 61)
    assert loop.blocked_note(held, None, "asyncio") is not None  # 40 % of the time late
    assert loop.loop_lag(busy, 200.0, 201.0) is None  # nothing reported while the tasks ran
    blocked = loop.loop_lag(_lag([(0.2, 0.25)] * 10), 100.0, 101.0)
    note = loop.blocked_note(blocked, (0.25, "cpu"), "asyncio")
    assert note is not None and note.startswith("LOOP BLOCKED: the asyncio pool's event loop woke its timers up to "
                                                 "250 ms late") and "one step of a cpu task ran 250 ms" in note
    # One late window while a task held the loop that long is enough; without the hold it is not.
    spike = loop.loop_lag(_lag([(0.001, 0.002)] * 30 + [(0.06, 0.12)]), 100.0, 104.0)
    assert loop.blocked_note(spike, (0.11, "task"), "asyncio") is not None
    assert loop.blocked_note(spike, (0.001, "task"), "asyncio") is None


def test_how_coroutine_tasks_ran_is_counted_and_said():
    tasks = pd.DataFrame({"name": ["a", "b", "c"], "ran": ["asyncio.run", "asyncio.run", None],
                          "loop_block_s": [0.01, 0.3, None]})
    ran = loop.how_ran(tasks)
    assert ran == {"asyncio.run": 2}
    assert loop.longest_hold(tasks) == (0.3, "b")
    assert "2 coroutine tasks ran through asyncio.run on the threads pool" in loop.asyncio_run_note(ran, "threads")
    assert "the loop's included: 0.47 ms, median" in loop.asyncio_run_note(ran, "threads", 0.00047)
    assert loop.executor_note(ran, 6) is None
    assert "at most 6 at once" in loop.executor_note({"executor": 4}, 6)
    assert loop.how_ran(pd.DataFrame({"name": ["a"]})) == {} and loop.longest_hold(pd.DataFrame({"x": [1]})) is None


def test_the_advisor_plans_the_asyncio_pool_only_where_it_was_given_one_for_a_coroutine_task():
    from harness.analysis.advice import COROUTINE_POOLS, plan

    assert COROUTINE_POOLS == ("asyncio",)
    with_loop = plan(2, 0.02, ["solo", "threads", "gevent", "asyncio"])
    assert {(c["pool"], c["concurrency"]) for c in with_loop.cells if c["pool"] == "asyncio"} == {
        ("asyncio", 2), ("asyncio", 8), ("asyncio", with_loop.high)}
    assert "asyncio" in with_loop.why
    assert not any(c["pool"] == "asyncio" for c in plan(2, 0.02, ["solo", "threads", "gevent"]).cells)


DATA = Path(__file__).resolve().parents[1] / "data" / "v1"


def test_a_stored_asyncio_run_reads_its_loops_lag_into_the_summary_the_figure_and_the_trace(tmp_path):
    """A committed run (three 0.1 s cpu coroutines at 3 in flight): its lag table, summarized anew offline."""
    from harness.pipeline import summarize
    from harness.results import load_run
    from tests.offline.test_trace import check_trace_event_format

    path = tmp_path / "run"
    shutil.copytree(DATA / "run-asyncio-cpu-lag", path)
    summarize(path, log=lambda _line: None)
    run = load_run(path)
    s = run.summary
    assert s.loop_lag_max_s == pytest.approx(0.298, abs=0.001) and s.loop_block_max_s > 0.09
    assert any(n.startswith("LOOP BLOCKED") and "cpu task" in n for n in s.notes)
    assert (path / "loop-lag.png").stat().st_size > 10_000
    trace = json.loads((path / "trace.json").read_text())
    check_trace_event_format(trace)
    lags = [e for e in trace["traceEvents"] if e["ph"] == "C" and e["name"] == "event loop lag (ms)"]
    assert lags and max(v for e in lags for v in e["args"].values()) == pytest.approx(298.2, abs=0.1)
    assert set(run.tasks["ran"]) == {"awaited"} and run.tasks["slot"].str.match(r"coroutine \d").all()


def test_the_async_figure_draws_a_row_per_measure_and_a_column_per_workload(tmp_path):
    from harness.present.sweep_figures import async_comparison, sweep_figures

    rows = [{"pool": p, "workload": w, "concurrency": c, "throughput_per_s": 40.0 * c ** 0.5, "latency_p95_s": 1.0,
             "pss_peak_mib": 300.0 if p == "prefork" else 50.0, "worker_cpu_s": 0.05 * c, "tasks_done": 4 * c,
             "loop_lag_p95_s": 0.002 if p in ("asyncio", "gevent") else float("nan"), "speedup": 0.9 * c}
            for p in ("asyncio", "gevent", "prefork") for w in ("io_sleep", "mixed") for c in (10, 100)]
    table = pd.DataFrame(rows)
    table = table.assign(speedup_q25=table["speedup"], speedup_q75=table["speedup"], disturbed=0, unsteady=0)
    path = async_comparison(table, ["workload", "pool", "concurrency"], tmp_path / "async.png")
    assert path.stat().st_size > 20_000
    drawn = sweep_figures(tmp_path, table, ["workload", "pool", "concurrency"], 2, {}, "latency")
    assert tmp_path / "async.png" in drawn and tmp_path / "speedup-vs-concurrency.png" in drawn
    (tmp_path / "x").mkdir()
    without = sweep_figures(tmp_path / "x", table[table["pool"] != "asyncio"], ["workload", "pool", "concurrency"], 2,
                            {}, "latency")
    assert without and not any(p.name == "async.png" for p in without)


def test_greenlet_is_wanted_in_every_worker_environment_but_a_free_threaded_ones():
    from harness.lab.interpreters import _wanted

    assert "greenlet" in _wanted({"version": "3.13.0", "free_threaded": False})
    assert "greenlet" not in _wanted({"version": "3.13.5", "free_threaded": True})
