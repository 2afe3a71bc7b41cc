"""The command line as a user meets it: bad input, a full run, and runs that cannot finish."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lab_process import Watched, harness, wait_for, worker_of

ROOT = Path(__file__).resolve().parents[2]


def test_bench_with_a_private_redis_prints_a_summary_and_links_latest(workdir):
    out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--concurrency", "2",
                  "--tasks", "4", "--duration", "0.2", cwd=workdir)
    assert out.returncode == 0, out.stderr
    assert "private redis-server at redis://:***@127.0.0.1:" in out.stderr
    assert "speedup vs one at a time" in out.stdout
    latest = workdir / "results" / "latest"
    manifest = json.loads((latest / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["summary"]["tasks_done"] == 4


def test_a_task_that_never_returns_ends_the_run_with_a_message(workdir):
    started = time.monotonic()
    out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--concurrency", "1",
                  "--tasks", "2", "--duration", "60", "--timeout", "2", cwd=workdir)
    assert out.returncode == 1
    assert "2 of 2 tasks did not finish within 2 s" in out.stderr
    assert time.monotonic() - started < 30
    (folder,) = [p for p in (workdir / "results").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "failed" and "did not finish" in manifest["reason"]
    assert not (workdir / "results" / "latest").exists()  # latest only ever names a complete run


LONG_PREFORK = ["bench", "--pool", "prefork", "--workload", "io_sleep", "--concurrency", "2", "--tasks", "4",
                "--duration", "20"]  # tasks that outlast the test: something must end the run early


def test_a_worker_that_dies_ends_the_run_with_a_message(workdir):
    proc = Watched(LONG_PREFORK, workdir)
    worker = wait_for(lambda: worker_of(proc.pid), what="the worker")
    proc.wait_for_line("submitted 4 io_sleep tasks")  # the worker is up and has tasks (not a guessed moment)
    time.sleep(0.5)
    worker.send_signal(signal.SIGKILL)
    code, err = proc.finish(timeout=30)
    assert code == 1
    assert "the prefork worker died" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_everything_and_marks_the_run_interrupted(workdir):
    # Its own process group, so SIGINT goes to the whole group, as a terminal's Ctrl-C does.
    proc = Watched(LONG_PREFORK, workdir, start_new_session=True)
    proc.wait_for_line("submitted 4 io_sleep tasks")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    code, err = proc.finish(timeout=30)
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    (folder,) = [p for p in (workdir / "results").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["partial"]["tasks_submitted"] == 4
