"""Calibration: how much fixed work takes `duration` seconds alone on this machine.

Done once per run in the harness process, before the worker starts, so nothing competes with it.
The worker runs the same interpreter and the same function, so the rate carries over.
"""
from __future__ import annotations

import time
from typing import Callable

from harness.model.workloads import Workload


def _timed(fn: Callable[[int], object], units: int) -> float:
    t0 = time.perf_counter()
    fn(units)
    return time.perf_counter() - t0


def _rate(fn: Callable[[int], object], probe_units: int, timing_s: float = 0.05, repeats: int = 5) -> float:
    """Units per second: the median of a few timings of about `timing_s` each.

    A short probe sizes the timings (and pays for first-call costs); the median resists both a
    disturbed timing and a lucky one, which matters because the answer sets every task's length.
    """
    probe = _timed(fn, probe_units)
    units = max(1, round(probe_units * timing_s / max(probe, 1e-6)))
    timings = sorted(_timed(fn, units) for _ in range(repeats))
    return units / timings[len(timings) // 2]


def calibrate(workload: Workload, duration: float) -> dict:
    """The amount of fixed work that takes `workload` about `duration` seconds, and how it was found.

    Empty for a workload that is not fixed work: it lasts its duration by itself.
    """
    how = workload.calibration
    if how is None:
        return {}
    rate = _rate(workload.function, how.probe_units)
    return {how.unit: max(1, round(rate * duration)), f"{how.unit}_per_s": rate, **how.extra}
