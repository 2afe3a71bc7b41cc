"""Warm workers: one worker kept between the runs of a sweep that share its settings.

Starting a worker and stopping it warmly cost 0.9-2.2 s per run (BENCHMARKS.md), more than many
runs measure. Runs that agree on everything the worker is started with (pool, concurrency, switch
interval, prefetch, interpreter, GIL setting, own task: workloads.protocol.worker_key) share one,
for the pools that stay warm (Pool.stays_warm: not the green pools):
each run still has its own queue (the worker is told to consume it, then to stop), its own records
list (tasks carry their run in a header), its own samplers and folder. A worker is never shared
by runs with the GIL probe (its contention reports name one run), and one that failed a run is
stopped, so the next run starts on a fresh one. Before a run's tasks are sent, the worker is told
to consume its queue and has run one empty task from it (Worker.consume), so the run starts on a
worker that is polling its queue, as a fresh worker is.
"""
from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

from harness.lab.collect import forget_worker_keys
from harness.lab.echo import EchoServer
from harness.lab.worker import Worker
from harness.model.spec import RunSpec
from workloads.protocol import worker_key


class WarmWorkers:
    """Hands out a warm worker for a run's settings; at most one is alive, the last one asked for."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._worker: Worker | None = None
        self._runs = 0
        self._echo: EchoServer | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="gil-lab-warm-"))
        self.started = 0

    @staticmethod
    def shareable(spec: RunSpec) -> bool:
        return spec.pool_rules.stays_warm and not spec.gil_probe and spec.workers == 1

    def echo(self) -> EchoServer:
        """One echo service for every run the warm workers serve: a worker is told its address once."""
        if self._echo is None:
            self._echo = EchoServer().__enter__()
        return self._echo

    def worker_for(self, spec: RunSpec, broker_url: str, python: str) -> tuple[Worker, int]:
        """A ready worker for these settings, and how many runs it served before this one."""
        key = (broker_url, *worker_key(spec.to_dict(), python))
        if self._worker is not None and (key != self._key or not self._worker.alive()):
            self.discard()
        if self._worker is None:
            echo = self.echo()
            worker = Worker(spec, broker_url, f"warm-{spec.pool}-{secrets.token_hex(3)}",
                            self._dir / f"worker-{self.started}.log", python=python, echo=(echo.host, echo.port))
            self._worker = worker.__enter__()
            self._key, self._runs = key, 0
            self.started += 1
        else:
            self._runs += 1
        return self._worker, self._runs

    def discard(self, failed: bool = False) -> None:
        """Stop the current worker: before a run with other settings, or (`failed`, stopped cold) after a
        failed or interrupted run."""
        worker, self._worker, self._key = self._worker, None, None
        if worker is not None:
            worker.stop(warm=not failed)
            forget_worker_keys(worker)

    def close(self) -> None:
        try:
            self.discard()
        finally:
            if self._echo is not None:
                self._echo.__exit__(None, None, None)
                self._echo = None
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "WarmWorkers":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
