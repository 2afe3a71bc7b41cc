"""How many tasks per second one worker holds within a latency objective: `make capacity POOL=... SLO='p95<1s'`.

A step ramp of open-loop loads (harness.lab.run with RATE), each rate double the last, from a quarter of what the
slots could do if each task took DURATION, until a step fails: saturated (the tasks in the system grew), the SLO's
percentile over its limit, or the submitter behind (the step says nothing then: it is measured again, twice at most,
and the search stops if it stays behind). Then
bisection between the last good rate and the first bad one. The number of steps is bounded, and said with the time
they take before the first one starts. Every step is a run folder under the search's folder; capacity.json keeps the
steps and the answer, capacity.png draws latency against offered load (the hockey stick) with the knee marked.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.analysis.load import latency_at
from harness.model.arrivals import MAX_RATE
from harness.model.experiment import Experiment
from harness.model.machine import usable_cores
from harness.model.slo import Slo
from harness.model.spec import RunSpec, build_spec
from harness.results.records import Role
from harness.results.run_folder import Run, tasks_of

MAX_RAMP_STEPS = 8
BISECTION_STEPS = 3
# A step whose submitter fell behind is measured again this many times before the search stops there (measured: a
# threads step at 25 tasks/s, within its SLO at p95 0.15 s, had its submitter behind once in a fresh-clone test run,
# and the search, stopping at its first step, found no capacity).
BEHIND_RETRIES = 2
# The load of each step when LOAD_TIME is not given: long enough for a queue to grow past the noise at a few
# tasks a second, short enough for a search of a dozen steps to take minutes.
STEP_LOAD_TIME_S = 5.0
# Beyond a step's load: its worker's start and stop, its drain, its analysis (measured here: 3-6 s).
STEP_OVERHEAD_S = 6.0


@dataclass
class Step:
    rate: float
    run: str
    saturated: bool
    behind: bool
    latency_slo_s: float | None  # at the SLO's percentile
    latency_p50_s: float | None
    finish_rate: float | None
    memory_mib: float | None
    cores_used: float | None = None  # the worker's mean over the step

    def ok(self, slo: Slo) -> bool:
        return (not self.saturated and not self.behind and self.latency_slo_s is not None
                and self.latency_slo_s <= slo.limit_s)


@dataclass
class Capacity:
    slo: str
    pool: str
    work: str
    cores: int
    steps: list[Step] = field(default_factory=list)
    capacity: float | None = None     # the highest rate held within the SLO, not saturated
    first_bad: float | None = None    # the lowest rate that was not
    stopped: str = ""                 # why the search ended before bisecting, if it did

    def to_dict(self) -> dict[str, Any]:
        held = next((s for s in self.steps if s.rate == self.capacity), None)
        memory = held.memory_mib if held is not None else None
        used = held.cores_used if held is not None else None
        # Per core the worker used at that rate (its mean), not per core of the machine: one worker's capacity over
        # the machine's cores would rank the pools as the capacity does. A pool that waits uses little of a core.
        return {**asdict(self), "per_core": self.capacity / used if self.capacity and used else None,
                "per_gib": self.capacity / (memory / 1024) if self.capacity and memory else None,
                "memory_mib": memory, "cores_used": held.cores_used if held is not None else None}


def first_rate(spec: RunSpec) -> float:
    """A quarter of what the slots could finish if each task took DURATION: well under any pool's capacity for
    I/O, near it for CPU work on a pool that runs one task at a time."""
    return min(MAX_RATE, max(0.5, 0.25 * spec.slots / spec.duration))


def estimate_s(load_time_s: float) -> float:
    return (MAX_RAMP_STEPS + BISECTION_STEPS) * (load_time_s + STEP_OVERHEAD_S)  # retries of a step not counted


def search(settings: dict[str, Any], slo: Slo, results_dir: str | Path, measure: Callable[[RunSpec, Path], Run],
           log: Callable[[str], None] = print, label: str = "") -> tuple[Capacity, Path]:
    """Ramp, then bisect; returns the answer and the search's folder. `measure(spec, folder)` runs one step (the
    command's: the lab's run_bench, every step on one broker)."""
    settings = {**settings, "load_time": settings.get("load_time") or STEP_LOAD_TIME_S}
    batch = {k: v for k, v in settings.items() if k not in ("load_time", "warmup", "arrivals")}
    base = build_spec(**{**settings, "rate": first_rate(build_spec(**batch))})  # every mistake, before a step
    folder = Path(results_dir) / (label or f"capacity-{time.strftime('%Y%m%d-%H%M%S')}-{base.pool}-"
                                           f"{base.task or base.workload}")
    folder.mkdir(parents=True, exist_ok=True)
    result = Capacity(slo.text, base.pool, base.task or base.workload, usable_cores())
    log(f"capacity: {base.pool} at concurrency {base.concurrency}, {slo.text}; at most "
        f"{MAX_RAMP_STEPS + BISECTION_STEPS} steps of {base.load_time:g} s of load, about "
        f"{estimate_s(float(base.load_time or 0)) / 60:.0f} min at most")

    def step(rate: float) -> Step:
        """One step at `rate`; measured again (up to BEHIND_RETRIES times) while the submitter fell behind: such a step
        says nothing of the pool (the harness could not offer the rate: a moment of this machine's drift or steal)."""
        s = measure_step(rate)
        for _ in range(BEHIND_RETRIES):
            if not s.behind:
                break
            log(f"capacity: {rate:.4g} tasks/s: the submitter fell behind; measuring that rate again")
            s = measure_step(rate)
        return s

    def measure_step(rate: float) -> Step:
        run = measure(build_spec(**{**settings, "rate": round(rate, 3)}), folder / "runs")
        load = run.summary.load if run.summary is not None else None
        assert load is not None and run.spec.warmup is not None
        foreground = tasks_of(run.tasks, Role.FOREGROUND)
        s = Step(rate, run.run_id, bool(load.saturated), bool(load.submitter_behind),
                 latency_at(foreground, run.spec.warmup, slo.percentile), load.latency_p50_s, load.finish_rate,
                 run.summary.pss_peak_mib if run.summary is not None else None,
                 run.summary.mean_cores_used if run.summary is not None else None)
        result.steps.append(s)
        verdict = ("held" if s.ok(slo) else "submitter behind" if s.behind else "saturated" if s.saturated
                   else f"over the SLO ({(s.latency_slo_s or 0) * 1000:.0f} ms)")
        log(f"capacity: {rate:.4g} tasks/s: {verdict}")
        return s

    rate = first_rate(base)
    good: float | None = None
    bad: float | None = None
    for _ in range(MAX_RAMP_STEPS):
        s = step(rate)
        if s.behind:
            result.stopped = f"the submitter fell behind at {rate:.4g} tasks/s: the search stopped there"
            break
        if s.ok(slo):
            good = rate
            if bad is not None:  # came down from a first rate that failed
                break
            if rate >= MAX_RATE:
                result.stopped = f"held the lab's highest rate, {MAX_RATE:g} tasks/s: capacity is at least that"
                break
            rate = min(MAX_RATE, rate * 2)
        else:
            bad = rate
            if good is not None:
                break
            rate /= 4  # the first rate failed: down until one holds
    if good is not None and bad is not None and not result.stopped:
        for _ in range(BISECTION_STEPS):
            middle = (good + bad) / 2
            if step(middle).ok(slo):
                good = middle
            else:
                bad = middle
    result.capacity, result.first_bad = good, bad
    (folder / "capacity.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result, folder


def sentence(result: Capacity) -> str:
    if result.capacity is None:
        return (f"capacity: {result.pool} held no rate tried within {result.slo}"
                + (f" (the lowest, {result.first_bad:.4g} tasks/s, did not)" if result.first_bad else "")
                + (f"; {result.stopped}" if result.stopped else ""))
    data = result.to_dict()
    per_gib = f", {rate_text(data['per_gib'])} per GiB of worker memory" if data["per_gib"] else ""
    per_core = (f"{rate_text(data['per_core'])} per core it used ({data['cores_used']:.2f} cores)"
                if data["per_core"] else "its cores not sampled")
    return (f"capacity: {result.pool} on {result.work} holds {result.capacity:.3g} tasks/s within {result.slo} "
            f"({per_core}{per_gib})"
            + (f"; {result.first_bad:.3g} tasks/s did not" if result.first_bad else "")
            + (f"; {result.stopped}" if result.stopped else ""))


def search_experiment(experiment: Experiment, slo: Slo, results_dir: str | Path,
                      measure: Callable[[RunSpec, Path], Run], log: Callable[[str], None] = print
                      ) -> tuple[list[Capacity], Path]:
    """A capacity search per cell of a capacity experiment (experiments/capacity.toml), one after another under one
    folder; capacities.json keeps every search and the answer per work (answers)."""
    cells = experiment.cells()
    for cell in cells:  # every cell's mistakes before the first step of any
        build_spec(**{**cell, "rate": 1.0})
    folder = Path(results_dir) / f"capacity-{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    per_step = float(cells[0].get("load_time") or STEP_LOAD_TIME_S) if cells else STEP_LOAD_TIME_S
    log(f"capacity: {len(cells)} searches ({experiment.name}), at most {len(cells) * estimate_s(per_step) / 60:.0f} "
        f"min if every one takes its most steps")
    results = []
    for i, cell in enumerate(cells):
        label = f"{i + 1:02d}-" + "-".join(str(cell[a]) for a in experiment.axes)
        result, _ = search(cell, slo, folder, measure, log, label=label)
        log(sentence(result))
        results.append(result)
    (folder / "capacities.json").write_text(json.dumps(
        {"experiment": experiment.to_dict(), "slo": slo.text, "searches": [r.to_dict() for r in results],
         "answers": answers(results)}, indent=1) + "\n")
    return results, folder


MEASURES = {"per worker": "capacity", "per core it used": "per_core", "per GiB of worker memory": "per_gib"}


def rate_text(rate: float) -> str:
    """Three significant figures, whole numbers from a thousand up: 43.8, 160, 3,440."""
    return f"{rate:.3g}" if rate < 1000 else f"{rate:,.0f}"


def answers(results: list[Capacity]) -> list[str]:
    """Per work, which pool holds the most per worker, per core it used and per GiB of the worker's memory,
    and by how much over the next; the pools that held no rate named. Pure."""
    out = []
    for work in dict.fromkeys(r.work for r in results):
        rows = [r.to_dict() for r in results if r.work == work]
        held = [r for r in rows if r["capacity"]]
        parts = []
        for name, key in MEASURES.items():
            ranked = sorted((r for r in held if r[key]), key=lambda r: -r[key])
            if not ranked:
                continue
            best = ranked[0]
            then = (f", {ranked[1][key] / best[key]:.0%} of it on {ranked[1]['pool']}" if len(ranked) > 1 else "")
            parts.append(f"{name}: {best['pool']} ({rate_text(best[key])} tasks/s{then})")
        none = [r["pool"] for r in rows if not r["capacity"]]
        out.append(f"{work}: " + "; ".join(parts) + (f"; held no rate tried: {', '.join(none)}" if none else ""))
    return out
