"""The Celery app a lab worker loads: `celery -A workloads.app worker -P <pool> ...`.

Everything run-specific comes from LAB_* environment variables that the harness sets when it
starts the worker, so the app is the same module for every run and every pool.
"""
from __future__ import annotations

import json
import os
import sys
import time

from celery import Celery, signals

from workloads import functions, gilprobe
from workloads.record import Recorder, ready_key

BROKER_URL = os.environ.get("LAB_BROKER_URL", "redis://127.0.0.1:6379/0")
RUN_ID = os.environ.get("LAB_RUN_ID", "adhoc")
POOL = os.environ.get("LAB_POOL", "prefork")
QUEUE = os.environ.get("LAB_QUEUE", "lab.adhoc")
SWITCH_INTERVAL = float(os.environ.get("LAB_SWITCH_INTERVAL", "0.005"))
PREFETCH_MULTIPLIER = int(os.environ.get("LAB_PREFETCH_MULTIPLIER", "1"))
CONCURRENCY = int(os.environ.get("LAB_CONCURRENCY", "1"))

app = Celery("gil_lab", broker=BROKER_URL)
app.conf.update(
    # JSON only: a worker that accepts pickle runs whatever anyone with broker access sends it.
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    # Records travel on their own Redis list, so the result backend is not needed.
    task_ignore_result=True,
    # Acknowledge after the task, so one reserved task per slot is all that prefetch takes.
    task_acks_late=True,
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    # kombu's Redis transport blocks in BRPOP for this long when the queue is empty, and a warm
    # shutdown waits for that call to return: 1 s by default, 0.2 s here. An arriving task still
    # ends the BRPOP at once, so dispatch is unchanged; the cost is 5 idle BRPOPs a second.
    broker_transport_options={
        "polling_interval": 0.2,
        # Every task acks through the transport's connection pool, 10 connections by default: 1,000
        # greenlets acking at once hit MaxConnectionsError and their tasks were lost. One per slot.
        "max_connections": max(10, 2 * CONCURRENCY + 10),
    },
)

# The switch interval is per interpreter. Setting it at import covers the worker's main process
# (solo, threads, gevent, eventlet run tasks there); prefork children set it again below, which
# also covers a `spawn` start method, where nothing set in the parent is inherited.
sys.setswitchinterval(SWITCH_INTERVAL)
recorder = Recorder(BROKER_URL, RUN_ID, POOL)

GIL_PROBE = os.environ.get("LAB_GIL_PROBE") == "1"


@signals.worker_process_init.connect
def _set_switch_interval_in_child(**_: object) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    if GIL_PROBE:  # in each prefork child, and in solo's main process
        gilprobe.start(RUN_ID, recorder.client)


@signals.worker_init.connect
def _start_gil_probe_in_main(**_: object) -> None:
    if GIL_PROBE and POOL in ("threads", "solo"):  # these run tasks in the main process
        gilprobe.start(RUN_ID, recorder.client)


@signals.worker_ready.connect
def _announce_ready(sender: object = None, **_: object) -> None:
    # Sent once the consumer is consuming: from here on a submitted task is picked up. The node
    # name lets the harness address a remote-control shutdown to this worker alone.
    info = {"pid": os.getpid(), "time": time.time(), "switch_interval": sys.getswitchinterval(),
            "hostname": getattr(sender, "hostname", None)}
    recorder.client().set(ready_key(RUN_ID), json.dumps(info), ex=3600)


@app.task(name="busy_wait", bind=True)
def busy_wait(self, duration: float) -> None:
    recorder.run(self.request.id, "busy_wait", functions.busy_wait, duration)


@app.task(name="cpu", bind=True)
def cpu(self, iterations: int) -> None:
    recorder.run(self.request.id, "cpu", functions.cpu, iterations)


@app.task(name="io_sleep", bind=True)
def io_sleep(self, duration: float) -> None:
    recorder.run(self.request.id, "io_sleep", functions.io_sleep, duration)


@app.task(name="io_net", bind=True)
def io_net(self, duration: float, host: str, port: int) -> None:
    recorder.run(self.request.id, "io_net", functions.io_net, duration, host, port)


@app.task(name="gil_release", bind=True)
def gil_release(self, rounds: int) -> None:
    recorder.run(self.request.id, "gil_release", functions.gil_release, rounds)


@app.task(name="noop", bind=True)
def noop(self, record: bool) -> None:
    """For benchmarks/instrumentation.py: an empty task, with the lab's full recording or with only
    a counter (the least any measurement needs to know a task ran), on the same worker."""
    if record:
        recorder.run(self.request.id, "noop", functions.noop)
    else:
        recorder.client().incr(f"lab:{RUN_ID}:done")
