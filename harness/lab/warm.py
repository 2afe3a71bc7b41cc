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
from harness.lab.services.echo import EchoService
from harness.lab.worker import Worker
from harness.model.spec import RunSpec
from workloads.protocol import worker_key


class WarmWorkers:
    """Hands out a warm worker for a run's settings; at most `keep` are alive, the ones last asked for.

    A sweep that alternates its pools (each run beside its solo baseline, harness.sweeps) keeps one worker
    per pool warm; an idle warm worker waits on the broker and uses next to no CPU (it is one of the lab's
    own processes, so the analysis never counts it as another process)."""

    def __init__(self, keep: int = 1) -> None:
        self.keep = max(1, keep)
        self._warm: dict[tuple, tuple[Worker, int]] = {}  # oldest first: key -> (worker, runs it served)
        self._current: tuple | None = None
        self._echo: EchoService | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="gil-lab-warm-"))
        self.started = 0

    @staticmethod
    def shareable(spec: RunSpec) -> bool:
        # Not the user's app: a warm worker is primed with the lab's own empty task, which their app has not.
        # Nor a db run: its worker is told the run's own PostgreSQL.
        return (spec.pool_rules.stays_warm and not spec.gil_probe and spec.workers == 1 and not spec.app
                and not spec.workload_rules.needs_db and not spec.workload_rules.needs_http)

    def echo(self) -> EchoService:
        """One echo service for every run the warm workers serve: a worker is told its address once."""
        if self._echo is None:
            self._echo = EchoService().__enter__()
        return self._echo

    def worker_for(self, spec: RunSpec, broker_url: str, python: str, tasks_url: str | None = None
                   ) -> tuple[Worker, int]:
        """A ready worker for these settings, and how many runs it served before this one (on the lab's Redis at
        `broker_url`, its tasks on `tasks_url` when that is another broker)."""
        key = (broker_url, tasks_url, *worker_key(spec.to_dict(), python))
        if key in self._warm and not self._warm[key][0].alive():
            self._stop(key)
        if key in self._warm:
            worker, runs = self._warm.pop(key)
            runs += 1
        else:
            while len(self._warm) >= self.keep:  # the one asked for longest ago makes room
                self._stop(next(iter(self._warm)))
            echo = self.echo()
            worker = Worker(spec, broker_url, f"warm-{spec.pool}-{secrets.token_hex(3)}",
                            self._dir / f"worker-{self.started}.log", python=python, echo=echo,
                            tasks_url=tasks_url)
            worker, runs = worker.__enter__(), 0
            self.started += 1
        self._warm[key] = (worker, runs)  # now the newest
        self._current = key
        return worker, runs

    def _stop(self, key: tuple, failed: bool = False) -> None:
        worker, _runs = self._warm.pop(key)
        if self._current == key:
            self._current = None
        worker.stop(warm=not failed)
        forget_worker_keys(worker)

    def discard(self, failed: bool = False) -> None:
        """Stop the worker of the last run: before a run that cannot share one, or (`failed`, stopped cold) after
        a failed or interrupted run, so the next run starts on a fresh one."""
        if self._current is not None and self._current in self._warm:
            self._stop(self._current, failed)

    def discard_all(self) -> None:
        """Stop every warm worker; one that fails to stop does not keep the others running."""
        error = None
        while self._warm:
            try:
                self._stop(next(iter(self._warm)))
            except Exception as exc:  # noqa: BLE001 - raised once all are stopped
                error = error or exc
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.discard_all()
        finally:
            if self._echo is not None:
                self._echo.__exit__(None, None, None)
                self._echo = None
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> WarmWorkers:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
