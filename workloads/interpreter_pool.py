"""The interpreters pool: a Celery pool whose slots run task functions in subinterpreters, each with its own GIL.

Celery runs it as a custom pool (`-P custom`, CELERY_CUSTOM_WORKER_POOL=workloads.interpreter_pool:TaskPool;
harness.model.pools). It is Celery's thread pool, N threads taking tasks, with one change: the task's
function does not run in the Celery thread but in one of N subinterpreters of an
InterpreterPoolExecutor (PEP 734: the standard library from 3.14, the interpreters-pep-734 backport
on 3.13), while the Celery thread waits with the main GIL released. Celery's own work for a task
(decoding the message, acks, the lab's record) stays in the main interpreter: it cannot run in a
subinterpreter (kombu, redis and psutil are not isolated-interpreter safe), and it is small.

What crosses between interpreters is pickled, both ways: the task's arguments (JSON values here) and
the small dict `workloads.in_interpreter.call` returns.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import Future
from typing import Any

from celery.concurrency.thread import TaskPool as ThreadTaskPool

# The version check (which a type checker understands) first: the standard library has it from 3.14 only.
if sys.version_info >= (3, 14):
    try:  # Python 3.14+
        from concurrent.futures import InterpreterPoolExecutor
    except ImportError:  # a build without subinterpreters: the backport, as on 3.13
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
else:  # 3.13: the backport (installed in the lab's environments where it runs)
    from interpreters_backport.concurrent.futures import InterpreterPoolExecutor

from workloads.protocol import WorkerConfig

# The one executor of this worker process, made when the pool starts; tasks reach it through `run`.
_executor: InterpreterPoolExecutor | None = None
# How long the pool took to make its subinterpreters and import the task's module in each (the
# worker's start-up cost of this pool), for the ready announcement.
startup: dict[str, Any] = {}


class SubinterpreterError(Exception):
    """A task's function failed inside its subinterpreter; the message is its own error."""


# What a subinterpreter evaluates: `eval` of a fixed expression, not `in_interpreter.call` itself. The
# executor pickles what it is given and unpickles it in the subinterpreter outside its error capture,
# so a function whose module fails to import there (or one defined in __main__) makes it wait for
# ever. builtins.eval always unpickles; an import that fails inside it comes back as an error.
CALL = "__import__('workloads.in_interpreter', fromlist=['call']).call(m, q, p, a, k)"
# Pool start: import the task's module, then hold the subinterpreter a moment, so that every warm-up
# finds the others busy and the executor starts a thread (and a subinterpreter) for each.
WARM_UP = "(__import__('workloads.in_interpreter', fromlist=['find']).find(m, None, p), __import__('time').sleep(h))"
WARM_UP_HOLD_S = 0.05


def _submit(expression: str, **namespace: Any) -> Future:
    assert _executor is not None, "the interpreters pool has not started"
    return _executor.submit(eval, expression, namespace)


def run(module: str, qualname: str, path: str | None, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Run one task's function in a free subinterpreter; what `in_interpreter.call` measured there."""
    if module == "__main__":  # not importable in a subinterpreter (the backport spun for 10 minutes on it)
        raise SubinterpreterError(f"{qualname} is defined in __main__, which a subinterpreter cannot import")
    try:
        return _submit(CALL, m=module, q=qualname, p=path, a=list(args), k=dict(kwargs or {})).result()
    except RuntimeError as exc:  # in_interpreter.call's plain error, or the executor's own
        raise SubinterpreterError(str(exc)) from None


def start(slots: int, module: str, path: str | None, timeout_s: float = 120.0) -> dict[str, Any]:
    """Make the subinterpreters now and import the task's module in each, as prefork's children have theirs
    imported before the first task; returns what it cost. Raises the import's error, as SubinterpreterError."""
    global _executor
    t0 = time.perf_counter()
    _executor = InterpreterPoolExecutor(max_workers=slots, thread_name_prefix="lab-interp")
    # A submit while every thread is busy starts one more: the warm-ups hold theirs a moment.
    warm_ups = [_submit(WARM_UP, m=module, p=path, h=WARM_UP_HOLD_S if slots > 1 else 0) for _ in range(slots)]
    try:
        for future in warm_ups:
            future.result(timeout=timeout_s)
    except TimeoutError:
        raise
    except Exception as exc:  # the import's own error, pickled back from the subinterpreter
        raise SubinterpreterError(f"{type(exc).__name__}: {exc}") from None
    return {"interpreters": len(_executor._threads), "startup_s": time.perf_counter() - t0, "imported": module}


def stop(wait: bool = True) -> None:
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=wait, cancel_futures=True)
        _executor = None


def task_module() -> tuple[str, str | None]:
    """The module a run's tasks come from, and where it is imported from: the user's task, or the lab's."""
    config = WorkerConfig.from_env()
    return (config.task.partition(":")[0], config.task_path) if config.task else ("workloads.functions", None)


class TaskPool(ThreadTaskPool):
    """Celery's thread pool, each task's function run in a subinterpreter of its own (one per slot)."""

    def on_start(self) -> None:
        super().on_start()
        startup.update(start(self.limit, *task_module()))

    def on_stop(self) -> None:
        super().on_stop()
        stop()

    def _get_info(self) -> dict:
        info = super()._get_info()
        info.update(interpreters=startup.get("interpreters"))
        return info
