"""The event loop's lag, measured in the worker: how late the loop wakes a timer.

A probe asks its loop to wake it every TICK_S and notes how much later than asked it woke. On an idle loop
that is the timer's own granularity (well under a millisecond); a task that computes or blocks without
yielding holds every timer back, and the probe sees it. The same probe runs on the asyncio pool's loop
(asyncio.sleep) and on gevent's and eventlet's hubs (their own sleep), so the three are measured the same way.

Ticks are gathered into windows of about REPORT_S, each pushed to the run's Redis list (workloads.protocol.lag_key)
as [time, pid, ticks, mean lag, max lag, the window's length]. On the asyncio pool the reporter is a thread of its
own, so the loop never waits on Redis for it, and a window in which the blocked loop woke no timer is reported with
no ticks. On gevent and eventlet the reporter is a greenlet (with the worker's sockets patched, its push yields to
the hub), so it too waits out a block, and the window it then reports is as long as the block.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

TICK_S = 0.01
REPORT_S = 0.1
COLUMNS = ("t", "pid", "ticks", "lag_mean_s", "lag_max_s", "window_s")


class LagWindow:
    """The lags of the ticks since the last report (touched by the loop's thread, read by the reporter's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lags: list[float] = []
        self._since = time.monotonic()

    def add(self, lag: float) -> None:
        with self._lock:
            self._lags.append(max(0.0, lag))

    def take(self) -> list[Any]:
        """The window's row since the last: with no ticks (and no lag) when the loop woke no timer in it, blocked all
        along (the tick that ends the block says by how much)."""
        now = time.monotonic()
        with self._lock:
            lags, self._lags = self._lags, []
            window, self._since = now - self._since, now
        if not lags:
            return [time.time(), os.getpid(), 0, None, None, window]
        return [time.time(), os.getpid(), len(lags), sum(lags) / len(lags), max(lags), window]


def _report(window: LagWindow, push: Callable[[str], Any], sleep: Callable[[float], Any]) -> None:
    while True:
        sleep(REPORT_S)
        push(json.dumps(window.take()))


def start(loop_kind: str, push: Callable[[str], Any]) -> LagWindow:
    """Start the probe on this worker's loop: the asyncio pool's ("asyncio") or a green pool's hub; `push` sends a
    window's row (JSON) to the harness."""
    if loop_kind == "asyncio":
        from workloads import asyncio_pool

        assert asyncio_pool.running_loop is not None, "the asyncio pool has not started"
        return start_asyncio(asyncio_pool.running_loop, push)
    return start_green(loop_kind, push)


def start_asyncio(loop: Any, push: Callable[[str], Any]) -> LagWindow:
    """A probe on an asyncio loop (running in another thread), reported from a real thread."""
    import asyncio

    window = LagWindow()

    async def tick() -> None:
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            window.add(loop.time() - asked - TICK_S)

    loop.call_soon_threadsafe(lambda: loop.create_task(tick()))
    threading.Thread(target=_report, args=(window, push, time.sleep), name="lab-loop-lag", daemon=True).start()
    return window


def start_green(hub: str, push: Callable[[str], Any]) -> LagWindow:
    """A probe on gevent's or eventlet's hub: a greenlet that sleeps a tick at a time, and one that reports (with
    the worker's sockets patched, its push yields to the hub too)."""
    window = LagWindow()
    if hub == "gevent":
        import gevent

        sleep, spawn = gevent.sleep, gevent.spawn
    else:
        import eventlet

        sleep, spawn = eventlet.sleep, eventlet.spawn

    def tick() -> None:
        while True:
            asked = time.perf_counter()
            sleep(TICK_S)
            window.add(time.perf_counter() - asked - TICK_S)

    spawn(tick)
    spawn(_report, window, push, sleep)
    return window
