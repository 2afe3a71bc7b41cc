"""A run in progress (Measurement) and the loop that collects its task records (collect)."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd
import redis
from tqdm import tqdm

from harness.errors import RunFailed
from harness.lab import gilprobe, machine_load
from harness.lab.sampler import Sampler
from harness.lab.services.base import redact
from harness.lab.worker import Worker
from harness.lab.worker_group import WorkerGroup
from harness.present.live import Arrivals
from workloads.protocol import done_key, queue_keys

if TYPE_CHECKING:
    from harness.lab.queue_depth import QueueDepthSampler
    from harness.lab.remote_workers import RemoteWorkers
    from harness.lab.services.http_service import HttpService
    from harness.lab.services.postgres import PostgresServer
    from harness.lab.services.rabbitmq import TaskBroker
    from harness.present.live import Watch


class Measurement:
    """A run in progress, kept so that a failure can still write what was measured."""

    def __init__(self) -> None:
        self.submitted: list[dict] = []
        self.records: list[dict] = []
        self.sampler: Sampler | None = None
        self.worker: Worker | WorkerGroup | RemoteWorkers | None = None
        self.oncpu: gilprobe.OnCpuSampler | None = None
        self.contention: list = []
        self.loop_lag: list = []  # a pool with an event loop: its lag reports (workloads.loop_lag.COLUMNS)
        self.timings: dict[str, float] = {}
        self.warm_runs_before: int | None = None  # on a warm worker: how many runs it served before
        self.snapshot: machine_load.Snapshot | None = None
        self.machine_load: dict | None = None  # load averages and the busiest other processes
        self.broker_lost = False  # then clean-up does not wait on it again
        self.alone_ids: set[str] = set()  # the tasks run alone (the reference), which a live view leaves out
        self.database: PostgresServer | None = None  # the db workload's private PostgreSQL
        self.web: HttpService | None = None  # the http workload's service
        self.services: dict[str, str] = {}  # where the run's services are, for the worker's environment
        self.queue_depth: QueueDepthSampler | None = None  # an open-loop load's queue on the broker
        self.offered: tuple[int, int] | None = None  # an open-loop load: where its rows start in submitted, how many
        self.task_broker: TaskBroker | None = None  # BROKER=rabbitmq: the node the tasks go through, watched
        self.on_one_clock = False  # HOSTS: the timestamps were put on the broker's clock (harness.lab.run)

    def arrivals_now(self) -> Arrivals | None:
        """An open-loop load's arrivals so far and the broker's queue now, for a live view; None for a batch."""
        if self.offered is None:
            return None
        start, total = self.offered
        depth = self.queue_depth.rows[-1][1] if self.queue_depth is not None and self.queue_depth.rows else None
        return Arrivals(sent=len(self.submitted) - start, total=total, queued=depth)

    def batch_records(self, first: int) -> list[dict]:
        """The records from index `first` on, without those of the tasks run alone."""
        return [r for r in self.records[first:] if r.get("task_id") not in self.alone_ids]

    def tasks_frame(self) -> pd.DataFrame:
        scheduled = ["scheduled"] if any("scheduled" in r for r in self.submitted) else []  # an open-loop load's
        sent = pd.DataFrame(self.submitted, columns=["task_id", "index", "role", "submitted", *scheduled])
        got = pd.DataFrame(self.records)
        if got.empty:
            return sent.iloc[0:0]
        return sent.merge(got, on="task_id", how="inner").sort_values("index").reset_index(drop=True)


def forget_keys(m: Measurement, client: redis.Redis, *keys: str) -> None:
    """Remove the run's queue and lists from a shared broker; a broker that is gone has nothing to remove."""
    if not m.broker_lost:
        _delete(client, *keys)


def forget_worker_keys(worker: Worker) -> None:
    """Remove a stopped warm worker's own keys from the broker (its queue, its count of empty tasks), which no
    run's clean-up removes; bounded."""
    client = redis.Redis.from_url(worker.broker_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        _delete(client, *queue_keys(worker.queue), done_key(worker.run_id))
    finally:
        client.close()


def _delete(client: redis.Redis, *keys: str) -> None:
    try:
        client.delete(*keys)
    except (redis.RedisError, OSError):
        pass


def take_leftovers(m: Measurement, client: redis.Redis, key: str) -> None:
    """Records that reached Redis but were not collected (the run failed or was interrupted first): kept
    with the others, so a partial run holds every task that finished. None after a complete run."""
    if m.broker_lost:
        return
    try:
        m.records += [json.loads(item) for item in client.lrange(key, 0, -1)]
    except (redis.RedisError, OSError, ValueError):
        pass


def collect(client: redis.Redis, key: str, expected: int, worker: Worker | WorkerGroup | RemoteWorkers,
            deadline_s: float, m: Measurement, show_progress: bool, watch: Watch | None = None,
            first: int | None = None, check: Callable[[], None] | None = None) -> None:
    """Take records off the run's list until all arrived; fail fast on anything that means they won't, and on
    whatever `check` raises (an open-loop load's sender that failed). `watch` (a live view) sees the records from
    index `first` on (default: those this call collects), but not the tasks run alone (m.alone_ids), the cores in
    use, and an open-loop load's arrivals, several times a second."""
    deadline = time.monotonic() + deadline_s
    children = worker.children()
    shown = 0.0
    first = len(m.records) if first is None else first
    with tqdm(total=expected, initial=len(m.records), desc="tasks", unit="task",
              disable=not show_progress or watch is not None, leave=False) as bar:
        while len(m.records) < expected:
            if watch is not None and time.monotonic() - shown >= 0.2:
                shown = time.monotonic()
                _show(watch, m, first)
            if check is not None:
                check()
            try:
                item = client.blpop([key], timeout=0.25)
            except (redis.RedisError, OSError) as exc:
                m.broker_lost = True
                raise RunFailed(f"lost the Redis broker mid-run ({redact(str(exc))}); "
                                f"{len(m.records)} of {expected} tasks had reported") from None
            if item is not None:
                m.records.append(json.loads(item[1]))
                bar.update(1)
                continue
            if not worker.alive():
                raise RunFailed(worker.died_message())
            trouble = m.task_broker.trouble() if m.task_broker is not None else None
            if trouble:  # the worker waits on its broker (reconnecting) for as long as it takes: the run does not
                raise RunFailed(f"{trouble}; {len(m.records)} of {expected} tasks had reported")
            lost = children - worker.children()
            if lost and not worker.alive():  # killed between the two looks: its children went with it
                raise RunFailed(worker.died_message())
            if lost:
                # A prefork child that dies takes its task with it: Celery marks it failed
                # (WorkerLostError) and the task never reports. Waiting for the deadline would only delay.
                raise RunFailed(f"a prefork child process (pid {', '.join(map(str, sorted(lost)))}) died mid-run; "
                                f"its task was lost ({len(m.records)} of {expected} tasks had reported)")
            if time.monotonic() > deadline:
                raise RunFailed(f"{expected - len(m.records)} of {expected} tasks did not finish within "
                                f"{deadline_s:g} s (a task that never returns, or a stuck worker)")
    if watch is not None:
        _show(watch, m, first)


def _show(watch: Watch, m: Measurement, first: int) -> None:
    """One look for the live view; a batch's view is called with two arguments, as it was before loads had arrivals
    (a notebook's own view need not take a third)."""
    cores, arrivals = m.sampler.cores_now() if m.sampler is not None else None, m.arrivals_now()
    if arrivals is None:
        watch(m.batch_records(first), cores)
    else:
        watch(m.batch_records(first), cores, arrivals)
