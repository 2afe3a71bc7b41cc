"""How far a result can be trusted: other processes on the machine, repeats and their spread, ties. Pure.

Every rule that decides whether a number is reliable lives here, so the summary, the sweep table,
the decision, the console and the report all say the same thing about the same run.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from harness.results.records import Summary

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


# Tasks that each burned this much more CPU than the same task alone (or this much less: 1 / the limit) did
# other work than alone: on work that shares nothing, the machine ran at another speed during the batch.
INFLATION_LIMIT = 1.25
# A run is UNSTEADY when its tasks run alone (before, between and after the batch) spread by more than this
# share of their median. Measured on this 2-core VM (README, "How far to trust a number"): a 0.25 s task
# timed alone three times 1.3 s apart spread by 0.19 at the median and 0.41 at p90 while the machine was
# busy, and by 0.02-0.07 in quiet stretches. The reference sets every speedup, so a reference uncertain by
# more than the 10 % a reader reads into "1.8x against 2x" is no reference.
DRIFT_LIMIT = 0.10
# ... or when the hypervisor took this many cores for other guests while the tasks ran (/proc/stat's steal):
# a tenth of a core is a tenth of a one-core task's speed, the same margin; 0.00-0.15 measured here.
STEAL_LIMIT_CORES = 0.10
# A speedup above its pool's physical ideal by more than the measured drift (at least this share of it,
# the resolution of a makespan against one task alone) is no finding: the reference was unsteady.
ABOVE_IDEAL_FLOOR = 0.05


def speed_change(summary: Summary) -> str:
    """"slower" or "faster" when the run's tasks each needed far more (or less) CPU than the same task alone,
    on work that shares nothing (summary.shares_nothing: harness.analysis.summary): then the machine
    itself ran at another speed during the batch (another VM on the host, an SMT sibling, the CPU's clock),
    which no process list inside this machine shows; "" otherwise."""
    inflation = summary.work_inflation
    if inflation is None or not math.isfinite(inflation) or not summary.shares_nothing:
        return ""
    return "slower" if inflation > INFLATION_LIMIT else "faster" if inflation < 1 / INFLATION_LIMIT else ""


def above_ideal(summary: Summary) -> bool:
    """Whether the speedup exceeds the pool's physical ideal by more than the run's measured drift: a number
    beyond physics, which only an unsteady reference gives. Only a speedup against a task timed alone: a
    wall-clock spin's "speedup" against its nominal duration is phantom parallelism, said as such."""
    speedup, ideal = summary.speedup, summary.ideal_speedup
    if speedup is None or ideal is None or not math.isfinite(speedup) or not ideal or summary.alone_s is None:
        return False
    margin = max(summary.machine_drift or 0.0, ABOVE_IDEAL_FLOOR)
    return speedup > ideal * (1 + margin)


def unsteady_causes(summary: Summary) -> list[str]:
    """Why the machine's speed cannot be trusted to have held during the run, each in a few words: the
    hypervisor, or speed drift (seen in the tasks run alone, in the batch's CPU, or in a speedup beyond
    physics); [] for a steady run."""
    causes = []
    drift = summary.machine_drift
    runs = summary.alone_runs_s or []
    if drift is not None and drift > DRIFT_LIMIT:
        causes.append(f"speed drift: one task alone took {min(runs):.3g}-{max(runs):.3g} s ({drift:.0%} apart)")
    steal = summary.steal_cores
    if steal is not None and steal > STEAL_LIMIT_CORES:
        causes.append(f"hypervisor: it took {steal:.2f} cores for other guests (steal)")
    change = speed_change(summary)
    if change:
        causes.append(f"speed drift: the machine ran {change} during the batch than alone (each task needed "
                      f"{summary.work_inflation:.2f}x its CPU alone, on work that shares nothing: its clock, "
                      "another VM on the host, not contention)")
    if above_ideal(summary):
        causes.append(f"speedup {summary.speedup:.2f}x above the physical ideal {summary.ideal_speedup:g}x: "
                      "the reference was unsteady")
    return causes


def unsteadiness(summary: Summary) -> dict[str, Any]:
    """The summary's UNSTEADY mark and its cause (its fields `unsteady` and `unsteady_cause`); None where nothing
    of the machine's speed was measured (a run stored before analysis 6, with one task alone and no steal)."""
    causes = unsteady_causes(summary)
    measured = summary.machine_drift is not None or summary.steal_cores is not None
    return {"unsteady": True if causes else (False if measured else None), "unsteady_cause": "; ".join(causes)}


def unsteady_note(summary: Summary) -> str:
    """The run's note when the machine's speed changed under it: what was seen, and why its numbers cannot be read."""
    return (f"UNSTEADY: {summary.unsteady_cause}. The machine's speed changed during this run, so its speedup "
            "and times rest on an unsteady reference; rerun it (the lab measures one task alone before and "
            "after the batch to see this).")


def departure(summary: Summary | None) -> float:
    """How far a run's measurement is from steady, as one share: the largest of its drift, its work inflation's
    distance from 1 on work that shares nothing (in either direction), its speedup's excess over the ideal, and
    its steal in cores; 1 more when it was disturbed. 0 for a steady, quiet run. Of several measurements of the
    same thing, the one with the least is the one to read. A run without a summary measured nothing: 0."""
    if summary is None:
        return 0.0
    parts = [summary.machine_drift or 0.0, summary.steal_cores or 0.0]
    inflation = summary.work_inflation
    if summary.shares_nothing and inflation and math.isfinite(inflation) and inflation > 0:
        parts.append(abs(math.log(inflation)))
    speedup, ideal = summary.speedup, summary.ideal_speedup
    if summary.alone_s is not None and ideal and speedup is not None and math.isfinite(speedup):
        parts.append(max(0.0, speedup / ideal - 1))
    return max(parts) + (1.0 if summary.disturbed else 0.0)


def unreliable(summary: Summary | None) -> bool:
    """Whether a run's numbers cannot be read: DISTURBED (other processes, a stopped worker) or UNSTEADY (the
    machine's own speed). What --rerun-disturbed reruns, and what lowers a cell's trust. A run without a
    summary is neither."""
    return summary is not None and bool(summary.disturbed or summary.unsteady)


def disturbance_cause(summary: Summary | None) -> str:
    """What disturbed a run or made it unsteady, in a few words (for titles, tables and the console); "" for a
    run that was neither, or has no summary."""
    if summary is None:
        return ""
    causes = []
    if summary.disturbed:
        if was_stopped(summary.worker_stopped_s, summary.makespan_s):
            causes.append(f"worker stopped {summary.worker_stopped_s:.1f} s")
        other = summary.other_cores_used
        if other is not None and other >= disturbance_threshold(int(summary.cores or 1)):
            causes.append(f"{other:.1f} other cores busy")
    if summary.unsteady:
        causes.append(summary.unsteady_cause or "unsteady")
    return ", ".join(causes)


def disturbance_note(summary: Summary) -> str:
    """The run's first note when it was disturbed: what happened and why its speedup cannot be read."""
    if was_stopped(summary.worker_stopped_s, summary.makespan_s):
        return (f"DISTURBED: the worker was stopped (SIGSTOP, Ctrl-Z or a debugger) for "
                f"{summary.worker_stopped_s:.1f} s of the {summary.makespan_s:.1f} s its tasks ran: its speedup "
                "is not reliable (a stopped worker runs no task, whatever the pool or the GIL; rerun it).")
    return (f"DISTURBED: {summary.other_cores_used:.1f} other cores were busy during this run: its speedup is not "
            "reliable (other processes competed for the CPU; rerun on a quiet machine).")


def bootstrap_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """A percentile bootstrap interval of the median of repeats (scipy); NaN with fewer than two."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(data) < 2:
        return float("nan"), float("nan")
    if np.ptp(data) == 0:
        return float(data[0]), float(data[0])
    from scipy import stats as scistats  # here, not at import: scipy.stats takes a second to load

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


def trust_level(n: int, quick: bool, disturbed: int, spread_warning: str = "", unsteady: int = 0) -> tuple[str, str]:
    """low / medium / high, and why, for a number resting on `n` repeats of which `disturbed` were disturbed
    and `unsteady` ran while the machine's speed changed."""
    if quick:
        return "low", "quick settings, a first look"
    if disturbed:
        return "low", f"{disturbed} of {n} repeats disturbed (other processes busy, or the worker stopped)"
    if unsteady:
        return "low", f"{unsteady} of {n} repeats unsteady (the machine's speed changed under them)"
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


def sweep_cautions(quick: bool, repeats: int, runs: int, disturbed_cells: dict[str, int], folder: str,
                   unsteady_cells: dict[str, int] | None = None, calibrated_once: bool = True) -> list[str]:
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
    if unsteady_cells:
        count = sum(unsteady_cells.values())
        cells = ", ".join(f"{label} ({n})" for label, n in unsteady_cells.items())
        out.append(f"UNSTEADY: {count} of {runs} runs ran while the machine's own speed changed (the hypervisor, or "
                   f"speed drift: {cells}): their speedups rest on an unsteady reference and their times cannot be "
                   f"compared with other cells'. Rerun them: python -m harness sweep --resume {folder} "
                   "--rerun-disturbed")
    if not calibrated_once:
        out.append("DIFFERENT WORK PER CELL: this sweep was stored before cells shared one calibration, so each run "
                   "sized its own fixed work: compare speedups, not makespans or tasks/s, across cells.")
    return out
