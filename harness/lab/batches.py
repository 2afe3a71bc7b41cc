"""What a run submits: batches of tasks of one workload each, sent by name to the run's queue."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from celery import Celery

from harness.model.calls import Call, load_calls, replay
from harness.model.spec import RunSpec
from harness.model.workloads import workload
from harness.results.records import Role
from workloads.protocol import RUN_HEADER


@dataclass(frozen=True)
class Batch:
    # REFERENCE: one measured task run alone (before the batch, then again after it), the serial reference;
    # BACKGROUND: run beside the measured tasks; FOREGROUND: the measured tasks. tasks.csv's `role` is its value.
    role: Role
    workload: str
    count: int
    args: list
    kwargs: dict | None = None
    queue: str | None = None  # None: the run's own queue (ROUTES sends some tasks to a worker of their own)
    # An open-loop load: each task's arrival, seconds from the load's start (harness.model.arrivals); None: all at once.
    schedule: tuple[float, ...] | None = None


def replayed_calls(spec: RunSpec) -> list[Call]:
    """The user's app's calls a run submits, in order: the CALLS sample, or each TASK name with ARGS and KWARGS,
    apportioned to TASKS and shuffled by SEED (unless IN_ORDER): the same sequence for every pool."""
    if spec.calls:
        calls = load_calls(spec.calls)
        if spec.app_tasks:  # TASK with CALLS: only the calls of those tasks
            calls = [c for c in calls if c.task in spec.app_tasks]
    else:
        calls = [Call(name, spec.task_args, spec.task_kwargs, None, None, 0) for name in spec.app_tasks]
    return replay(calls, spec.tasks, spec.seed, spec.in_order)


def plan_batches(spec: RunSpec, calibration: dict, background_calibration: dict,
                 echo: tuple[str, int] | None) -> list[Batch]:
    """The reference task first, alone (for work measured alone); then background tasks, so they already
    run when the measured ones start; then the measured tasks. The user's app's mix: one task per call, in the
    replay's order."""
    measured = workload(spec.workload)
    arrive = spec.schedule() if spec.is_load else None
    if measured.mix:
        calls = replayed_calls(spec)
        return [Batch(Role.FOREGROUND, c.task, 1, c.args, c.kwargs or None,
                      schedule=(arrive[i],) if arrive is not None else None) for i, c in enumerate(calls)]
    foreground_args = measured.task_args(spec.duration, calibration, echo, spec.cpu_fraction, spec.task_args)
    kwargs = spec.task_kwargs or None
    batches = [Batch(Role.REFERENCE, spec.workload, 1, foreground_args, kwargs)] if measured.fixed_work else []
    if spec.background:
        batches.append(Batch(Role.BACKGROUND, spec.background, spec.background_tasks,
                             workload(spec.background).task_args(spec.background_duration, background_calibration,
                                                                  echo)))
    batches.append(Batch(Role.FOREGROUND, spec.workload, spec.tasks, foreground_args, kwargs,
                         schedule=tuple(arrive) if arrive is not None else None))
    return batches


def batch(batches: list[Batch], role: Role) -> Batch | None:
    return next((b for b in batches if b.role == role), None)


# An open-loop load starts this long after the submitter is ready, so its first arrival is not already late.
LOAD_LEAD_S = 0.05


def submit(app: Celery, queue: str, batches: list[Batch], run_id: str, first_index: int = 0,
           into: list[dict] | None = None, stop: threading.Event | None = None) -> list[dict]:
    """Send every task, marked as the run's; returns one row per task: task_id, index, role, submitted, and for a
    task of an open-loop load its scheduled time (epoch s). With `into`, each row is appended there as its task is
    sent (an open-loop load is sent from a thread of its own while the run's records are collected and shown); a set
    `stop` ends the sending before the next task. Returns the rows of this call's tasks.

    A scheduled task is sent at its time whatever the worker does (as wrk2 does): the submitter sleeps until then and
    never waits for a result, so a stalled worker cannot slow the arrivals, and each task's latency is measured from
    its scheduled time. How late each send was is `submitted - scheduled` (the analysis marks a submitter that fell
    behind)."""
    rows: list[dict] = [] if into is None else into
    first = len(rows)
    start = time.time() + LOAD_LEAD_S
    with app.producer_or_acquire() as producer:
        for b in batches:
            for i in range(b.count):
                scheduled = start + b.schedule[i if len(b.schedule) > 1 else 0] if b.schedule else None
                if scheduled is not None:
                    _sleep_until(scheduled, stop)
                if stop is not None and stop.is_set():
                    return rows[first:]
                submitted = time.time()
                result = app.send_task(b.workload, args=b.args, kwargs=b.kwargs, queue=b.queue or queue,
                                       producer=producer, headers={RUN_HEADER: run_id})
                row = {"task_id": result.id, "index": first_index + len(rows) - first, "role": b.role,
                       "submitted": submitted}
                if scheduled is not None:
                    row["scheduled"] = scheduled
                rows.append(row)
    return rows[first:]


def _sleep_until(when: float, stop: threading.Event | None = None) -> None:
    """Sleep until epoch time `when` (no spinning: a spin would take a core from the worker on a small machine), or
    until `stop` is set."""
    left = when - time.time()
    if left > 0:
        if stop is not None:
            stop.wait(left)
        else:
            time.sleep(left)
