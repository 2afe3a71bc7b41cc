"""WORKERS=N: several worker processes on one run's queue, measured as one; with ROUTES, also a worker of its own
pool per routed group of tasks, each on its own queue (a queue split, measured in one run)."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.lab.processes import interrupts_deferred
from harness.lab.worker import Worker
from harness.model.spec import RunSpec
from workloads.protocol import route_queue

if TYPE_CHECKING:
    from harness.lab.services.echo import EchoService


class WorkerGroup:
    """WORKERS=N worker processes on one run's queue, started together and stopped together.

    Presents what a run needs of its workers as one Worker does (run.py measures either): every
    process's pid for the sampler, all their pool children, alive only while all are. They share one
    log file (each appends its lines). Started at once and waited for together, and stopped in
    parallel, so that four prefork workers cost one worker's warm shutdown (1.6 s), not four.
    """

    def __init__(self, spec: RunSpec, broker_url: str, run_id: str, log_path: Path, python: str | None = None,
                 echo: EchoService | None = None, services: dict[str, str] | None = None,
                 tasks_url: str | None = None, indexes: list[int] | None = None) -> None:
        self.spec, self.run_id, self.log_path = spec, run_id, log_path
        self.broker_url = broker_url
        routed = list(dict.fromkeys(spec.routed.values()))  # ROUTES: one worker per pool and concurrency
        total = spec.workers + len(routed)
        # HOSTS: an agent runs its host's share of the run's workers (`indexes`), numbered as in the whole run.
        self.members = [Worker(spec, broker_url, run_id, log_path, python=python, echo=echo, index=i,
                               of_workers=total, services=services, tasks_url=tasks_url)
                        for i in (indexes or range(1, spec.workers + 1))]
        for k, (name, concurrency) in enumerate(routed, start=1):
            own = replace(spec, pool=name, concurrency=concurrency, workers=1, routes=None)
            self.members.append(Worker(own, broker_url, run_id, log_path, python=python, echo=echo,
                                       index=spec.workers + k, queue=route_queue(run_id, k), of_workers=total,
                                       services=services, tasks_url=tasks_url))
        self.queue = self.members[0].queue
        # Which queue each routed task goes to (the rest go to the run's own).
        self.routes = {task: route_queue(run_id, routed.index(where) + 1) for task, where in spec.routed.items()}
        self.start_to_ready_s: float | None = None

    def __enter__(self) -> WorkerGroup:
        started = time.monotonic()
        try:
            for member in self.members:
                member.start()
            for member in self.members:
                member.wait_ready()
        except BaseException:
            self._stop_all(warm=False)
            raise
        self.start_to_ready_s = time.monotonic() - started
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        self._stop_all(grace_s=15.0, warm=exc_type is None)  # cold after a failure, as Worker's

    def _stop_all(self, grace_s: float = 15.0, warm: bool = True) -> None:
        with interrupts_deferred():  # a second interrupt waits until every member is stopped
            self._stop_members(grace_s, warm)

    def _stop_members(self, grace_s: float, warm: bool) -> None:
        threads = [threading.Thread(target=m.stop, kwargs={"grace_s": grace_s, "warm": warm}, daemon=True)
                   for m in self.members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=grace_s + 15.0)
        for member in self.members:  # one whose stop did not return in time: the signal path, here
            if member.proc is not None:
                member.stop(warm=False)

    def stop(self, grace_s: float = 15.0, warm: bool = True) -> None:
        self._stop_all(grace_s, warm)

    @property
    def pid(self) -> int:
        return self.members[0].pid

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members if m.proc is not None]

    @property
    def ready_info(self) -> dict | None:
        first = self.members[0].ready_info
        return None if first is None else {**first, "workers": [m.ready_info for m in self.members]}

    @property
    def clean_shutdown(self) -> bool | None:
        states = [m.clean_shutdown for m in self.members]
        return None if None in states else all(states)

    @property
    def stopped_by(self) -> str | None:
        ways = sorted({str(m.stopped_by) for m in self.members})
        return ", ".join(ways) if ways else None

    def argv(self) -> list[str]:
        return self.members[0].argv()

    def env(self) -> dict[str, str]:
        return self.members[0].env()

    def children(self) -> set[int]:
        return set().union(*(m.children() for m in self.members))

    def alive(self) -> bool:
        return all(m.alive() for m in self.members)

    def died_message(self) -> str:
        dead = [m for m in self.members if not m.alive()]
        return ((f"worker {dead[0].index} of {len(self.members)}: " + dead[0].died_message()) if dead
                else "no worker died")
