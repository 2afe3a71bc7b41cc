"""The Celery app a lab worker loads: `celery -A workloads.app worker -P <pool> ...`.

Everything run-specific comes from the LAB_* environment the harness starts the worker with
(workloads.protocol), so the app is the same module for every run and every pool. Its tasks are
the workloads of harness.model.workloads, one per record, named after it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from harness.model.brokers import broker
from harness.model.drivers import driver
from harness.model.machine import usable_cores
from harness.model.pools import executor_threads
from harness.model.workloads import WORKLOADS, Workload
from workloads import functions, lab_signals, own
from workloads.protocol import RUN_HEADER, WorkerConfig, done_key
from workloads.record import Recorder

config = WorkerConfig.from_env()
app = Celery("gil_lab", broker=config.broker_url)
app.conf.update(
    # JSON only: a worker that accepts pickle runs whatever anyone with broker access sends it.
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    # Records travel on their own Redis list, so the result backend is not needed.
    task_ignore_result=True,
    # Acknowledge after the task, so one reserved task per slot is all that prefetch takes.
    task_acks_late=True,
    worker_prefetch_multiplier=config.prefetch if config.prefetch is not None else 1,
    task_default_queue=config.queue,
    broker_connection_retry_on_startup=True,
    # AMQP (BROKER=rabbitmq) also takes heartbeats; the worker runs --without-heartbeat (no worker events), and
    # Celery's own connection heartbeat stays at its default (broker_heartbeat, 120 s), recorded in run.json.
    # Task events only when asked (EVENTS=1, for Flower): they add broker traffic to every task.
    worker_send_task_events=config.events,
    worker_hijack_root_logger=False,
    # kombu's Redis transport blocks in BRPOP for this long when the queue is empty, and a warm
    # shutdown waits for that call to return: 1 s by default, 0.2 s here. An arriving task still
    # ends the BRPOP at once, so dispatch is unchanged; the cost is 5 idle BRPOPs a second.
    broker_transport_options={
        "polling_interval": 0.2,
        # Every task acks through the transport's connection pool, 10 connections by default: 1,000
        # greenlets acking at once hit MaxConnectionsError and their tasks were lost. One per slot.
        "max_connections": max(10, 2 * config.concurrency + 10),
    } if broker(config.broker).redis_transport else {},
)

recorder = Recorder(config.records_url, config.run_id, config.pool, config.fault, config.worker_index, config.workers,
                    config.host)
lab_signals.connect(config, recorder)
if config.driver:
    # The db or http workload's client is imported here, at the worker's start (before prefork forks): imported by the
    # first task instead, its import (0.1-0.3 s of CPU for httpx) blocked every greenlet of a green pool inside the
    # measured batch, and httpx on gevent fell below 0.7 x its slots in one run of four.
    importlib.import_module(driver(config.driver).module)
    _driver_kind = driver(config.driver).kind

    def _open_slots(**_: object) -> None:
        """Each process that runs tasks opens its slots' connections before any task (a prefork child its one; the
        asyncio pool, for a sync driver, one per thread of its loop's executor, where those tasks run)."""
        slots = (1 if recorder.pool.slot == "process" else
                 min(config.concurrency, executor_threads(usable_cores())) if recorder.pool.awaits else
                 config.concurrency)
        functions.open_slots(_driver_kind, slots)

    # Before the worker says it is ready (lab_signals' worker_ready): the harness's reference task finds them open.
    # A prefork child opens its own after the fork (a connection shared across a fork breaks both).
    if recorder.pool.awaits and driver(config.driver).coroutine:  # async connections, opened on the pool's loop
        from workloads import asyncio_pool

        asyncio_pool.at_start.append(lambda: functions.open_slots_async(_driver_kind, config.concurrency))
        asyncio_pool.at_stop.append(lambda: functions.close_slots_async(_driver_kind))
    elif recorder.pool.slot == "process":
        signals.worker_process_init.connect(_open_slots, weak=False)
    elif recorder.pool.slot != "interpreter":  # a subinterpreter has its own module state: its tasks open their own
        signals.worker_init.connect(_open_slots, weak=False)


def _register(workload: Workload, function: Callable[..., Any], reference: str | None = None,
              path: str | None = None) -> None:
    """One Celery task per workload: the workload's function, run inside the lab's recording. `reference`
    and `path` find it again in a subinterpreter (the interpreters pool): the user's own task's."""
    def task(self, *args, **kwargs):
        recorder.run(self.request.id, workload.name, function, args, kwargs, merge_result=workload.reports_fields,
                     run_id=getattr(self.request, RUN_HEADER, None), reference=reference, path=path)

    task.__name__ = task.__qualname__ = workload.name
    app.task(name=workload.name, bind=True)(task)


for _workload in WORKLOADS.values():
    _function = _workload.runs(recorder.pool.awaits, config.driver)  # a coroutine twin on the asyncio pool
    if _function is not None:
        _register(_workload, _function)
if config.task:
    # The user's own task, imported once here (before prefork forks its children). Their module may
    # make a Celery app of its own, which would become the current app: this one is made current again.
    _register(WORKLOADS["task"], own.load(config.task, config.task_path), config.task, config.task_path)
    app.set_current()


@app.task(name="noop", bind=True)
def noop(self, record: bool) -> None:
    """For benchmarks/instrumentation.py, not a workload: an empty task, with the lab's full recording
    or with only a counter (the least any measurement needs to know a task ran), on the same worker."""
    if record:
        recorder.run(self.request.id, "noop", functions.noop)
    else:
        recorder.client().incr(done_key(config.run_id))
