"""Calibration: how much fixed work takes `duration` seconds alone on this machine.

Done before the worker starts, so nothing competes with it, on the interpreter the worker will run:
in the harness's own process, or in a child of the worker's interpreter (a free-threaded build runs
the same loop ~25 % slower), so the rate carries over.

The machine's speed drifts (up to 2x from second to second here), so a rate measured anew for every
run would make "the same task" different work in every run. A rate is therefore measured once and
reused: a sweep measures each (workload, interpreter, GIL) before its first cell and gives every
cell the same work (sweep.json's `calibrations`); a lone run reuses a rate measured on this machine
within the last hour (`.lab/calibrations.json`), unless told to measure again (`--recalibrate`).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import SpecError
from harness.lab.interpreters import project_env
from harness.model.workloads import Workload
from harness.project import PROJECT_ROOT
from workloads import functions


def _timed(fn: Callable[[int], object], units: int) -> float:
    t0 = time.perf_counter()
    fn(units)
    return time.perf_counter() - t0


def _rate(fn: Callable[[int], object], probe_units: int, timing_s: float = 0.05, repeats: int = 9) -> float:
    """Units per second: the fastest of a few timings of about `timing_s` each.

    A short probe sizes the timings (and pays for first-call costs). The rate is reused for an hour, and
    this VM runs the same work at two speeds about 1.9x apart: the fastest timing is the machine at its
    best, which drift only slows, so a task lasts about DURATION or longer more often than not. Not always:
    a 12 ms loop timed for 20 s here was slow 70 % of the time, in spells of up to 3.8 s, so even a second
    of timings missed the fast speed in 7 of 22 windows (and a task sized then lasts about half DURATION).
    What must know how long a task ran measures it (a lesson's wait behind a CPU task, the tests).
    """
    probe = _timed(fn, probe_units)
    units = max(1, round(probe_units * timing_s / max(probe, 1e-6)))
    return units / min(_timed(fn, units) for _ in range(repeats))


def calibrate_here(w: Workload, duration: float) -> dict:
    """The amount of fixed work that takes `w` about `duration` seconds in this process, and how it was found.

    Empty for a workload that is not fixed work: it lasts its duration by itself.
    """
    how = w.calibration
    if how is None:
        return {}
    fn = getattr(functions, how.timed) if how.timed else w.function
    assert fn is not None  # only the user's own task has no function, and it is not fixed work (no calibration)
    rate = _rate(fn, how.probe_units)
    return {how.unit: max(1, round(rate * duration)), f"{how.unit}_per_s": rate, **how.extra}


def calibrate(w: Workload, duration: float, python: str | None = None, timeout_s: float = 120.0,
              gil: str | None = None) -> dict:
    """As calibrate_here, on the interpreter `python` (default: this one), with the GIL the worker will be
    asked for (PYTHON_GIL, as harness.lab.worker sets it)."""
    if w.calibration is None or (python in (None, sys.executable) and gil is None):
        return calibrate_here(w, duration)
    env = project_env()
    env.pop("PYTHON_GIL", None)
    if gil is not None:
        env["PYTHON_GIL"] = "1" if gil == "on" else "0"
    code = ("import json, sys; from harness.lab.calibrate import calibrate_here; from harness.model.workloads "
            "import workload; print(json.dumps(calibrate_here(workload(sys.argv[1]), float(sys.argv[2]))))")
    try:
        out = subprocess.run([python or sys.executable, "-c", code, w.name, repr(duration)], capture_output=True,
                             text=True, timeout=timeout_s, env=env, cwd=str(PROJECT_ROOT))
    except subprocess.TimeoutExpired:
        raise SpecError(f"calibrating {w.name} on {python} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        raise SpecError(f"calibrating {w.name} on {python} failed: "
                        f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(out.stdout)


# A rate measured on this machine is reused by lone runs for this long: long enough that a session's runs
# do the same work, short enough that a machine that changed (another host, a new build) is measured again.
CACHE_MAX_AGE_S = 3600.0
# LAB_CALIBRATIONS names another file (the test suite keeps its own, so it never sizes a user's runs).
CACHE_PATH = Path(os.environ.get("LAB_CALIBRATIONS") or PROJECT_ROOT / ".lab" / "calibrations.json")


def at_duration(w: Workload, rate: dict, duration: float) -> dict:
    """A calibration of `w` for `duration`, from one measured at any duration (its units per second)."""
    how = w.calibration
    if how is None or not rate:
        return {}
    per_s = rate[f"{how.unit}_per_s"]
    return {how.unit: max(1, round(per_s * duration)), f"{how.unit}_per_s": per_s, **how.extra}


def key(w: Workload, python: str | None, gil: str | None) -> str:
    """What a rate belongs to: the workload, the interpreter (its path and build, which a rebuild changes)
    and the GIL asked of it."""
    exe = os.path.realpath(python or sys.executable)
    try:
        build = int(os.stat(exe).st_mtime)
    except OSError:
        build = 0
    return f"{w.name}|{exe}|{build}|gil={gil or 'default'}"


def _machine() -> str:
    """This machine since its last boot: a rate measured before a restart or on another host is not reused."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}|{boot}"


class Calibrations:
    """The rates a run's fixed work is sized from: given (a sweep's, one per workload, interpreter and GIL),
    cached on this machine for an hour (a lone run's), or measured anew (`recalibrate`).

    A sweep's rate missing from `given` (a resumed sweep whose interpreter was rebuilt since) is measured once
    and added to `given`, so the cells after it still share one; the sweep stores `given` again.
    """

    def __init__(self, given: dict[str, dict] | None = None, cache: Path | None = CACHE_PATH,
                 recalibrate: bool = False) -> None:
        self.given = dict(given or {})
        self.cache = None if given is not None else cache
        self.recalibrate = recalibrate

    def _cached(self, k: str) -> dict | None:
        if self.cache is None or self.recalibrate:
            return None
        try:  # a damaged or hand-edited cache is no cache
            entry = json.loads(self.cache.read_text()).get(k)
            fresh = (entry["machine"] == _machine() and 0 <= time.time() - float(entry["measured_at"]) < CACHE_MAX_AGE_S
                     and isinstance(entry["rate"], dict) and float(next(iter(entry["rate"].values()))) > 0)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, StopIteration):
            return None
        return entry["rate"] if fresh else None

    def _store(self, k: str, rate: dict) -> None:
        if self.cache is None:
            return
        try:
            entries = json.loads(self.cache.read_text()) if self.cache.exists() else {}
            entries = {name: e for name, e in entries.items() if isinstance(e, dict)
                       and time.time() - float(e.get("measured_at", 0)) < CACHE_MAX_AGE_S}
        except (OSError, ValueError, TypeError, AttributeError):
            entries = {}
        entries[k] = {"rate": rate, "machine": _machine(), "measured_at": time.time()}
        try:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(entries, indent=1) + "\n")
            os.replace(tmp, self.cache)
        except OSError:  # a read-only checkout measures every time: nothing is lost but the reuse
            pass

    def rate(self, w: Workload, python: str | None, gil: str | None) -> tuple[dict, str]:
        """The rate for `w` on `python` with the GIL `gil`, and where it came from: "sweep", "cached" or
        "measured"."""
        k = key(w, python, gil)
        rate: dict | None
        if k in self.given:
            source, rate = "sweep", self.given[k]
        elif (rate := self._cached(k)) is not None:
            source = "cached"
        else:
            rate, source = calibrate(w, 1.0, python, gil=gil), "measured"
            if self.cache is None:  # a sweep's: the cells after this one share it
                self.given[k] = rate
            self._store(k, rate)
        return rate, source

    def for_duration(self, w: Workload, duration: float, python: str | None, gil: str | None) -> dict:
        """The calibration of one run's work: its units for `duration`, from the rate (see `rate`)."""
        if w.calibration is None:
            return {}
        rate, source = self.rate(w, python, gil)
        return {**at_duration(w, rate, duration), "source": source}
