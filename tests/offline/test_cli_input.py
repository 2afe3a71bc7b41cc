"""The command line as a user meets it, before any worker starts: bad input, an unreachable broker, help."""
from __future__ import annotations

import os
import sysconfig
import time
from pathlib import Path

import pytest
from lab_process import harness

ROOT = Path(__file__).resolve().parents[2]


BAD_SETTINGS = [
    (["--pool", "forkserver"], "unknown pool 'forkserver'; allowed: prefork, threads, solo, gevent, eventlet"),
    (["--workload", "sleep"], "unknown workload 'sleep' (did you mean 'io_sleep'?); allowed: busy_wait, cpu, "
                                 "cpu_shared, io_sleep, "
                                 "io_net, gil_release"),
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


def in_process(args, workdir, monkeypatch, capsys) -> tuple[int, str]:
    """`gil-lab ARGS` run by its own main function in this process (the same code a new interpreter runs,
    without the second of start-up each time): exit code and stderr."""
    from harness import cli

    monkeypatch.chdir(workdir)
    monkeypatch.setattr(cli, "stop_in_order_on_signals", lambda: None)
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args,message", BAD_SETTINGS, ids=[" ".join(a) for a, _ in BAD_SETTINGS])
def test_bad_setting_gets_one_line_and_exit_2_and_writes_nothing(workdir, args, message, monkeypatch, capsys):
    started = time.monotonic()
    code, err = in_process(["bench", *args], workdir, monkeypatch, capsys)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (workdir / "results").exists()
    assert time.monotonic() - started < 20


def test_a_bad_setting_from_a_real_command_line_is_one_line_too(workdir):
    out = harness("bench", *BAD_SETTINGS[0][0], cwd=workdir)
    assert out.returncode == 2 and BAD_SETTINGS[0][1] in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


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
    out = harness("bench", "--pool", pool, "--tasks", "1", cwd=workdir,
                  env={"PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT)])})
    assert out.returncode == 2
    assert f"pool '{pool}' needs the {pool} package" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (workdir / "results").exists()


def test_help_lists_every_setting(workdir):
    out = harness("bench", "--help", cwd=workdir)
    assert out.returncode == 0
    for flag in ("--pool", "--workload", "--concurrency", "--tasks", "--duration", "--switch-interval", "--prefetch"):
        assert flag in out.stdout




@pytest.mark.parametrize("args,message", [
    (["--interpreter", "/nonexistent/python3"], "interpreter '/nonexistent/python3' not found"),
    (["--interpreter", "/bin/echo"], "interpreter '/bin/echo' is not a Python"),
    (["--gil", "off"], "GIL=off needs a free-threaded build"),
    (["--gil", "maybe"], "unknown GIL setting 'maybe'; allowed: on, off"),
])
def test_an_interpreter_or_gil_setting_that_cannot_work_is_refused_before_anything_starts(workdir, args, message):
    if args[:2] == ["--gil", "off"] and sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("the lab's own interpreter is free-threaded here")
    out = harness("bench", *args, cwd=workdir)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (workdir / "results").exists()


def test_a_capacity_experiment_is_not_a_sweep_and_a_sweep_is_not_a_capacity_experiment(workdir, monkeypatch,
                                                                                          capsys):
    for args, said in [(["sweep", str(ROOT / "experiments" / "capacity.toml")], "is a capacity experiment"),
                       (["capacity", "--exp", str(ROOT / "experiments" / "pools.toml")], "has no slo: it is a sweep"),
                       (["capacity", "--exp", str(ROOT / "experiments" / "capacity.toml"), "--pool", "threads"],
                        "gives the settings: leave out POOL")]:
        code, err = in_process(args, workdir, monkeypatch, capsys)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "results").exists()


def test_advice_at_a_rate_refuses_a_bad_rate_slo_or_shape_before_anything_starts(workdir, monkeypatch, capsys):
    for args, said in [(["--slo", "p95<1s"], "SLO go with RATE: give RATE"),
                       (["--load-time", "5"], "LOAD_TIME go with RATE"),
                       (["--rate", "40", "--slo", "fast"], "SLO 'fast' does not parse"),
                       (["--rate", "0"], "RATE"),
                       (["--rate", "40", "--arrivals", "burst:3"], "is not an arrival pattern")]:
        code, err = in_process(["advise", "--workload", "io_sleep", *args], workdir, monkeypatch, capsys)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (workdir / "results").exists()


def test_broker_rabbitmq_without_a_rabbitmq_is_one_line_saying_how_to_get_one(workdir, monkeypatch, capsys):
    from harness.lab.services import rabbitmq

    monkeypatch.setattr(rabbitmq, "find_rabbitmq", lambda: None)  # as on a machine without it
    code, err = in_process(["bench", "--broker", "rabbitmq"], workdir, monkeypatch, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "BROKER=rabbitmq: no RabbitMQ server found" in err and "apt-get install rabbitmq-server" in err
    code, err = in_process(["bench", "--broker", "kafka"], workdir, monkeypatch, capsys)
    assert code == 2 and "allowed: redis, rabbitmq" in err and len(err.strip().splitlines()) == 1, err
    assert not (workdir / "results").exists()
