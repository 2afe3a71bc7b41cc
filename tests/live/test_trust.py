"""Disturbance with real processes: the machine loaded on purpose during a real run, a quiet run beside
it, --strict refusing a busy machine, and the scriptable --json output of bench and sweep."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from lab_process import harness

from harness.pipeline import report

# Two processes that spin until killed (at most 60 s), named so they can be found, started outside the
# test's process tree (the parent exits): the lab counts its own descendants as itself, and a real
# disturbance comes from elsewhere.
HOG = """
import os, sys, time
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # let go of the test's pipes, or it would wait for them to close
            os.dup2(devnull, fd)
        open("/proc/self/comm", "w").write("lab-test-hog")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            pass
        os._exit(0)
    pids.append(pid)
print(" ".join(map(str, pids)), flush=True)
os._exit(0)
"""


@pytest.fixture
def machine_loaded():
    out = subprocess.run([sys.executable, "-c", HOG], capture_output=True, text=True, timeout=10)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    time.sleep(0.5)  # both spinning before the run starts
    try:
        yield pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids) \
                and time.monotonic() < deadline:
            time.sleep(0.05)


QUIET_RUN = dict(pool="threads", workload="io_sleep", concurrency=2, tasks=8, duration=0.5)


def test_a_quiet_run_is_not_marked(bench):
    run = bench(**QUIET_RUN)
    assert run.summary.disturbed is False, run.summary.other_cores_used
    assert run.summary.other_cores_used < 0.5
    load = run.manifest.settings.machine_load
    assert len(load.load_average_before) == 3 and len(load.load_average_after) == 3


def test_a_run_with_the_machine_loaded_on_purpose_is_marked_disturbed(bench, machine_loaded):
    run = bench(**QUIET_RUN)
    s = run.summary
    # Two spinning processes on a 2-core machine beside sleeping tasks: most of two cores went to them.
    assert s.disturbed is True and s.other_cores_used >= 1.0, s.other_cores_used
    assert s.notes[0].startswith(f"DISTURBED: {s.other_cores_used:.1f} other cores were busy during this run")
    busiest = run.manifest.settings.machine_load.busiest_other_processes
    assert busiest and busiest[0].name == "lab-test-hog" and busiest[0].cores > 0.3
    page = report(run.path).read_text()
    assert "DISTURBED: " in page and "lab-test-hog" in page


def test_strict_refuses_a_busy_machine_before_anything_starts(workdir, machine_loaded):
    out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--tasks", "2", "--strict", cwd=workdir)
    assert out.returncode == 3, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the machine is busy: ") and "lab-test-hog" in lines[0]
    assert not (workdir / "results").exists()


def test_bench_and_sweep_print_json_for_scripts(workdir, redis_url, tmp_path):
    out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--concurrency", "2", "--tasks", "4",
                  "--duration", "0.2", "--json", "--strict", cwd=workdir, env={"REDIS_URL": redis_url})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "complete" and data["spec"]["pool"] == "threads"
    assert data["summary"]["tasks_done"] == 4 and data["summary"]["disturbed"] in (True, False)
    experiment = tmp_path / "tiny.toml"
    experiment.write_text('name = "tiny"\nquestion = "q"\nrepeats = 1\n[fixed]\nworkload = "io_sleep"\n'
                          'tasks = 4\nduration = 0.2\nconcurrency = 2\n[axes]\npool = ["threads", "solo"]\n')
    out = harness("sweep", str(experiment), "--json", cwd=workdir, env={"REDIS_URL": redis_url}, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "complete" and len(data["cells"]) == 2
    assert data["cautions"][0].startswith("ONE REPEAT per cell")
    (decision,) = data["decisions"]
    assert decision["pool"] == "threads" and decision["trust"] == "low"
    assert "caution: ONE REPEAT per cell" in out.stderr
