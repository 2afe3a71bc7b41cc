"""The order of the steps, and only that: measure -> store -> summarize -> present -> mark.

A run is measured (harness.lab.run), its raw records stored; the summary is computed from the
stored folder (harness.analysis) and written back with its analysis version; the figures are
drawn from the stored data (harness.present); only then is the run marked complete and linked
as `latest`. `summarize` repeats the middle steps on any stored folder, so old results can be
brought up to the current analysis. A sweep's runs are run by harness.sweeps, each through run_bench;
its summary and report are made here.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.analysis import compare as comparing
from harness.analysis import stats
from harness.analysis.summary import ANALYSIS_VERSION, summarize_run
from harness.errors import ResultsError, RunFailed, UsageError
from harness.judge import judge_sweep
from harness.model.spec import RunSpec
from harness.results import is_sweep
from harness.results.files import link_latest
from harness.results.paths import LATEST_NAME, RESULTS_DIR
from harness.results.records import Status
from harness.results.run_folder import Run, RunFolder, load_run, read_manifest
from harness.results.sweep_folder import load_sweep, write_sweep_summary

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis.advice import Advice
    from harness.lab.calibrate import Calibrations
    from harness.lab.services.rabbitmq import TaskBroker
    from harness.lab.warm import WarmWorkers
    from harness.present.live import Watch

Log = Callable[[str], None]
# The reason of a run that measured everything but failed while being summarized or drawn (a full disk):
# `summarize` can finish such a run.
AFTER_MEASURING = "after measuring: "


# --- one run ---------------------------------------------------------------------------------

def run_bench(spec: RunSpec, results_dir: str | Path = RESULTS_DIR, redis_url: str | None = None,
              log: Log = print, show_progress: bool = False, mark_latest: bool = True,
              workers: WarmWorkers | None = None, live: Callable[[RunSpec], Watch] | None = None,
              calibrations: Calibrations | None = None, rabbit: TaskBroker | None = None) -> Run:
    """Measure one pool on one workload, summarize and draw it; returns the run as read back. `rabbit`: a RabbitMQ
    node already running (a sweep's) for a run with BROKER=rabbitmq; without it such a run starts its own."""
    from harness.lab.run import measure  # the lab (Celery, redis) is imported only to measure

    path = measure(spec, results_dir, redis_url, log, show_progress, workers, live, calibrations, rabbit)
    try:
        run = summarize_folder(path, timed=True)
        status, reason = run_status(run)
    except BaseException as exc:
        # Whatever stops the work after measuring, the folder must not be left "running".
        status = Status.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else Status.FAILED
        _mark(path, status, f"{AFTER_MEASURING}{type(exc).__name__}: {exc}" if status == Status.FAILED
              else "interrupted (Ctrl-C or SIGTERM)")
        if isinstance(exc, OSError):  # a full disk: the records are kept, the summary or figures are not
            raise RunFailed(f"could not write the summary or figures in {path}: {exc.strerror or exc} "
                            "(run.json marked failed; `summarize` redoes them, and completes the run, once there is "
                            "room)") from None
        raise
    _mark(path, status, reason)
    if reason:
        raise RunFailed(f"{reason} (results kept in {path}, marked failed)")
    if mark_latest:
        link_latest(path, LATEST_NAME)
        update_index(path.parent)
    return load_run(path)


def update_index(results_dir: Path) -> None:
    """results/index.html brought up to date; a folder where it cannot be written keeps its runs all the same."""
    from harness.present.index import write_index

    try:
        write_index(results_dir)
    except OSError:
        pass


def run_status(run: Run) -> tuple[Status, str | None]:
    """complete, or failed when a task raised: every record is kept, but the run measured something else."""
    if "error" in run.tasks:
        errors = run.tasks["error"].dropna()
        if len(errors):
            return Status.FAILED, f"{len(errors)} of {len(run.tasks)} tasks raised an error, e.g. {errors.iloc[0]}"
    return Status.COMPLETE, None


def _mark(path: Path, status: Status, reason: str | None) -> None:
    """The run's final status in run.json, with the list of files it ended with."""
    folder = RunFolder(path.parent, path.name, existing=True)
    folder.write_manifest(read_manifest(path).replace(status=status, reason=reason, files=folder.listing()))


def summarize_folder(path: Path, timed: bool = False) -> Run:
    """Recompute a run folder's summary from its stored records, draw its figures, write run.json back."""
    from harness.present.run_figures import draw_run_figures
    from harness.present.trace import write_trace

    run = load_run(path, allow_incomplete=True)
    # A run stopped before all its tasks reported (harness.lab.run._write_partial) says how far it got.
    if run.manifest.partial or run.tasks.empty:
        raise ResultsError(f"{path / 'run.json'}: run is {run.status} and did not record all its tasks; "
                           "there is nothing to summarize")
    t0 = time.monotonic()
    summary = summarize_run(run.manifest, run.tasks, run.samples, run.table("gil_oncpu.csv"),
                            run.table("gil_contention.csv"), queue=run.queue, lag=run.table("loop_lag.csv"))
    run.manifest = run.manifest.replace(summary=summary, analysis_version=ANALYSIS_VERSION)  # the figures read it
    t1 = time.monotonic()
    draw_run_figures(run)
    write_trace(run)
    if timed:  # a fresh run: what summarizing and drawing cost, beside the measuring timings
        run.manifest.settings.harness_timings.update(analysis_s=t1 - t0, figures_s=time.monotonic() - t1)
    folder = RunFolder.of(run)
    folder.write_manifest(run.manifest.replace(files=folder.listing()))
    return run


# --- a sweep's summary and report -----------------------------------------------------------

def summarize_sweep(folder: Path) -> pd.DataFrame:
    """summary.csv of a sweep (one row per cell, over repeats), from its runs' stored summaries."""
    sweep = load_sweep(folder)
    table = stats.sweep_table(sweep.entries(), sweep.axes, sweep.manifest.cells)
    write_sweep_summary(folder, table, ANALYSIS_VERSION)
    return table


def _present_sweep(folder: Path) -> Path:
    """The sweep's figures and report.html, from summary.csv and the runs' stored tasks."""
    from harness.present.report import sweep_cores, sweep_report
    from harness.present.sweep_figures import sweep_figures

    sweep = load_sweep(folder)
    table = sweep.summary
    if table.empty and sweep.run_paths:  # a version 1 sweep reported before: summary.csv never written
        table = summarize_sweep(folder)
    labels = sweep.manifest.labels
    foregrounds = [(labels[e.cell], sweep.run(e).foreground) for e in sweep.manifest.runs
                   if e.status == Status.COMPLETE]
    figures = sweep_figures(sweep.path, table, sweep.axes, sweep_cores(sweep), stats.latencies_by_cell(foregrounds),
                            "task latency, submit to finish (s)")
    rated = json.loads((folder / "rate.json").read_text()) if (folder / "rate.json").exists() else None
    if (folder / "rate.png").exists():  # the advice at a rate's capacity searches (harness.advisor.advise_at_rate)
        figures.append(folder / "rate.png")
    return sweep_report(sweep, table, figures, advice_of(folder), judge_sweep(folder, table), rated)


# --- the advisor's sweeps -------------------------------------------------------------------

def advice_of(folder: Path) -> Advice | None:
    """The advice for an advisor's sweep folder, recomputed from its summary.csv; None for other sweeps."""
    from harness.analysis.advice import recommend

    sweep = load_sweep(folder)
    advisor = sweep.manifest.advisor
    if not advisor or sweep.summary.empty:
        return None
    if advisor.cpu_share is None:
        raise ResultsError(f"{folder / 'sweep.json'}: the advisor's record has no cpu_share: the file is damaged")
    fixed = (sweep.manifest.experiment or {}).get("fixed") or {}
    advice = recommend(sweep.summary, advisor.cpu_share, advisor.split, advisor.app, fixed.get("broker") or "redis")
    advice.alone_per_task = advisor.per_task
    return advice


# --- commands on stored folders --------------------------------------------------------------

def report(path: str | Path) -> Path:
    """report.html for a run or sweep folder, drawn from its stored data; a folder it cannot write into is
    one line (exit 2), not a traceback."""
    try:
        return _report(Path(path))
    except OSError as exc:
        raise ResultsError(f"{exc.filename or path}: cannot write the report there ({exc.strerror or exc})") from None


def _report(path: Path) -> Path:
    from harness.present.report import run_report
    from harness.present.run_figures import draw_run_figures

    path = Path(path)
    if is_sweep(path):
        return _present_sweep(path)
    run = load_run(path)
    names = (("timeline.png", "parallelism.png") + (("per_task.png",) if run.summary and run.summary.per_task else ())
             + (("latency-spectrum.png", "queue.png") if run.summary and run.summary.load else ()))
    figures = [run.path / name for name in names]
    if not all(p.exists() for p in figures):  # a folder whose figures were never drawn, or removed
        figures = [p for p in draw_run_figures(run) if p.name in names]
    return run_report(run, figures)


def summarize(path: str | Path, log: Log = print) -> Path:
    """Recompute the summary (and figures, and for a sweep summary.csv and report) of a stored folder."""
    path = Path(path)
    if is_sweep(path):
        sweep = load_sweep(path)
        for entry in sweep.complete:
            _summarize_one(sweep.run_path(entry), log)
        summarize_sweep(path)
        out = _present_sweep(path)
        log(f"{path}: summary.csv recomputed by analysis version {ANALYSIS_VERSION}; report: {out}")
        return out
    _summarize_one(path, log)
    return path


def _summarize_one(path: Path, log: Log) -> None:
    before = load_run(path, allow_incomplete=True)
    after = summarize_folder(path)  # refuses a run that did not record all its tasks
    if before.status == Status.FAILED and (before.manifest.reason or "").startswith(AFTER_MEASURING):
        status, reason = run_status(after)  # its records were whole: now summarized and drawn, it is complete
        _mark(path, status, reason)
        log(f"{path}: was failed {before.manifest.reason!r}; now {status}")
    changed = comparing.summary_changes(before.summary, after.summary)
    log(f"{path}: summary recomputed by analysis version {ANALYSIS_VERSION} (was "
        f"{before.manifest.analysis_version}); {len(changed)} values changed"
        + (f" ({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''})" if changed else ""))


def compare(a: str | Path, b: str | Path) -> pd.DataFrame:
    """Cell by cell, do two runs or two sweeps differ? (harness.analysis.compare)"""
    a, b = Path(a), Path(b)
    a_sweep, b_sweep = is_sweep(a), is_sweep(b)
    if a_sweep != b_sweep:
        raise UsageError(f"compare two runs or two sweeps, not a {'sweep' if a_sweep else 'run'} "
                         f"with a {'sweep' if b_sweep else 'run'}")
    if a_sweep:
        return comparing.compare_sweeps(load_sweep(a).entries(), load_sweep(b).entries())
    return comparing.compare_runs(load_run(a).foreground, load_run(b).foreground)
