"""Faults, Ctrl-C, isolation and integrity, with real processes: bounded, explained, nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import redis
from lab_process import Watched, finish, is_broker, start, wait_for, worker_of

from harness.errors import ResultsError, RunFailed
from harness.results import load_run
from harness.results.records import Status


def only_run_folder(results: Path) -> Path:
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    return folder


LONG_PREFORK = ["bench", "--pool", "prefork", "--workload", "io_sleep", "--concurrency", "2", "--tasks", "4",
                "--duration", "20"]


def test_a_task_that_raises_fails_the_run_but_keeps_every_record(bench, monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_FAULT", "raise")  # the worker inherits it
    with pytest.raises(RunFailed, match="4 of 4 tasks raised an error, e.g. RuntimeError: fault injected"):
        bench(pool="threads", workload="io_sleep", concurrency=2, tasks=4, duration=0.05)
    folder = only_run_folder(tmp_path / "results")
    run = load_run(folder, allow_incomplete=True)
    assert run.status == Status.FAILED and "raised an error" in run.manifest.reason
    assert len(run.tasks) == 4 and run.tasks["error"].str.contains("fault injected").all()
    with pytest.raises(ResultsError, match="run is failed, not complete"):
        load_run(folder)


def test_a_prefork_child_killed_mid_task_ends_the_run_at_once(tmp_path):
    proc = start(LONG_PREFORK, tmp_path)
    worker = wait_for(lambda: worker_of(proc.pid), what="the worker")
    child = wait_for(lambda: (worker.children() or [None])[0], what="a pool process")
    time.sleep(1.5)  # both children are inside their 20 s tasks
    started = time.monotonic()
    child.kill()
    code, _, err = finish(proc)
    assert code == 1
    assert f"a prefork child process (pid {child.pid}) died mid-run; its task was lost" in err
    # Nothing waits for the other child's 20 s task nor a grace period: the worker is killed at once
    # (0.3 s here; 4-7 s while a failed run's worker still had a warm shutdown).
    assert time.monotonic() - started < 5
    manifest = json.loads((only_run_folder(tmp_path / "results") / "run.json").read_text())
    assert manifest["status"] == "failed" and "died mid-run" in manifest["reason"]


def test_redis_killed_mid_run_ends_the_run_and_the_next_run_works(tmp_path):
    proc = Watched(LONG_PREFORK, tmp_path)
    wait_for(lambda: worker_of(proc.pid), what="the worker")
    server = next(p for p in psutil.Process(proc.pid).children() if is_broker(p.name()))
    proc.wait_for_line("submitted")  # mid-run: the worker is up and has its tasks (not a guessed moment)
    time.sleep(0.5)
    server.kill()
    code, err = proc.finish()
    assert code == 1
    assert "lost the Redis broker mid-run" in err
    assert "Traceback" not in err
    manifest = json.loads((only_run_folder(tmp_path / "results") / "run.json").read_text())
    assert manifest["status"] == "failed" and "lost the Redis broker" in manifest["reason"]

    again = start(["bench", "--pool", "threads", "--workload", "io_sleep", "--tasks", "2", "--duration", "0.1"],
                  tmp_path)
    code, out, err = finish(again)
    assert code == 0, err
    assert json.loads((tmp_path / "results" / "latest" / "run.json").read_text())["status"] == "complete"


def test_a_worker_killed_mid_load_ends_the_run_and_stops_the_sender_at_once(tmp_path):
    """An open-loop load sends from a thread of its own: a worker that dies while tasks still arrive ends the run in
    one line, and no task is sent after it (the sender stops before its next scheduled send)."""
    proc = Watched(["load", "--pool", "threads", "--workload", "io_sleep", "--duration", "0.05", "--rate", "20",
                    "--load-time", "20"], tmp_path)
    worker = wait_for(lambda: worker_of(proc.pid), what="the worker")
    proc.wait_for_line("offering")
    time.sleep(2)  # tasks arrive and finish
    started = time.monotonic()
    worker.kill()
    code, err = proc.finish()
    assert code == 1 and "Traceback" not in err
    assert time.monotonic() - started < 10  # not the 20 s of the schedule
    folder = only_run_folder(tmp_path / "results")
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["partial"]["tasks_submitted"] < 20 * 20 / 2  # the sender stopped with the run
    assert not psutil.pid_exists(worker.pid) or psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE


TINY_SWEEP = '''name = "tiny"
question = "q"
repeats = 2
[fixed]
workload = "io_sleep"
duration = 1.5
tasks = 2
concurrency = 2
[axes]
pool = ["threads", "solo"]
'''


def test_ctrl_c_during_a_sweep_keeps_it_resumable(tmp_path, redis_url):
    (tmp_path / "tiny.toml").write_text(TINY_SWEEP)
    proc = start(["sweep", "tiny.toml"], tmp_path, start_new_session=True)
    runs = wait_for(lambda: next((tmp_path / "results").glob("sweep-*/runs/*/run.json"), None), what="a run")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    code, _, err = finish(proc)
    folder = runs.parents[2]
    assert code == 130
    assert f"resume with `python -m harness sweep --resume {folder.relative_to(tmp_path)}`" in err
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["status"] == "interrupted"
    assert any(e["status"] == "pending" for e in manifest["runs"])

    resumed = start(["sweep", "--resume", str(folder)], tmp_path, env={"REDIS_URL": redis_url})
    code, out, err = finish(resumed, timeout=120)
    assert code == 0, err
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["status"] == "complete"
    assert all(e["status"] == "complete" for e in manifest["runs"])
    assert (folder / "report.html").exists()


def test_two_runs_at_once_neither_mix_tasks_nor_results(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    # A message left behind by an earlier run, in the default queue and in an old run's queue.
    client.lpush("celery", b"stale")
    client.lpush("lab.20200101-000000-threads-cpu-dead", b"stale")
    args = ["bench", "--pool", "threads", "--workload", "io_sleep", "--concurrency", "2", "--tasks", "6",
            "--duration", "0.3"]
    a = start(args + ["--results-dir", "a"], tmp_path, env={"REDIS_URL": redis_url})
    b = start(args + ["--results-dir", "b"], tmp_path, env={"REDIS_URL": redis_url})
    assert finish(a)[0] == 0 and finish(b)[0] == 0
    run_a, run_b = load_run(tmp_path / "a" / "latest"), load_run(tmp_path / "b" / "latest")
    assert run_a.run_id != run_b.run_id
    assert len(run_a.tasks) == len(run_b.tasks) == 6
    assert not set(run_a.tasks["task_id"]) & set(run_b.tasks["task_id"])
    assert client.llen("celery") == 1 and client.llen("lab.20200101-000000-threads-cpu-dead") == 1
    client.delete("celery", "lab.20200101-000000-threads-cpu-dead")
