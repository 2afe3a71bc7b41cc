"""The lab's recording inside the user's own Celery app: `celery -A proj worker --include workloads.app_hooks`.

Celery imports an included module after its loader has initialised the worker (a Django project's fix-up has
run django.setup() and found the tasks) and before worker_init, worker_process_init and worker_ready are sent:
these hooks connect in the main process, before prefork forks. The user's tasks run unmodified (their base
class, bind=True, retries); task_prerun and task_postrun time each one in the process, thread or greenlet that
runs it, and push the same record as the lab's own tasks (workloads.record).
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from celery import signals
from kombu.utils.url import maybe_sanitize_url

from workloads import lab_signals
from workloads.protocol import RUN_HEADER, WorkerConfig
from workloads.record import Recorder

config = WorkerConfig.from_env()
recorder = Recorder(config.records_url, config.run_id, config.pool, config.fault, config.worker_index, config.workers,
                    config.host)
# (task id, attempt) -> (the run it belongs to, its start clock), from prerun to postrun. The attempt is part of the
# key: a retry taken at once by another thread may begin before the attempt that sent it has ended.
_begun: dict[tuple[str, int], tuple[str, tuple[float, float]]] = {}
# (task id, attempt) -> how its body ran where the lab ran it (the asyncio pool, or asyncio.run): for its record.
_how: dict[tuple[str, int], dict[str, Any]] = {}
# States after which the same task id comes back (a retry): its record is the attempt that ends it.
NOT_THE_END = ("RETRY",)

# The settings that decide how a pool takes and runs tasks, recorded as the worker has them.
POOL_SETTINGS = ("task_acks_late", "worker_prefetch_multiplier", "worker_disable_prefetch", "task_serializer",
                 "result_serializer", "accept_content", "task_time_limit", "task_soft_time_limit",
                 "worker_max_tasks_per_child", "worker_max_memory_per_child", "task_acks_on_failure_or_timeout",
                 "task_reject_on_worker_lost", "task_track_started", "task_ignore_result", "task_default_queue",
                 "task_routes", "worker_pool_restarts", "worker_pool_start_method", "task_default_rate_limit",
                 "broker_pool_limit", "worker_send_task_events")
TASK_OPTIONS = ("acks_late", "time_limit", "soft_time_limit", "max_retries", "default_retry_delay", "rate_limit",
                "serializer", "ignore_result", "autoretry_for", "retry_backoff", "reject_on_worker_lost", "typing")


def _attempt(task: Any) -> int:
    return int(getattr(task.request, "retries", 0) or 0)


def _run_on_the_pool(task: Any) -> None:
    """Have the worker run a task's body as a pool that awaits needs it (the asyncio pool: a coroutine awaited on its
    loop, a plain function in the loop's executor with the task's request), and a coroutine body elsewhere through
    asyncio.run, a loop per call (what Celery would otherwise return unawaited). Recorded in the task's record."""
    run = task.run
    coroutine = inspect.iscoroutinefunction(run)
    if not coroutine and not recorder.pool.awaits:
        return  # a plain task on a plain pool: as the user wrote it

    def body(*args: Any, **kwargs: Any) -> Any:
        how: dict[str, Any] = {}
        _how[(task.request.id, _attempt(task))] = how  # popped by the call's postrun, which records it
        if not recorder.pool.awaits:
            how["ran"] = "asyncio.run"
            return asyncio.run(run(*args, **kwargs))
        from workloads import asyncio_pool

        if coroutine:
            return asyncio_pool.await_task(run, args, kwargs, how)
        return asyncio_pool.in_executor(_with_request(task, run), args, kwargs, how)

    task.run = body


def _with_request(task: Any, run: Callable[..., Any]) -> Callable[..., Any]:
    """`run` with the task's request pushed in the thread that runs it (Celery's request stack is per thread or
    greenlet: an executor thread has none of its own), so `self.request` works in the body there."""
    request = task.request

    def in_thread(*args: Any, **kwargs: Any) -> Any:
        task.request_stack.push(request)
        try:
            return run(*args, **kwargs)
        finally:
            task.request_stack.pop()

    return in_thread


@signals.worker_init.connect
def _prepare(sender: Any = None, **_: object) -> None:
    """Before any task (and before prefork forks): the measured tasks' bodies, run as their pool needs."""
    app = sender.app
    for name in (config.task.split(",") if config.task else [n for n in app.tasks if not n.startswith("celery.")]):
        task = app.tasks.get(name)
        if task is not None:
            _run_on_the_pool(task)


@signals.task_prerun.connect
def _begin(task_id: str = "", task: Any = None, **_: object) -> None:
    # The run a task belongs to is its message's header (a retry's message keeps it); a task the lab did not send
    # is not recorded.
    run_id = getattr(task.request, RUN_HEADER, None)
    if run_id is not None:
        _begun[(task_id, _attempt(task))] = (run_id, recorder.start())


@signals.task_postrun.connect
def _end(task_id: str = "", task: Any = None, retval: Any = None, state: str | None = None, **_: object) -> None:
    """One record per call: the attempt that ended it, with how many retries came before (`retries`). An attempt
    that asked for a retry is not the end: the call's time is its last attempt's."""
    begun = _begun.pop((task_id, _attempt(task)), None)
    how = _how.pop((task_id, _attempt(task)), None)
    if begun is None or state in NOT_THE_END:
        return
    run_id, clock = begun
    error = None
    if state != "SUCCESS":
        error = f"{type(retval).__name__}: {retval}" if isinstance(retval, BaseException) else f"{state}: {retval}"
    recorder.finish(clock, task_id, task.name, error, run_id, inside=how, fields={"retries": _attempt(task)})


@signals.task_failure.connect
def _failed_outside(task_id: str = "", exception: BaseException | None = None, sender: Any = None,
                    **_: object) -> None:
    """A call that ended without its postrun: a prefork child killed by the hard time limit, or lost. Celery says
    so from the worker's main process, where the task never began: recorded there as failed, so the run ends now
    with the cause instead of waiting for a record that will not come. (A task that raised in this process has
    begun here: its postrun records it.)"""
    if any(key[0] == task_id for key in _begun):
        return
    now = recorder.start()
    name = getattr(sender, "name", "unknown")
    recorder.finish(now, task_id, name, f"{type(exception).__name__}: {exception}", config.run_id,
                    fields={"retries": None, "ended_outside_the_task": True})


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def describe(worker: Any) -> dict[str, Any]:
    """What the user's worker runs with: the settings that matter to pools, as it has them (the worker's own
    prefetch, which a command-line flag may have set), each measured task's options and base class."""
    app = worker.app
    settings = {key: _plain(app.conf.get(key)) for key in POOL_SETTINGS}
    settings["worker_prefetch_multiplier"] = getattr(worker, "prefetch_multiplier",
                                                     settings["worker_prefetch_multiplier"])
    settings["broker_url"] = maybe_sanitize_url(app.conf.broker_url or "")
    settings["result_backend"] = maybe_sanitize_url(str(app.conf.result_backend or "")) or None
    names = [n for n in app.tasks if not n.startswith("celery.")]
    measured = config.task.split(",") if config.task else names
    tasks = {}
    for name in measured:
        task = app.tasks.get(name)
        if task is None:
            continue
        options = {key: _plain(getattr(task, key, None)) for key in TASK_OPTIONS}
        options["base"] = _plain(type(task).__mro__[1])
        # Celery keeps an unbound task's function as a staticmethod on its class (bind=True: a plain function).
        options["bind"] = not isinstance(vars(type(task)).get("run"), staticmethod)
        tasks[name] = options
    return {"app": {"main": app.main, "settings": settings, "tasks": tasks, "registered": sorted(names)}}


lab_signals.connect(config, recorder, describe)
