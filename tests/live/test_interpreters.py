"""The worker's interpreter as an axis: pyenv's GIL builds here, and a free-threaded build where one is found.

A free-threaded interpreter is taken from LAB_FREETHREADED_PYTHON, else python3.14t or python3.13t as
the lab finds them (PATH, pyenv, uv); without one those tests are skipped, saying so. (On these machines
../shared/tools/freethreaded-python
builds one in about 10 minutes; the tests never build it.)
"""
from __future__ import annotations

import pytest
from lab_process import assert_speedup_physical_or_marked, measured_steadily, pyenv_python

from harness.errors import SpecError
from harness.lab.interpreters import find_free_threaded
from harness.model.machine import usable_cores

FT = find_free_threaded()
needs_ft = pytest.mark.skipif(FT is None, reason="no free-threaded interpreter found: set LAB_FREETHREADED_PYTHON "
                                                 "or install one (pyenv install 3.13t, uv python install 3.14t)")
needs_2_cores = pytest.mark.skipif(usable_cores() < 2, reason="parallelism needs at least 2 cores")


@pytest.mark.parametrize("minor", ["3.12", "3.13"])
def test_the_worker_runs_on_another_interpreter_with_its_own_gil(bench, minor):
    python = pyenv_python(minor)
    if python is None:
        pytest.skip(f"pyenv has no CPython {minor} here")
    run = measured_steadily(lambda: bench(pool="threads", workload="cpu", concurrency=2, tasks=4, duration=0.2,
                                          interpreter=python))
    info = run.manifest.settings.worker_interpreter
    assert info.version.startswith(minor + ".") and not info.free_threaded and info.requested == python
    assert info.python.endswith("bin/python") and ".lab/envs/" in info.python
    if minor >= "3.13":  # sys._is_gil_enabled exists from 3.13: the tasks ran there
        assert run.foreground["gil_enabled"].astype(bool).all()
    s = run.summary
    assert s.mean_cores_used < 1.25  # one GIL there too
    assert_speedup_physical_or_marked(s, high=1.25)
    assert 0.8 < s.work_inflation < 1.25


def _seconds_per_iteration(run) -> float:
    return run.summary.makespan_s / (run.manifest.settings.calibration["iterations"] * run.spec.tasks)


@needs_ft
@needs_2_cores
def test_free_threaded_threads_run_cpu_work_in_parallel_and_the_speedup_agrees_with_the_makespans(bench):
    one = measured_steadily(lambda: bench(pool="threads", workload="cpu", concurrency=1, tasks=4, duration=0.25,
                                          interpreter=FT))
    two = measured_steadily(lambda: bench(pool="threads", workload="cpu", concurrency=2, tasks=4, duration=0.25,
                                          interpreter=FT))
    assert two.manifest.settings.free_threaded
    assert not two.foreground["gil_enabled"].astype(bool).any()
    assert one.summary.mean_cores_used < 1.1 and two.summary.mean_cores_used > 1.4
    assert_speedup_physical_or_marked(one.summary, 0.85, 1.1)
    assert_speedup_physical_or_marked(two.summary, low=1.4)
    assert two.summary.work_inflation < 1.25 or two.summary.unsteady
    # The same work per iteration, timed at concurrency 1 and 2, gives the speedup the summary reports.
    measured = _seconds_per_iteration(one) / _seconds_per_iteration(two)
    assert two.summary.speedup == pytest.approx(measured, rel=0.2)


@needs_ft
def test_the_gil_forced_on_in_a_free_threaded_worker_serialises_threads_again(bench):
    run = measured_steadily(lambda: bench(pool="threads", workload="cpu", concurrency=2, tasks=4, duration=0.25,
                                          interpreter=FT, gil="on"))
    assert run.manifest.settings.worker_interpreter.extra["PYTHON_GIL"] == "1"
    assert run.foreground["gil_enabled"].astype(bool).all()
    assert run.summary.mean_cores_used < 1.25
    assert_speedup_physical_or_marked(run.summary, high=1.25)


@needs_ft
def test_gevent_is_refused_on_a_free_threaded_worker_before_anything_starts(bench, tmp_path):
    with pytest.raises(SpecError, match="pool 'gevent' cannot run on CPython .* free-threaded"):
        bench(pool="gevent", workload="io_sleep", tasks=1, interpreter=FT)
    assert not (tmp_path / "results").exists()


@needs_ft
def test_the_asyncio_pool_is_refused_on_a_free_threaded_worker_and_greenlet_kept_out_of_its_environment(bench,
                                                                                                       tmp_path):
    """greenlet turns the GIL back on, and Celery imports it wherever it is installed: the lab keeps it out of a
    free-threaded worker's environment (threads keep running without a GIL there) and refuses the pools needing it."""
    with pytest.raises(SpecError, match="pool 'asyncio' cannot run on CPython .* free-threaded: it needs greenlet"):
        bench(pool="asyncio", workload="io_sleep", tasks=1, interpreter=FT)
    assert not (tmp_path / "results").exists()
