"""RunSpec: what one run measures, validated once, before anything starts.

Its fields are the SETTINGS of harness.model.settings, in that order; `build_spec` is the way to
make one, so every value has passed its setting's validation and the rules that join settings.
"""
from __future__ import annotations

import math
from dataclasses import asdict, make_dataclass
from typing import Any

from harness.errors import SpecError
from harness.model.machine import usable_cores
from harness.model.pools import POOLS, Pool, pool
from harness.model.settings import SETTINGS
from harness.model.workloads import BACKGROUND_STRETCH, Workload, workload


class _RunSpecRules:
    """What follows from a RunSpec's settings; the fields themselves come from SETTINGS."""

    @property
    def pool_rules(self) -> Pool:
        return pool(self.pool)

    @property
    def workload_rules(self) -> Workload:
        return workload(self.workload)

    @property
    def kind(self) -> str:
        return self.workload_rules.kind

    @property
    def background_duration(self) -> float:
        return BACKGROUND_STRETCH * self.duration

    def deadline_s(self) -> float:
        """How long the run may take once tasks are submitted, before it is called stuck.

        Generous, twice the slowest honest schedule plus slack: CPU work one task after another
        (the GIL may serialise it); I/O work in waves of `concurrency` tasks, each wave allowed
        Celery's 2 s green-pool dispatch gap; a switch interval longer than a task can delay each
        task by up to one interval; 10 ms of broker round trips per task.
        """
        if self.timeout is not None:
            return self.timeout
        per_task = self.duration + min(self.switch_interval, 60.0)
        overlaps = self.kind == "io" and "io" in self.pool_rules.parallel_kinds
        waves = math.ceil(self.tasks / self.concurrency) if overlaps else self.tasks
        background = self.background_tasks * (self.background_duration + min(self.switch_interval, 60.0))
        return 30.0 + 2.0 * (waves * (per_task + 2.0) + background) + 0.01 * self.tasks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RunSpec = make_dataclass("RunSpec", [(s.name, s.type if s.default is not None else s.type | None)
                                     for s in SETTINGS.values()], bases=(_RunSpecRules,), frozen=True)
RunSpec.__doc__ = "One run's settings (fields: harness.model.settings.SETTINGS); make one with build_spec."
RunSpec.__module__ = __name__


def build_spec(**raw: Any) -> RunSpec:
    """Validate raw settings (strings from the CLI or make, values from code or TOML) into a RunSpec."""
    unknown = set(raw) - set(SETTINGS)
    if unknown:
        raise SpecError(f"unknown setting {', '.join(sorted(unknown))}; allowed: {', '.join(SETTINGS)}")
    v = {name: setting.validate(raw.get(name)) for name, setting in SETTINGS.items()}
    if v["concurrency"] is None:
        v["concurrency"] = usable_cores()
    if v["tasks"] is None:
        v["tasks"] = 4 * v["concurrency"]
    rules = pool(v["pool"])
    if v["prefetch"] is None:
        v["prefetch"] = rules.default_prefetch
    if v["background"] is None:
        v["background_tasks"] = 0
    elif v["background_tasks"] == 0:
        v["background_tasks"] = 1
    if v["gil_probe"] and not rules.gil_probe:
        names = [name for name, p in POOLS.items() if p.gil_probe]
        raise SpecError(f"the GIL probe runs on {', '.join(names[:-1])} and {names[-1]}; {rules.name} runs every task "
                        "in one OS thread, so there is no GIL handover to see")
    return RunSpec(**v)

