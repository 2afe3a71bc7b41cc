"""Checks made before anything starts: can this machine run the pool and the probes a spec asks for?"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import SpecError, UsageError
from harness.lab import consent, gilprobe
from harness.lab.interpreters import (
    NOT_FREE_THREADED,
    Interpreter,
    as_is,
    minor_version,
    project_env,
    worker_interpreter,
)
from harness.lab.services import postgres, rabbitmq
from harness.model.drivers import DRIVERS, driver
from harness.model.pools import POOLS, pool
from harness.model.spec import RunSpec
from harness.project import MIN_PYTHON, PROJECT_ROOT

if TYPE_CHECKING:
    from harness.lab.fleet import FleetSettings


def _ask(python: str, argv: list[str], what: str, timeout_s: float, also: list[str] | None = None,
         cwd: str | None = None) -> dict:
    """Run `python -m <argv>` from the project root (or `cwd`) as the worker would; its last line is a JSON answer
    ({"ok": ...}). A problem it names, a crash or a time-out is a SpecError naming `what`."""
    try:
        out = subprocess.run([python, "-m", *argv], capture_output=True, text=True, timeout=timeout_s,
                             env=project_env(also=also), cwd=cwd or str(PROJECT_ROOT), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SpecError(f"{what}: checking it took over {timeout_s:g} s") from None
    lines = out.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}, no output"])[-1]
        raise SpecError(f"{what}: checking it failed ({last})") from None
    if not answer["ok"]:
        raise SpecError(answer["error"])
    return answer


def check_pool(spec: RunSpec, interpreter: Interpreter, timeout_s: float = 90.0) -> dict | None:
    """The pool runs on the worker's interpreter: its version, its module (gevent, eventlet), and for a
    pool class the lab does not start by name, a check in that interpreter. Returns what run.json records."""
    rules = spec.pool_rules
    if minor_version(interpreter.version) < rules.min_python:
        need = ".".join(map(str, rules.min_python))
        raise SpecError(f"pool {rules.name!r} needs CPython {need} or newer; the worker's is {interpreter.label}: "
                        f"give INTERPRETER=python{need} (or newer)")
    check_pool_importable(rules.name, interpreter)
    if rules.custom:
        assert rules.celery_class is not None  # a custom pool is the class it names (custom_pool)
        return _ask(interpreter.python, ["workloads.pool_check", "custom", rules.celery_class], f"POOL={rules.name}",
                    timeout_s, also=[os.getcwd()])["pool"]
    if rules.slot == "interpreter":
        module, path = (spec.task.partition(":")[0], spec.task_path) if spec.task else ("workloads.functions", None)
        return _ask(interpreter.python, ["workloads.pool_check", "interpreters", module, *([path] if path else [])],
                    "POOL=interpreters", timeout_s)["pool"]
    return None


def check_pool_importable(name: str, interpreter: Interpreter | None = None, timeout_s: float = 30.0) -> None:
    """A pool's required module (gevent, eventlet) must import where the worker runs, or the run cannot start."""
    module = pool(name).requires_module
    if module is None:
        return
    python = interpreter.python if interpreter else sys.executable
    if interpreter is not None and interpreter.free_threaded and module in NOT_FREE_THREADED:
        others = [p.name for p in POOLS.values() if p.requires_module is None and p.min_python == MIN_PYTHON]
        raise SpecError(f"pool {name!r} cannot run on {interpreter.label}: it needs {module}, which turns the GIL back "
                        f"on (in every pool: Celery imports it wherever it is installed), so the lab does not install "
                        f"it there; choose {', '.join(others[:-1])} or {others[-1]}")
    if interpreter is not None and module in interpreter.missing:
        raise SpecError(f"pool {name!r} cannot run on {interpreter.label} ({interpreter.requested}): {module} could "
                        f"not be installed there ({interpreter.missing[module]})")
    try:
        out = subprocess.run([python, "-W", "ignore", "-c", f"import {module}"],
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SpecError(f"pool {name!r}: importing {module} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        others = [p.name for p in POOLS.values() if p.requires_module is None and p.min_python == MIN_PYTHON]
        raise SpecError(f"pool {name!r} needs the {module} package, which does not import here ({last}); "
                        f"install it (pip install {module}) or choose {', '.join(others[:-1])} or {others[-1]}")


def check_driver(spec: RunSpec, interpreter: Interpreter, timeout_s: float = 30.0) -> None:
    """The db workload's driver (and its patch) imports on the worker's interpreter, or the run is refused in one line
    naming what to install there."""
    if spec.driver is None:
        return
    rules = driver(spec.driver)
    modules = [rules.module, *([rules.patch] if rules.patch else [])]
    # On a free-threaded build, importing a C extension not marked free-threading-safe turns the GIL back on (with a
    # warning): the run would measure a GIL build under a free-threaded name.
    code = f"import {', '.join(modules)}; import sys; print(getattr(sys, '_is_gil_enabled', lambda: True)())"
    try:
        out = subprocess.run([interpreter.python, "-c", code], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SpecError(f"DRIVER={spec.driver}: importing {', '.join(modules)} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise SpecError(f"DRIVER={spec.driver} does not import on the worker's {interpreter.label} ({last}); install "
                        f"it there (pip install {rules.package})")
    if spec.pool_rules.slot == "interpreter":  # the tasks import it in a subinterpreter: a C extension may refuse
        _ask(interpreter.python, ["workloads.pool_check", "interpreters", rules.module], f"DRIVER={spec.driver}",
             timeout_s)
    if interpreter.free_threaded and spec.gil is None and out.stdout.strip().endswith("True"):
        fits = [n for n, d in DRIVERS.items() if d.kind == rules.kind and d.module != rules.module]
        raise SpecError(f"DRIVER={spec.driver} turns the GIL back on in the worker's {interpreter.label} (its C "
                        "extension is not marked free-threading-safe): the run would not measure a free-threaded "
                        "worker; give GIL=on to measure it with the GIL, GIL=off to force it off (at the driver's "
                        f"risk), or another driver ({', '.join(fits)})")


def check_gil_probe() -> None:
    try:
        gilprobe.check_available()
        import gilknocker  # noqa: F401  (the worker-side half of the probe)
    except (gilprobe.ProbeUnavailable, ImportError) as exc:
        raise SpecError(f"the GIL probe is not available here: {exc}") from None


def check_gil_setting(spec: RunSpec, interpreter: Interpreter) -> None:
    if spec.gil is not None and not interpreter.free_threaded:
        raise SpecError(f"GIL={spec.gil} needs a free-threaded build (such as python3.13t); the worker's "
                        f"{interpreter.label} always has the GIL")


def check_own_task(spec: RunSpec, python: str, timeout_s: float = 60.0) -> dict:
    """The user's task imports on the worker's interpreter, is callable and accepts its arguments.

    Checked in a child process of that interpreter, from TASK_PATH: the user's imports may be heavy,
    have side effects, or need the other interpreter's packages. Returns what run.json records.
    """
    # build_spec fills in the others for a TASK (_own_task_rules); this is called only with one.
    assert spec.task is not None and spec.task_path is not None and spec.args is not None and spec.kwargs is not None
    if not os.path.isdir(spec.task_path):
        raise SpecError(f"TASK_PATH {spec.task_path} is not a directory")
    # workloads.own puts TASK_PATH on sys.path
    return _ask(python, ["workloads.own", spec.task, spec.task_path, spec.args, spec.kwargs], f"TASK {spec.task}",
                timeout_s)["task"]


def check_app(spec: RunSpec, python: str, timeout_s: float = 120.0) -> dict:
    """The user's Celery app loads on the worker's interpreter as `celery -A` loads it, in their project folder
    (TASK_PATH), every task named is registered and every call fits its task's signature. Returns what run.json
    records (the app, its tasks' source, the services its settings point at)."""
    assert spec.app is not None and spec.task_path is not None  # build_spec fills in the path for APP
    if not os.path.isdir(spec.task_path):
        raise SpecError(f"TASK_PATH {spec.task_path} is not a directory")
    request = {"app": spec.app, "tasks": spec.app_tasks, "routed": list(spec.routed), "calls": spec.calls,
               "args": spec.task_args, "kwargs": spec.task_kwargs}
    return _ask(python, ["workloads.app_check", json.dumps(request)], f"APP {spec.app}", timeout_s,
                also=[spec.task_path], cwd=spec.task_path)["app"]


def check_routed_pools(spec: RunSpec, interpreter: Interpreter) -> None:
    """Each pool ROUTES names can run here (its module imports), as the run's own pool is checked."""
    from dataclasses import replace

    for name, concurrency in dict.fromkeys(spec.routed.values()):
        check_pool(replace(spec, pool=name, concurrency=concurrency, routes=None), interpreter)


@dataclass(frozen=True)
class Checked:
    """What the checks found: the worker's interpreter, and the user's task where there is one."""

    interpreter: Interpreter
    own_task: dict | None = None
    pool: dict | None = None  # what the check of a custom or interpreters pool found
    app: dict | None = None   # the user's Celery app (APP=): what app_check found


def _driver_packages(spec: RunSpec) -> list[str]:
    """The run's driver and its patch, as the worker environment's on-demand packages name them."""
    if spec.driver is None:
        return []
    rules = driver(spec.driver)
    return [m.split(".")[0] for m in (rules.module, rules.patch) if m]


def check_can_run(spec: RunSpec, log: Callable[[str], None] = print) -> Checked:
    """Everything that can be known before a broker or worker starts."""
    if spec.broker == "rabbitmq":
        rabbitmq.check_available()
    # The user's app runs in their own environment as it is (INTERPRETER=/path/to/project/.venv/bin/python), never
    # in a worker environment of the lab's, which has none of their packages.
    interpreter = (as_is(spec.interpreter) if spec.app and spec.interpreter
                   else worker_interpreter(spec.interpreter, log, also=_driver_packages(spec)))
    check_gil_setting(spec, interpreter)
    own_task = check_own_task(spec, interpreter.python) if spec.task and not spec.app else None
    found = check_pool(spec, interpreter)
    check_driver(spec, interpreter)
    if spec.workload_rules.needs_db:
        postgres.check_available()
    app = None
    if spec.app:
        check_routed_pools(spec, interpreter)
        app = check_app(spec, interpreter.python)
        consent.agree(spec, app, log)
    if spec.gil_probe:
        check_gil_probe()
    return Checked(interpreter, own_task, found, app)


def check_fleet_run(spec: RunSpec, log: Callable[[str], None] = print, fleet: FleetSettings | None = None) -> Checked:
    """HOSTS: what the harness checks itself before a run on several hosts; each agent checks the rest on its host
    (its interpreter, the pool, the user's task, allowed folders) before its workers start (harness.lab.hosted). The
    interpreter here sizes the fixed work, as for a run on this host; the user's app is agreed to here, once. Every
    agent must answer first, before any worker starts anywhere."""
    from harness.lab.fleet import AgentClient, AgentError, fleet_settings

    fleet = fleet or fleet_settings()
    for host in spec.host_names:
        client = AgentClient(host, fleet.broker_url, fleet.secret)
        try:
            client.ask("clock", samples=1)
        except AgentError as exc:
            raise UsageError(str(exc)) from None
        finally:
            client.close()
    interpreter = worker_interpreter(None, log)
    if spec.app:
        consent.agree(spec, {}, log)
    elif spec.task:
        log(f"TASK {spec.task} runs for real on {spec.hosts}, imported there from {spec.task_path} (each agent's "
            "--allow-path must hold it)")
    return Checked(interpreter)
