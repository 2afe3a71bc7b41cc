"""The model's single owners: pools, workloads and settings are declared once and everything derives from them."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    BrokerError,
    ExperimentError,
    RunFailed,
    SpecError,
    WorkerError,
)
from harness.model.pools import POOLS, pool
from harness.model.settings import SETTINGS, from_environment, make_help
from harness.model.spec import RunSpec, build_spec
from harness.model.workloads import KINDS, WORKLOADS
from workloads.protocol import RECORD_FIELDS, WORKER_SETTINGS, TaskRecord, WorkerConfig, worker_env

ROOT = Path(__file__).resolve().parents[2]


def test_run_spec_fields_are_the_settings():
    assert [f.name for f in dataclasses.fields(RunSpec)] == list(SETTINGS)
    spec = build_spec()
    assert {name: getattr(spec, name) for name in ("pool", "workload", "duration", "switch_interval")} == {
        name: SETTINGS[name].default for name in ("pool", "workload", "duration", "switch_interval")}


def test_every_setting_is_a_bench_flag_an_experiment_key_and_a_make_variable():
    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    flags = {opt for action in bench._actions for opt in action.option_strings}
    text = make_help()
    for s in SETTINGS.values():
        assert s.flag in flags and s.make in text
    assert from_environment({"POOL": "solo", "SWITCH": "0.01", "TASKS": " ", "HOME": "/"}) == {
        "pool": "solo", "switch_interval": "0.01"}


def test_make_help_needs_only_the_standard_library():
    out = subprocess.run([sys.executable, "-S", "-m", "harness.model.settings"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "GIL_PROBE" in out.stdout and "SWITCH" in out.stdout


def test_a_pool_and_a_workload_are_each_one_record():
    for p in POOLS.values():
        assert p.default_prefetch == (0 if p.green else 1)
        assert p.gil_probe == (p.slot in ("process", "thread"))  # one GIL per process to watch
        assert p.slot in ("process", "thread", "greenlet", "interpreter", "coroutine")
        assert (p.loop is not None) == (p.green or p.awaits)  # a loop's lag is measured where there is one
        assert (p.celery_pool == "custom") == (p.celery_class is not None)
    for w in WORKLOADS.values():
        assert w.kind in KINDS
        assert callable(w.function) or w.own  # the user's own task is imported by the worker
        assert w.fixed_work == (w.name in ("cpu", "cpu_shared", "gil_release", "mixed", "task"))


def test_celery_task_names_come_from_the_workload_registry():
    code = ("from workloads.app import app; app.finalize(); "
            "print(' '.join(sorted(n for n in app.tasks if not n.startswith('celery.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # The user's own task ("task") is registered only when the worker is given one (LAB_TASK).
    assert out.stdout.split() == sorted([*(n for n, w in WORKLOADS.items() if not w.own), "noop"])
    env = {**os.environ, **worker_env(build_spec(task="examples.tasks:resize", task_path=str(ROOT)).to_dict(),
                                      "redis://:pw@127.0.0.1:1/0", "run-1")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "task" in out.stdout.split()


def test_the_worker_reads_back_what_the_harness_sends():
    spec = build_spec(pool="gevent", concurrency=7, switch_interval="0.002", gil_probe=False)
    env = worker_env(spec.to_dict(), "redis://:pw@127.0.0.1:1/0", "run-1")
    assert set(env) == {"LAB_BROKER_URL", "LAB_RECORDS_URL", "LAB_RUN_ID", "LAB_QUEUE"} | {
        f"LAB_{n.upper()}" for n in WORKER_SETTINGS}
    config = WorkerConfig.from_env(env)
    assert (config.pool, config.concurrency, config.switch_interval, config.prefetch, config.gil_probe) == (
        "gevent", 7, 0.002, 0, False)
    assert config.queue == "lab.run-1" and config.run_id == "run-1"
    assert config.broker == "redis" and config.records_url == config.broker_url  # Redis carries both
    # BROKER=rabbitmq: the tasks on AMQP, the records still on the lab's Redis
    amqp = WorkerConfig.from_env(worker_env(build_spec(broker="rabbitmq").to_dict(), "amqp://lab:pw@127.0.0.1:2//",
                                            "run-2", records_url="redis://:pw@127.0.0.1:1/0"))
    assert (amqp.broker, amqp.broker_url, amqp.records_url) == ("rabbitmq", "amqp://lab:pw@127.0.0.1:2//",
                                                                 "redis://:pw@127.0.0.1:1/0")
    assert RECORD_FIELDS == tuple(f.name for f in dataclasses.fields(TaskRecord))


@pytest.mark.parametrize("error,code", [(SpecError, EXIT_USAGE), (ExperimentError, EXIT_USAGE),
                                        (BrokerError, EXIT_USAGE), (RunFailed, EXIT_FAILED),
                                        (WorkerError, EXIT_FAILED)])
def test_each_error_carries_its_exit_code(error, code):
    assert error("x").exit_code == code


def test_an_unknown_setting_from_code_is_refused():
    with pytest.raises(SpecError, match="unknown setting colour"):
        build_spec(colour="blue")


@pytest.mark.parametrize("setting", ["concurrency", "tasks", "prefetch", "timeout"])
def test_empty_means_the_default_but_spaces_are_refused(setting):
    assert build_spec(**{setting: ""}) == build_spec()
    with pytest.raises(SpecError):
        build_spec(**{setting: " "})


def test_the_oldest_python_is_said_once_and_pyproject_agrees():

    from harness.project import MIN_PYTHON_TEXT, PROJECT_ROOT

    assert f'requires-python = ">={MIN_PYTHON_TEXT}"' in (PROJECT_ROOT / "pyproject.toml").read_text()


def test_the_run_spec_a_type_checker_sees_has_the_settings_fields_and_types():
    import ast

    from harness.model.settings import SETTINGS
    from harness.project import PROJECT_ROOT

    tree = ast.parse((PROJECT_ROOT / "harness" / "model" / "spec.py").read_text())
    (stub,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "RunSpec"]
    seen = {f.target.id: ast.unparse(f.annotation) for f in stub.body if isinstance(f, ast.AnnAssign)}
    assert list(seen) == list(SETTINGS)
    for s in SETTINGS.values():  # a derived default is filled in, but may be None (CPU fraction, off mixed work)
        allowed = ({s.type.__name__, f"{s.type.__name__} | None"} if s.derive else
                   {s.type.__name__ + (" | None" if s.default is None else "")})
        assert seen[s.name] in allowed, (s.name, seen[s.name], allowed)


@pytest.mark.parametrize("name,kind,expected", [
    ("solo", "io", 1), ("threads", "io", 4), ("gevent", "io", 4), ("prefork", "python-cpu", 2),
    ("threads", "python-cpu", 1), ("gevent", "python-cpu", 1), ("threads", "c-cpu", 2),
    ("eventlet", "c-cpu", 1), ("prefork", "io", 4),
])
def test_ideal_speedup_follows_the_physics(name, kind, expected):
    assert pool(name).ideal_speedup(kind, concurrency=4, tasks=10, cores=2) == expected


def test_ideal_speedup_is_capped_by_the_number_of_tasks():
    assert pool("threads").ideal_speedup("io", concurrency=8, tasks=3, cores=2) == 3


def test_build_spec_defaults_and_pool_prefetch():
    spec = build_spec(pool="gevent", concurrency="3")
    assert spec.tasks == 12 and spec.prefetch == 0 == pool("gevent").default_prefetch
    assert build_spec(pool="prefork").prefetch == 1
    assert build_spec(pool="gevent", prefetch="4").prefetch == 4


@pytest.mark.parametrize("field,value", [("pool", "x"), ("concurrency", "1.5"), ("tasks", "0"),
                                         ("duration", "inf"), ("switch_interval", "-0.1"), ("sample_hz", "0")])
def test_build_spec_rejects_bad_values(field, value):
    with pytest.raises(SpecError):
        build_spec(**{field: value})


def test_deadline_follows_the_slowest_honest_schedule():
    io = build_spec(pool="gevent", workload="io_sleep", concurrency=1000, tasks=1000, duration=1.0)
    cpu = build_spec(pool="threads", workload="cpu", concurrency=2, tasks=10, duration=1.0)
    solo = build_spec(pool="solo", workload="io_sleep", concurrency=4, tasks=10, duration=1.0)
    assert io.deadline_s() < 60  # one wave of 1,000 sleeps, not 1,000 sleeps in a row
    assert cpu.deadline_s() > 2 * 10 * 1.0  # CPU work may run one task at a time
    assert solo.deadline_s() > 2 * 10 * 1.0
