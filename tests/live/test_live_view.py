"""Seeing a run, with real workers: the live view while it goes, its trace afterwards, Celery's task
events for Flower, and the command line's own manners."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from celery import Celery
from lab_process import harness

from harness.model.spec import build_spec
from harness.pipeline import run_bench


def test_the_live_view_follows_a_run_as_its_tasks_finish(redis_url, tmp_path):
    seen = []

    class Recorder:
        def __call__(self, records, cores_now):
            seen.append((len(records), cores_now))

        def close(self):
            seen.append("closed")

    run = run_bench(build_spec(pool="threads", workload="cpu", concurrency=2, tasks=8, duration=0.2),
                    results_dir=tmp_path, redis_url=redis_url, log=lambda _l: None, live=lambda spec: Recorder())
    counts = [n for n, _cores in seen[:-1]]
    assert seen[-1] == "closed" and counts == sorted(counts)  # called again and again as records arrive
    assert counts[-1] == 8  # the batch's tasks (the ones run alone before and after are not in the view)
    assert len(counts) >= 5  # several times a second over a run of about two seconds
    cores = [c for _n, c in seen[:-1] if c is not None]
    assert cores and 0.5 < max(cores) < 1.6  # threads on Python CPU work: one core at a time
    trace = json.loads((run.path / "trace.json").read_text())
    lanes = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == 1]
    assert len(lanes) == 2 and sum(e["ph"] == "X" and e["pid"] == 1
                                   for e in trace["traceEvents"]) == 10  # 8, and 2 alone


def test_a_bench_in_a_pipe_prints_plain_progress_lines_and_writes_its_trace_and_the_index(workdir):
    out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--concurrency", "2", "--tasks", "8",
                  "--duration", "0.3", cwd=workdir)
    assert out.returncode == 0, out.stderr
    progress = [line for line in out.stderr.splitlines() if "tasks done" in line]
    assert progress and progress[-1].endswith("cores in use") and "8/8 tasks done" in progress[-1]
    latest = workdir / "results" / "latest"
    assert (latest / "trace.json").exists()
    index = (workdir / "results" / "index.html").read_text()
    assert latest.resolve().name in index and "quiet" in index


def test_events_on_lets_a_monitor_see_the_tasks(redis_url, tmp_path):
    # What Flower does: a receiver of the worker's task events on the same broker.
    app = Celery(broker=redis_url)
    succeeded, ready = [], threading.Event()

    def listen():
        with app.connection() as connection:
            def seen(event):
                succeeded.append(event)
                receiver.should_stop = len(succeeded) >= 4  # the events run's tasks all seen: no need to wait on

            receiver = app.events.Receiver(connection, handlers={"task-succeeded": seen})
            ready.set()
            try:
                receiver.capture(limit=None, timeout=20, wakeup=False)
            except Exception:  # the timeout (no events), or the broker closing
                pass

    def bench(events):
        return run_bench(build_spec(pool="threads", workload="io_sleep", concurrency=2, tasks=4, duration=0.1,
                                    events=events), results_dir=tmp_path, redis_url=redis_url, log=lambda _l: None)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    bench(False)
    quiet = len(succeeded)
    run = bench(True)
    listener.join(timeout=25)
    assert quiet == 0
    assert len(succeeded) >= 4, succeeded  # the 4 tasks (and the one alone first, for fixed work only)
    assert run.spec.events is True


def test_the_command_line_says_what_it_is(workdir):
    version = harness("--version", cwd=workdir)
    assert version.returncode == 0 and version.stdout.startswith("gil-lab ")
    installed = Path(sys.executable).parent / "gil-lab"  # the command `make` installs with the lab
    out = subprocess.run([str(installed), "--version"], capture_output=True, text=True, timeout=60, cwd=workdir)
    assert out.returncode == 0 and out.stdout.strip() == version.stdout.strip()
    bare = harness(cwd=workdir)
    assert bare.returncode == 0 and "bench" in bare.stdout and "usage: gil-lab" in bare.stdout
    near = harness("bench", "--pool", "thread", cwd=workdir)
    assert near.returncode == 2 and "did you mean 'threads'?" in near.stderr
    assert len(near.stderr.strip().splitlines()) == 1
