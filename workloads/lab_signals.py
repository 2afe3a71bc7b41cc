"""The lab's hooks on a worker's Celery signals, shared by the lab's own app (workloads.app) and the user's app
(workloads.app_hooks): the switch interval in every process that runs tasks, the GIL probe, and the line that
tells the harness the worker is consuming."""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from celery import signals

from workloads import gilprobe, loop_lag
from workloads.protocol import WorkerConfig, lag_key, ready_key
from workloads.record import Recorder


def connect(config: WorkerConfig, recorder: Recorder, describe: Callable[[Any], dict] | None = None) -> None:
    """Connect the lab's handlers (strongly: they are closures). `describe(worker)` adds to what the worker
    announces when ready (the user's app: its effective settings)."""
    # The switch interval is per interpreter. Setting it now covers the worker's main process (solo, threads,
    # gevent, eventlet run tasks there); prefork children set it again below, which also covers a `spawn`
    # start method, where nothing set in the parent is inherited.
    sys.setswitchinterval(config.switch_interval)

    def in_child(**_: object) -> None:
        sys.setswitchinterval(config.switch_interval)
        if config.gil_probe:  # in each prefork child, and in solo's main process
            gilprobe.start(config.run_id, recorder.client)

    def in_main(**_: object) -> None:
        rules = recorder.pool
        if config.gil_probe and rules.tasks_in_main_process and rules.gil_probe:
            gilprobe.start(config.run_id, recorder.client)

    def ready(sender: Any = None, **_: object) -> None:
        # Sent once the consumer is consuming: from here on a submitted task is picked up. The node name lets
        # the harness address a remote-control shutdown to this worker alone.
        info: dict[str, Any] = {"pid": os.getpid(), "time": time.time(), "switch_interval": sys.getswitchinterval(),
                                "hostname": getattr(sender, "hostname", None), "worker_index": config.worker_index}
        if recorder.pool.slot == "interpreter":  # what making the subinterpreters cost at start
            from workloads import interpreter_pool

            info["interpreters"] = interpreter_pool.startup
        if describe is not None:
            info.update(describe(sender))
        if recorder.pool.loop is not None:  # the loop now runs (the asyncio pool has started, a green hub is up)
            key = lag_key(config.run_id)
            loop_lag.start(recorder.pool.loop, lambda row: recorder.client().rpush(key, row))
        recorder.client().set(ready_key(config.run_id, config.worker_index), json.dumps(info, default=repr), ex=3600)

    signals.worker_process_init.connect(in_child, weak=False)
    signals.worker_init.connect(in_main, weak=False)
    signals.worker_ready.connect(ready, weak=False)
