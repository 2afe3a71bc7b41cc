"""The command line as a user meets it: bad input, a full run, and runs that cannot finish."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_process import finish, lab_env, start, wait_for, worker_of

ROOT = Path(__file__).resolve().parents[1]


def harness(*args: str, env: dict | None = None, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=lab_env(env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path):
    # Run from a scratch folder, so results/ lands there; the project is put on PYTHONPATH.
    return tmp_path


BAD_SETTINGS = [
    (["--pool", "forkserver"], "unknown pool 'forkserver'; allowed: prefork, threads, solo, gevent, eventlet"),
    (["--workload", "sleep"], "unknown workload 'sleep'; allowed: busy_wait, cpu, io_sleep, io_net, gil_release"),
    (["--concurrency", "0"], "concurrency must be a whole number >= 1"),
    (["--concurrency", "two"], "concurrency must be a whole number >= 1"),
    (["--tasks", "0"], "tasks must be a whole number >= 1"),
    (["--tasks", "-3"], "tasks must be a whole number >= 1"),
    (["--duration", "0"], "duration must be a number > 0"),
    (["--duration", "-1"], "duration must be a number > 0"),
    (["--duration", "soon"], "duration must be a number > 0"),
    (["--switch-interval", "0"], "switch interval must be a number > 0"),
    (["--switch-interval", "fast"], "switch interval must be a number > 0"),
    (["--switch-interval", "nan"], "switch interval must be a number > 0"),
    (["--prefetch", "-1"], "prefetch must be a whole number >= 0"),
    (["--colour", "blue"], "unrecognized arguments: --colour blue"),
]


@pytest.mark.parametrize("args,message", BAD_SETTINGS, ids=[" ".join(a) for a, _ in BAD_SETTINGS])
def test_bad_setting_gets_one_line_and_exit_2_and_writes_nothing(workdir, args, message):
    started = time.monotonic()
    out = harness("bench", *args, cwd=workdir)
    assert out.returncode == 2
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not (workdir / "results").exists()
    assert time.monotonic() - started < 20


def test_unreachable_redis_url_is_named_without_its_password(workdir):
    out = harness("bench", "--tasks", "1", cwd=workdir,
                  env={"REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"})
    assert out.returncode == 2
    assert "redis://:***@127.0.0.1:1/0 is not reachable" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (workdir / "results").exists()


@pytest.mark.parametrize("pool", ["gevent", "eventlet"])
def test_green_pool_that_does_not_import_is_refused(workdir, pool):
    shadow = workdir / "shadow"
    shadow.mkdir()
    (shadow / f"{pool}.py").write_text(f"raise ImportError('no {pool} on this machine')\n")
    out = harness("bench", "--pool", pool, "--tasks", "1", cwd=workdir, env={"PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)])})
    assert out.returncode == 2
    assert f"pool '{pool}' needs the {pool} package" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (workdir / "results").exists()


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


def test_help_lists_every_setting(workdir):
    out = harness("bench", "--help", cwd=workdir)
    assert out.returncode == 0
    for flag in ("--pool", "--workload", "--concurrency", "--tasks", "--duration", "--switch-interval", "--prefetch"):
        assert flag in out.stdout


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
    proc = start(LONG_PREFORK, workdir)
    worker = wait_for(lambda: worker_of(proc.pid), what="the worker")
    time.sleep(1.0)  # let it take tasks
    worker.send_signal(signal.SIGKILL)
    code, _, err = finish(proc, timeout=30)
    assert code == 1
    assert "the prefork worker died" in err
    assert "Traceback" not in err


def test_ctrl_c_stops_everything_and_marks_the_run_interrupted(workdir):
    # Its own process group, so SIGINT goes to the whole group, as a terminal's Ctrl-C does.
    proc = start(LONG_PREFORK, workdir, start_new_session=True)
    wait_for(lambda: worker_of(proc.pid), what="the worker")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    code, _, err = finish(proc, timeout=30)
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    (folder,) = [p for p in (workdir / "results").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "interrupted"
    assert manifest["partial"]["tasks_submitted"] == 4
