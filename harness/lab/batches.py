"""What a run submits: batches of tasks of one workload each, sent by name to the run's queue."""
from __future__ import annotations

import time
from dataclasses import dataclass

from celery import Celery

from harness.model.spec import RunSpec
from harness.model.workloads import workload

ROLES = ("background", "foreground")


@dataclass(frozen=True)
class Batch:
    role: str       # "background": run beside the measured tasks; "foreground": the measured tasks
    workload: str
    count: int
    args: list


def plan_batches(spec: RunSpec, calibration: dict, background_calibration: dict,
                 echo: tuple[str, int] | None) -> list[Batch]:
    """Background tasks go first, so they are already running when the measured ones start."""
    batches = []
    if spec.background:
        batches.append(Batch("background", spec.background, spec.background_tasks,
                             workload(spec.background).task_args(spec.background_duration, background_calibration,
                                                                  echo)))
    batches.append(Batch("foreground", spec.workload, spec.tasks,
                         workload(spec.workload).task_args(spec.duration, calibration, echo)))
    return batches


def submit(app: Celery, queue: str, batches: list[Batch]) -> list[dict]:
    """Send every task; returns one row per task: task_id, index, role, submitted (epoch seconds)."""
    rows = []
    with app.producer_or_acquire() as producer:
        for batch in batches:
            for _ in range(batch.count):
                submitted = time.time()
                result = app.send_task(batch.workload, args=batch.args, queue=queue, producer=producer)
                rows.append({"task_id": result.id, "index": len(rows), "role": batch.role, "submitted": submitted})
    return rows
