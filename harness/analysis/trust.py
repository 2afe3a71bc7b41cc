"""How far a result can be trusted: other processes on the machine, repeats and their spread, ties. Pure.

Every rule that decides whether a number is reliable lives here, so the summary, the sweep table,
the decision, the console and the report all say the same thing about the same run.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as scistats

# A run is disturbed when other processes used at least this many cores while its tasks ran: half a
# core is ten times the background of a quiet 2-core machine (0.02-0.05 cores measured), and enough
# to cost a CPU-bound run on two cores a quarter of its speedup. On a big machine a tenth of its
# cores is the bar, whichever is more.
DISTURBED_MIN_CORES = 0.5
DISTURBED_SHARE_OF_CORES = 0.1
# The least relative half-width an interval gets: repeats of a quiet run on 2 cores differ by a few
# per cent even when three of them happen to agree closely.
NOISE_FLOOR = 0.03
# With a single repeat no spread is known: differences under this share of the median are ties.
SINGLE_REPEAT_NOISE = 0.10
CONFIDENCE = 0.95
LEVELS = ("low", "medium", "high")


def disturbance_threshold(cores: int) -> float:
    """Other processes' cores from which a run is called disturbed."""
    return max(DISTURBED_MIN_CORES, DISTURBED_SHARE_OF_CORES * cores)


# A worker stopped (SIGSTOP, a terminal's Ctrl-Z, a debugger) for this share of the time its tasks ran
# lost that time to no pool and no GIL: a twentieth of the run is a tenth of a 2-core speedup's margin.
STOPPED_SHARE = 0.05


def was_stopped(stopped_s: float | None, span_s: float | None) -> bool:
    """Whether the worker stood stopped long enough to change the run's numbers."""
    return bool(stopped_s and span_s and stopped_s >= STOPPED_SHARE * span_s)


def is_disturbed(other_cores: float | None, cores: int, stopped_s: float | None = None,
                 span_s: float | None = None) -> bool | None:
    """Whether other processes took enough of the machine, or the worker stood stopped long enough, to make
    the run's speedup unreliable; None where neither was measured (a run stored before the lab sampled its
    own processes)."""
    if was_stopped(stopped_s, span_s):
        return True
    if other_cores is None or not math.isfinite(other_cores):
        return None
    return other_cores >= disturbance_threshold(cores)


# Workloads whose tasks contend on purpose (the free-threading lesson): their inflation is the finding.
CONTENDING_WORKLOADS = ("cpu_shared",)
# Tasks that each burned this much more CPU than alone did extra work (harness.analysis.summary).
INFLATION_LIMIT = 1.25


def machine_slowed(summary: dict, workload: str) -> bool:
    """Whether the run's tasks each needed much more CPU than the same task alone, on work that shares
    nothing: then the machine itself ran slower during the run (another VM on the host, an SMT sibling,
    a lower CPU frequency), which no process list inside this machine shows."""
    inflation = summary.get("work_inflation")
    return (inflation is not None and math.isfinite(inflation) and inflation > INFLATION_LIMIT
            and workload not in CONTENDING_WORKLOADS)


def disturbance_cause(summary: dict) -> str:
    """What disturbed a run, in a few words (for titles, tables and the console); "" for an undisturbed one."""
    if not summary.get("disturbed"):
        return ""
    causes = []
    if was_stopped(summary.get("worker_stopped_s"), summary.get("makespan_s")):
        causes.append(f"worker stopped {summary['worker_stopped_s']:.1f} s")
    other = summary.get("other_cores_used")
    if other is not None and other >= disturbance_threshold(int(summary.get("cores") or 1)):
        causes.append(f"{other:.1f} other cores busy")
    return ", ".join(causes)


def disturbance_note(summary: dict) -> str:
    """The run's first note when it was disturbed: what happened and why its speedup cannot be read."""
    if was_stopped(summary.get("worker_stopped_s"), summary.get("makespan_s")):
        return (f"DISTURBED: the worker was stopped (SIGSTOP, Ctrl-Z or a debugger) for "
                f"{summary['worker_stopped_s']:.1f} s of the {summary['makespan_s']:.1f} s its tasks ran: its speedup "
                "is not reliable (a stopped worker runs no task, whatever the pool or the GIL; rerun it).")
    return (f"DISTURBED: {summary['other_cores_used']:.1f} other cores were busy during this run: its speedup is not "
            "reliable (other processes competed for the CPU; rerun on a quiet machine).")


def bootstrap_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A percentile bootstrap interval of the median of repeats (scipy); NaN with fewer than two."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(data) < 2:
        return float("nan"), float("nan")
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0])
    result = scistats.bootstrap((data,), np.median, confidence_level=confidence, n_resamples=999,
                                method="percentile", random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def interval(median: float, low: float, high: float, n: int) -> tuple[float, float]:
    """The range a cell's true median plausibly lies in: its bootstrap interval widened to the noise
    floor, or the single-repeat noise either side of one measurement."""
    if n < 2 or not (math.isfinite(low) and math.isfinite(high)):
        spread = abs(median) * SINGLE_REPEAT_NOISE
        return median - spread, median + spread
    floor = abs(median) * NOISE_FLOOR
    return min(low, median - floor), max(high, median + floor)


def tied(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two intervals that overlap: the difference between the cells is smaller than their spread."""
    return a[0] <= b[1] and b[0] <= a[1]


def trust_level(n: int, quick: bool, disturbed: int, spread_warning: str = "") -> tuple[str, str]:
    """low / medium / high, and why, for a number resting on `n` repeats of which `disturbed` were disturbed."""
    if quick:
        return "low", "quick settings, a first look"
    if disturbed:
        return "low", f"{disturbed} of {n} repeats disturbed (other processes busy, or the worker stopped)"
    if n < 2:
        return "low", "one repeat: no spread known"
    if spread_warning:
        return "low", spread_warning
    if n == 2:
        return "medium", "2 repeats"
    return "high", f"{n} repeats, none disturbed"


def weakest(levels: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """The lowest of several trust levels: a comparison is as trustworthy as its weakest side."""
    return min(levels, key=lambda lw: LEVELS.index(lw[0]))


def sweep_cautions(quick: bool, repeats: int, runs: int, disturbed_cells: dict[str, int], folder: str) -> list[str]:
    """What a reader must know before reading a sweep's numbers: said at the top of its report and console."""
    out = []
    if quick:
        out.append("QUICK SWEEP: shorter runs and one repeat per cell: a first look, not numbers to keep or quote. "
                   "Rerun without QUICK for repeats and intervals.")
    elif repeats < 2:
        out.append(f"ONE REPEAT per cell: no spread is known, so differences under {SINGLE_REPEAT_NOISE:.0%} "
                   "are called ties.")
    if disturbed_cells:
        count = sum(disturbed_cells.values())
        cells = ", ".join(f"{label} ({n})" for label, n in disturbed_cells.items())
        out.append(f"DISTURBED: {count} of {runs} runs had other processes busy on the machine or their worker "
                   f"stopped ({cells}): their "
                   f"numbers are not reliable. Rerun them: python -m harness sweep --resume {folder} --rerun-disturbed")
    return out
