"""Worker-side instrumentation: time and CPU of one task, sent back to the harness.

Runs inside the worker, around the workload function, so it must stay cheap and must not hold
the GIL while the task is running: it reads clocks before and after, nothing in between.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis

from harness.model.pools import pool
from workloads.protocol import TaskRecord, records_key


class GreenletClock:
    """Own CPU time per greenlet, by accounting every greenlet switch.

    In gevent and eventlet all tasks share one OS thread, so `time.thread_time()` around a task
    counts every other greenlet that ran meanwhile (field notes: 100 sleeping tasks "used"
    10 s of CPU in a 0.8 s run). greenlet calls a trace function on each switch; charging the
    thread CPU since the previous switch to the greenlet being left gives each greenlet its own.
    """

    def __init__(self) -> None:
        import greenlet

        self._greenlet = greenlet
        self._spent: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._ids: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._last = time.thread_time()
        self._previous = greenlet.settrace(self._trace)

    def _trace(self, event: str, args: tuple) -> None:
        if event in ("switch", "throw"):
            origin = args[0]
            now = time.thread_time()
            self._spent[origin] = self._spent.get(origin, 0.0) + (now - self._last)
            self._last = now
        if self._previous is not None:
            self._previous(event, args)

    def own_cpu(self) -> float:
        """CPU seconds the current greenlet has used so far."""
        current = self._greenlet.getcurrent()
        return self._spent.get(current, 0.0) + (time.thread_time() - self._last)

    def ident(self) -> int:
        """A small number naming the current greenlet, stable for its life."""
        current = self._greenlet.getcurrent()
        if current not in self._ids:
            self._ids[current] = len(self._ids) + 1
        return self._ids[current]


class Recorder:
    """Runs a workload function and pushes one JSON record per task to the run's Redis list."""

    def __init__(self, broker_url: str, run_id: str, pool_name: str, fault: str = "", worker_index: int = 1,
                 workers: int = 1, host: str | None = None) -> None:
        self.broker_url = broker_url
        self.run_id = run_id
        self.pool = pool(pool_name)
        self.fault = fault
        self.worker_index = worker_index
        # With several workers a slot's name says whose it is ("worker 2: thread 4711"), on several hosts where too
        # ("b worker 3: thread 4711"): the figures' lanes per host and worker.
        self.slot_prefix = (f"{host} worker {worker_index}: " if host else
                            f"worker {worker_index}: " if workers > 1 else "")
        self.worker_pid = os.getpid()  # made at import, in the worker's main process (prefork forks later)
        self._client: redis.Redis | None = None
        self._client_pid: int | None = None
        self._green_clock: GreenletClock | None = None
        self._lock = threading.Lock()

    def client(self) -> redis.Redis:
        # One client per process: a prefork child must not reuse its parent's sockets.
        if self._client is None or self._client_pid != os.getpid():
            # A blocking pool: a thousand greenlets finishing at once wait their turn for one of
            # a few connections instead of failing with MaxConnectionsError (and losing records).
            pool = redis.BlockingConnectionPool.from_url(self.broker_url, max_connections=32, timeout=60,
                                                         socket_timeout=30)
            self._client = redis.Redis(connection_pool=pool)
            self._client_pid = os.getpid()
        return self._client

    def _green(self) -> GreenletClock:
        # Installed lazily, from a task: the trace function belongs to the thread that runs the
        # greenlets, which is only certain once we are inside one of them.
        with self._lock:
            if self._green_clock is None:
                self._green_clock = GreenletClock()
        return self._green_clock

    def run(self, task_id: str, name: str, fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None,
            merge_result: bool = False, run_id: str | None = None, reference: str | None = None,
            path: str | None = None) -> Any:
        """Run `fn` and push its record to its run's list (`run_id`, from the task's message; else the
        worker's own); `merge_result`: the dict `fn` returns adds fields to the record. In the
        interpreters pool `fn` runs in a subinterpreter, found there by `reference` (module:name) and `path`."""
        clock = self.start()
        error = None
        result = None
        inside: dict[str, Any] = {}  # what was measured where the function ran: a subinterpreter, the asyncio loop
        try:
            if self.pool.slot == "interpreter":
                from workloads import interpreter_pool

                module, _, qualname = (reference or f"{fn.__module__}:{fn.__qualname__}").partition(":")
                inside = interpreter_pool.run(module, qualname, path, args, kwargs or {})
                result = inside["result"]
            elif self.pool.awaits:  # the asyncio pool: a coroutine awaited on its loop, a function in its executor
                from workloads import asyncio_pool

                run_on_loop = asyncio_pool.await_task if inspect.iscoroutinefunction(fn) else asyncio_pool.in_executor
                result = run_on_loop(fn, args, kwargs or {}, inside)  # how it ran goes into `inside`, also on error
            elif inspect.iscoroutinefunction(fn):  # a pool that cannot await: a loop of its own per call, marked
                inside = {"ran": "asyncio.run"}
                result = asyncio.run(fn(*args, **(kwargs or {})))
            else:
                result = fn(*args, **(kwargs or {}))
            if self.fault == "raise":
                raise RuntimeError("fault injected by LAB_FAULT=raise")
        except BaseException as exc:  # recorded, then re-raised for Celery to see
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            fields = result if merge_result and isinstance(result, dict) else None
            self.finish(clock, task_id, name, error, run_id, inside, fields)
        return result

    def start(self) -> tuple[float, float]:
        """The wall clock and this task's own CPU clock at its start (`finish` takes them back)."""
        green = self._green() if self.pool.green else None
        return time.time(), (green.own_cpu if green else time.thread_time)()

    def finish(self, clock: tuple[float, float], task_id: str, name: str, error: str | None, run_id: str | None,
               inside: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> None:
        """Push the record of a task begun at `clock` (start()), in the thread or greenlet that ran it."""
        green = self._green_clock if self.pool.green else None
        cpu1 = (green.own_cpu if green else time.thread_time)()
        finished = time.time()
        started, cpu0 = clock
        inside = inside or {}
        if inside.get("ran") == "executor" and "started" in inside:  # while an executor thread had it, not from
            started, finished = inside["started"], inside.get("finished", finished)  # hand-over to hand-back
        pid, thread_id, greenlet_id = os.getpid(), threading.get_native_id(), green.ident() if green else None
        # In a subinterpreter the work ran on the executor's thread: its CPU there, and this thread's
        # own (handing the task over, pickling) both count; the slot is the subinterpreter.
        thread_id = inside.get("thread_id", thread_id)
        # On the asyncio pool this thread ran every task in flight meanwhile: only the task's own steps count (and
        # its executor thread's CPU, for a plain function), not the thread's CPU around it.
        own = 0.0 if self.pool.awaits else cpu1 - cpu0
        cpu_s = own + inside.get("cpu_s", 0.0)
        gil_enabled = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else None
        slot = self.pool.slot_name(pid, thread_id, greenlet_id, inside.get("interpreter_id"), self.worker_pid,
                                   inside.get("coroutine"))
        # vars(), not dataclasses.asdict: asdict deep-copies every field, a cost paid on every task.
        record = dict(vars(TaskRecord(
            task_id=task_id, name=name, started=started, finished=finished, pid=pid, thread_id=thread_id,
            greenlet_id=greenlet_id, cpu_s=cpu_s, switch_interval=sys.getswitchinterval(),
            gil_enabled=gil_enabled, error=error, slot=self.slot_prefix + slot, worker=self.worker_index)))
        # How a coroutine function's task ran (awaited on the loop, in its executor, or through asyncio.run), and the
        # longest the task held the loop without awaiting: columns of their own, only where they apply.
        how = {k: inside[k] for k in ("ran", "loop_block_s") if k in inside}
        for extra in (fields, how):
            if extra:
                record.update({k: v for k, v in extra.items() if k not in record})
        self.client().rpush(records_key(run_id or self.run_id), json.dumps(record))
