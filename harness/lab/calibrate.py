"""Calibration: how much fixed work takes `duration` seconds alone on this machine.

Done once per run before the worker starts, so nothing competes with it, on the interpreter the
worker will run: in the harness's own process, or in a child of the worker's interpreter (a
free-threaded build runs the same loop ~25 % slower), so the rate carries over.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Callable

from harness.errors import SpecError
from harness.lab.interpreters import PROJECT_ROOT, project_env
from harness.model.workloads import Workload
from workloads import functions



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


def calibrate_here(w: Workload, duration: float) -> dict:
    """The amount of fixed work that takes `w` about `duration` seconds in this process, and how it was found.

    Empty for a workload that is not fixed work: it lasts its duration by itself.
    """
    how = w.calibration
    if how is None:
        return {}
    rate = _rate(getattr(functions, how.timed) if how.timed else w.function, how.probe_units)
    return {how.unit: max(1, round(rate * duration)), f"{how.unit}_per_s": rate, **how.extra}


def calibrate(w: Workload, duration: float, python: str | None = None, timeout_s: float = 120.0) -> dict:
    """As calibrate_here, on the interpreter `python` (default: this one)."""
    if w.calibration is None or python in (None, sys.executable):
        return calibrate_here(w, duration)
    code = ("import json, sys; from harness.lab.calibrate import calibrate_here; from harness.model.workloads "
            "import workload; print(json.dumps(calibrate_here(workload(sys.argv[1]), float(sys.argv[2]))))")
    try:
        out = subprocess.run([python, "-c", code, w.name, repr(duration)], capture_output=True, text=True,
                             timeout=timeout_s, env=project_env(), cwd=str(PROJECT_ROOT))
    except subprocess.TimeoutExpired:
        raise SpecError(f"calibrating {w.name} on {python} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        raise SpecError(f"calibrating {w.name} on {python} failed: "
                        f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(out.stdout)
