"""Beyond the five pools, with real workers: a custom pool class, the interpreters pool, several workers,
and the topology experiment end to end."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
from lab_process import ROOT, assert_speedup_physical_or_marked, harness, measured_steadily, pyenv_python

from harness.model.experiment import load_experiment
from harness.model.machine import usable_cores
from harness.pipeline import report
from harness.present.page import FIGURE_ALT
from harness.results.records import Status
from harness.sweeps import run_sweep, start_sweep

PY313 = pyenv_python("3.13")
needs_313 = pytest.mark.skipif(PY313 is None, reason="the interpreters pool needs CPython 3.13+: pyenv has none here")
needs_2_cores = pytest.mark.skipif(usable_cores() < 2, reason="parallelism needs at least 2 cores")


def test_a_custom_pool_class_runs_through_celerys_custom_pool(bench):
    run = bench(pool="custom:celery.concurrency.thread:TaskPool", workload="io_sleep", concurrency=4, tasks=8,
                duration=0.2)
    settings = run.manifest.settings.extra  # what the lab recorded of the worker it started
    assert settings["worker_argv"][settings["worker_argv"].index("-P") + 1] == "custom"
    assert settings["pool_check"]["class"] == "celery.concurrency.thread:TaskPool"
    s = run.summary
    assert s.tasks_done == 8 and s.ideal_speedup is None  # nothing is assumed of a pool class
    assert s.speedup > 2.5  # four sleeping threads: 4x ideal, wide margin
    # Slots named from where tasks ran: the worker's own process, so threads.
    assert run.foreground["slot"].str.startswith("thread ").all() and s.slots_used == 4


def test_a_pool_class_is_found_in_the_current_directory_and_a_wrong_one_refused(workdir):
    shutil.copy(ROOT / "tests" / "data" / "pools" / "lab_pools.py", workdir / "lab_pools.py")
    out = harness("bench", "--pool", "custom:lab_pools:NamedThreadPool", "--workload", "io_sleep", "--tasks", "2",
                  "--duration", "0.05", cwd=workdir, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "-custom-NamedThreadPool-io_sleep-" in str(next((workdir / "results").glob("*-custom-*")))
    for pool, says in [("custom:lab_pools:NotAPool", "is not a Celery pool class"),
                       ("custom:no_such_module:Pool", "cannot import it"),
                       ("custom:celery.concurrency.gevent:TaskPool", "use POOL=gevent or POOL=eventlet"),
                       ("custom:lab_pools", "a custom pool is custom:package.module:Class")]:
        before = set((workdir / "results").iterdir())
        out = harness("bench", "--pool", pool, cwd=workdir, timeout=120)
        assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert set((workdir / "results").iterdir()) == before  # nothing written


@needs_2_cores
def test_two_threads_workers_are_two_processes_with_a_gil_each(bench):
    run = measured_steadily(lambda: bench(pool="threads", workload="cpu", concurrency=1, workers=2, tasks=8,
                                          duration=0.2))
    s = run.summary
    assert s.ideal_speedup == 2 and s.mean_cores_used > 1.5
    assert_speedup_physical_or_marked(s, low=1.5)
    fg = run.foreground
    assert sorted(fg["worker"].unique()) == [1, 2] and fg["pid"].nunique() == 2
    assert set(fg["slot"].str.split(":").str[0]) == {"worker 1", "worker 2"}
    sampled = set(run.samples.loc[run.samples["kind"] == "process", "pid"].dropna().astype(int))
    assert set(fg["pid"]) <= sampled  # the sampler covered both workers
    assert len(run.manifest.settings.extra["worker_ready"]["workers"]) == 2


@needs_313
@needs_2_cores
def test_subinterpreters_run_cpu_work_in_parallel_in_one_process(bench):
    run = measured_steadily(lambda: bench(pool="interpreters", workload="cpu", concurrency=2, tasks=8, duration=0.25,
                                          interpreter=PY313))
    s = run.summary
    fg = run.foreground
    assert fg["pid"].nunique() == 1  # one worker process ...
    assert sorted(fg["slot"].unique()) == ["interpreter 1", "interpreter 2"]  # ... two subinterpreters
    assert s.mean_cores_used > 1.5  # the bar: 2 cores, a GIL each
    assert_speedup_physical_or_marked(s, low=1.5)
    assert 0.8 < s.work_inflation < 1.25 or s.unsteady
    started = run.manifest.settings.extra["worker_ready"]["interpreters"]
    assert started["interpreters"] == 2 and started["startup_s"] > 0
    prefork = measured_steadily(lambda: bench(pool="prefork", workload="cpu", concurrency=2, tasks=8, duration=0.25,
                                              interpreter=PY313))
    # Memory beside prefork's: both measured the same way (PSS of the worker tree).
    assert s.pss_peak_mib > 10 and prefork.summary.pss_peak_mib > 10


@needs_313
def test_what_cannot_load_in_a_subinterpreter_is_refused_in_one_line(workdir):
    out = harness("bench", "--pool", "interpreters", "--interpreter", PY313, "--task", "needs_greenlet:work",
                  "--args", "[1]", "--task-path", str(ROOT / "tests" / "data" / "own_tasks"), cwd=workdir,
                  timeout=300)
    assert out.returncode == 2 and "cannot be imported in a subinterpreter" in out.stderr, out.stderr
    assert "_greenlet" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (workdir / "results").exists() or not any((workdir / "results").iterdir())
    out = harness("bench", "--pool", "interpreters", cwd=workdir, timeout=120)  # the lab's own 3.10-3.12
    if pyenv_python("3.13") and not out.returncode == 0:
        assert out.returncode == 2 and "needs CPython 3.13 or newer" in out.stderr


def test_the_topology_experiment_runs_end_to_end(tmp_path, redis_url):
    exp = load_experiment(ROOT / "experiments" / "topology.toml").shrunk()
    exp.axes["workload"] = ["cpu"]  # the quick version of one kind of work keeps the suite short
    folder = start_sweep(exp, quick=True, results_dir=tmp_path / "results")
    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest.status == Status.COMPLETE and len(manifest.runs) == 6
    table = pd.read_csv(folder / "summary.csv")
    shapes = sorted(zip(table["pool"], table["workers"], table["concurrency"], strict=False))
    assert shapes == sorted((p, w, 4 // w) for p in ("threads", "prefork") for w in (1, 2, 4))
    # The topology figure is in the report, with its alt text (harness.present.page.FIGURE_ALT).
    assert f'alt="{FIGURE_ALT["topology"]}"' in report(folder).read_text() and (folder / "topology.png").exists()
    threads = table[table["pool"] == "threads"].set_index("workers")["ideal_speedup"]
    assert threads[1] == 1 and threads[4] == min(4, usable_cores())  # a GIL per worker process
