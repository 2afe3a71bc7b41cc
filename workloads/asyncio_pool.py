"""The asyncio pool: a Celery pool whose tasks are coroutines in flight on one event loop per worker process.

Celery runs it as a custom pool (`-P custom`, CELERY_CUSTOM_WORKER_POOL=workloads.asyncio_pool:TaskPool;
harness.model.pools). Its concurrency is tasks in flight, bounded by a semaphore on the loop.

Celery's tracer (the code that runs a task, sends its signals, stores its result and acknowledges its
message through the pool's callback) is synchronous. The add-ons monkeypatch `build_tracer()` to make it
async. This pool leaves Celery unpatched instead: each task's tracer runs in a greenlet on the loop's
thread, and when the task's body reaches its coroutine (`await_task`), the greenlet hands the coroutine to
the loop, which awaits it as an asyncio task, and the greenlet resumes with its result. So the message is
acknowledged (late acks) after the coroutine ends, by Celery's own code, and a thousand tasks in flight
are a thousand asyncio tasks plus a thousand small greenlet stacks, not a thousand threads.
(SQLAlchemy's asyncio layer bridges sync code to a loop the same way.)

A plain `def` task on this pool runs in the loop's default executor, as `loop.run_in_executor` does in an asyncio
application, and its record says so. The pool sizes that executor itself, as Python's default does on the cores this
worker may use (harness.model.pools.executor_threads), so the lab's ideal and the executor agree.

Each coroutine is driven step by step (`Stepped`): the thread CPU of each step is the task's own CPU, and
its longest step is how long it held the loop without awaiting: a blocking call in a coroutine shows there,
and as the loop's lag (workloads.loop_lag).
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from celery.concurrency.base import BasePool, apply_target
from greenlet import getcurrent, greenlet

# The loop of this worker's pool once it has started (the loop-lag probe runs on it: workloads.loop_lag).
running_loop: asyncio.AbstractEventLoop | None = None
# What to do on the loop once it runs, before the worker takes tasks (the async drivers' connections per slot), and
# once its tasks have ended, before it closes (closing them).
at_start: list[Callable[[], Awaitable[Any]]] = []
at_stop: list[Callable[[], Awaitable[Any]]] = []
# How long the pool waits for what it does at its start: within the harness's wait for a worker to be ready (60 s).
START_WAIT_S = 45.0
# How long a stopping pool waits for the tasks in flight, then for the cancelled ones and its closing: within the
# harness's grace for a warm shutdown (harness.lab.worker, 15 s) before it kills the worker.
STOP_WAIT_S = 8.0
CLOSE_WAIT_S = 4.0


class _Bridge(greenlet):
    """The greenlet that runs one task's synchronous tracer on the loop's thread, in slot `slot` (1..concurrency)."""

    slot: int = 0


def _bridge() -> _Bridge:
    current = getcurrent()
    if not isinstance(current, _Bridge):
        raise RuntimeError("a coroutine task can be awaited only on the asyncio pool's event loop")
    return current


def _await(awaitable: Awaitable[Any]) -> Any:
    """From a task's tracer (a _Bridge): have the loop await `awaitable`, and return its result."""
    parent = _bridge().parent
    assert parent is not None  # a _Bridge is always started from the loop's task (_bridged)
    return parent.switch(awaitable)


async def _bridged(slot: int, function: Callable[..., Any], *args: Any) -> Any:
    """Run `function` (sync) in a greenlet of its own; each awaitable it hands over (_await) is awaited here."""
    child = _Bridge(function)
    child.slot = slot
    handed = child.switch(*args)
    while not child.dead:
        try:
            value = await handed
        except BaseException as exc:  # the coroutine's error (or a cancellation) is raised where it was awaited
            handed = child.throw(exc)
        else:
            handed = child.switch(value)
    return handed


class Stepped:
    """Awaits a coroutine one step at a time (each `send` up to its next wait), adding up the thread CPU of its
    steps: its own CPU on a thread that runs many coroutines. `longest_step_s` is the longest wall time one step
    took: how long the task held the loop, every other task waiting."""

    def __init__(self, coroutine: Any) -> None:
        self.coroutine = coroutine
        self.cpu_s = 0.0
        self.longest_step_s = 0.0
        self.steps = 0

    def _step(self, send: Any, throw: BaseException | None) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self.coroutine.throw(throw) if throw is not None else self.coroutine.send(send)
        finally:
            self.cpu_s += time.thread_time() - cpu
            self.longest_step_s = max(self.longest_step_s, time.perf_counter() - wall)
            self.steps += 1

    def __await__(self) -> Generator[Any, Any, Any]:
        send: Any = None
        throw: BaseException | None = None
        while True:
            try:
                waiting_on = self._step(send, throw)
            except StopIteration as done:
                return done.value
            try:
                send, throw = (yield waiting_on), None
            except GeneratorExit:
                self.coroutine.close()
                raise
            except BaseException as exc:  # thrown in by the task driving us (a cancellation): passed on
                send, throw = None, exc


def await_task(function: Callable[..., Any], args: tuple, kwargs: dict, into: dict[str, Any]) -> Any:
    """Run a coroutine function's task on the loop (from its tracer) and return its result; how it ran goes `into`
    the caller's dict, also when it raised (a coroutine that held the loop and then failed is still named)."""
    bridge = _bridge()  # before the coroutine is made: off the loop, none is left never awaited
    into.update(ran="awaited", coroutine=bridge.slot, thread_id=threading.get_native_id())
    stepped = Stepped(function(*args, **kwargs))
    try:
        into["result"] = _await(stepped)
        return into["result"]
    finally:
        into.update(cpu_s=stepped.cpu_s, loop_block_s=stepped.longest_step_s)


def in_executor(function: Callable[..., Any], args: tuple, kwargs: dict, into: dict[str, Any]) -> Any:
    """Run a plain function's task in the loop's default executor (from its tracer), as an asyncio app would, and
    return its result; when and where it ran go `into` the caller's dict, also when it raised."""
    bridge = _bridge()
    into.update(ran="executor", coroutine=bridge.slot)

    def call() -> Any:  # its start is when a thread of the executor took it: the wait before is queueing
        into.update(started=time.time(), thread_id=threading.get_native_id())
        cpu = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            into.update(cpu_s=time.thread_time() - cpu, finished=time.time())

    into["result"] = _await(asyncio.get_running_loop().run_in_executor(None, call))
    return into["result"]


class TaskPool(BasePool):
    """Tasks in flight on one event loop, run in a thread of the worker's own; at most `limit` at once."""

    body_can_be_buffer = True
    signal_safe = False
    task_join_will_block = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="lab-asyncio-loop", daemon=True)
        self._free_slots: list[int] = []
        self._semaphore: asyncio.Semaphore | None = None
        self._in_flight: set[asyncio.Task] = set()
        self._stopping = False

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def on_start(self) -> None:
        global running_loop
        from harness.model.machine import usable_cores
        from harness.model.pools import executor_threads

        self._free_slots = list(range(self.limit, 0, -1))
        self.loop.set_default_executor(ThreadPoolExecutor(executor_threads(usable_cores()),
                                                          thread_name_prefix="lab-asyncio-executor"))
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._make_semaphore(), self.loop).result(timeout=10)
        for starting in at_start:
            asyncio.run_coroutine_threadsafe(starting(), self.loop).result(timeout=START_WAIT_S)  # type: ignore[arg-type]
        running_loop = self.loop

    async def _make_semaphore(self) -> None:  # made on the loop it belongs to
        self._semaphore = asyncio.Semaphore(self.limit)

    def on_apply(self, target: Callable[..., Any], args: tuple | None = None, kwargs: dict | None = None,
                 callback: Callable[..., Any] | None = None, accept_callback: Callable[..., Any] | None = None,
                 **_: Any) -> Future:
        """Called on the consumer's thread: the task is started on the loop's."""
        return asyncio.run_coroutine_threadsafe(
            self._run(target, args or (), kwargs or {}, callback, accept_callback), self.loop)

    async def _run(self, target: Callable[..., Any], args: tuple, kwargs: dict, callback: Callable[..., Any] | None,
                   accept_callback: Callable[..., Any] | None) -> None:
        assert self._semaphore is not None
        async with self._semaphore:
            if self._stopping:  # reserved, not begun, and the worker stops: left unacked, so it is delivered again
                return
            slot = self._free_slots.pop()
            task = asyncio.current_task()
            assert task is not None
            self._in_flight.add(task)
            try:
                await _bridged(slot, apply_target, target, args, kwargs, callback, accept_callback)
            finally:
                self._in_flight.discard(task)
                self._free_slots.append(slot)

    def on_stop(self) -> None:
        """A warm shutdown: no reserved task begins; those in flight end (up to STOP_WAIT_S); then everything still on
        the loop (the lag probe, a task past its time) is cancelled and awaited, what was opened at the start is closed,
        and the loop with its executor is shut down and closed."""
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result(
                    timeout=STOP_WAIT_S + 2 * CLOSE_WAIT_S + 2)
            except Exception:  # a loop that does not answer: the worker is stopping anyway
                pass
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout=CLOSE_WAIT_S)
            if not self._thread.is_alive():
                self.loop.close()
        super().on_stop()

    async def _drain(self) -> None:
        self._stopping = True
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=STOP_WAIT_S)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=CLOSE_WAIT_S)
        for stopping in at_stop:
            with suppress(Exception):
                await asyncio.wait_for(stopping(), timeout=CLOSE_WAIT_S)
        with suppress(Exception):
            await asyncio.wait_for(self.loop.shutdown_asyncgens(), timeout=CLOSE_WAIT_S)
        with suppress(Exception):
            await asyncio.wait_for(self.loop.shutdown_default_executor(), timeout=CLOSE_WAIT_S)

    def on_terminate(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)

    def _get_info(self) -> dict:
        info = super()._get_info()
        info.update({"max-concurrency": self.limit, "in-flight": len(self._in_flight)})
        return info

    @property
    def num_processes(self) -> int:
        return self.limit
