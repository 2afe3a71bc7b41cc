"""The order of the steps, and only that: measure -> store -> summarize -> present -> mark.

A run is measured (harness.lab.run), its raw records stored; the summary is computed from the
stored folder (harness.analysis) and written back with its analysis version; the figures are
drawn from the stored data (harness.present); only then is the run marked complete and linked
as `latest`. `summarize` repeats the middle steps on any stored folder, so old results can be
brought up to the current analysis.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tqdm import tqdm

from harness.analysis import compare as comparing
from harness.analysis import stats
from harness.analysis.summary import ANALYSIS_VERSION, summarize_run
from harness.errors import ResultsError, RunFailed, SpecError, UsageError
from harness.model.experiment import Experiment
from harness.model.spec import RunSpec, build_spec
from harness.results import is_sweep
from harness.results.files import check_writable, link_latest, owner, sweep_lock
from harness.results.run_folder import Run, RunFolder, load_run, read_manifest
from harness.judge import judge_sweep
from harness.results.sweep_folder import (load_sweep, load_sweep_manifest, new_sweep, now_utc,
                                          write_sweep_manifest, write_sweep_summary)

if TYPE_CHECKING:
    import pandas as pd

    from harness.analysis.advice import Advice
    from harness.present.live import Watch
    from harness.lab.warm import WarmWorkers

Log = Callable[[str], None]


# --- one run ---------------------------------------------------------------------------------

def run_bench(spec: RunSpec, results_dir: str | Path = "results", redis_url: str | None = None,
              log: Log = print, show_progress: bool = False, mark_latest: bool = True,
              workers: "WarmWorkers | None" = None, live: "Callable[[RunSpec], Watch] | None" = None) -> Run:
    """Measure one pool on one workload, summarize and draw it; returns the run as read back."""
    from harness.lab.run import measure  # the lab (Celery, redis) is imported only to measure

    path = measure(spec, results_dir, redis_url, log, show_progress, workers, live)
    try:
        run = summarize_folder(path, timed=True)
        status, reason = run_status(run)
    except BaseException as exc:
        # Whatever stops the work after measuring, the folder must not be left "running".
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        _mark(path, status, f"after measuring: {type(exc).__name__}: {exc}" if status == "failed"
              else "interrupted (Ctrl-C or SIGTERM)")
        if isinstance(exc, OSError):  # a full disk: the records are kept, the summary or figures are not
            raise RunFailed(f"could not write the summary or figures in {path}: {exc.strerror or exc} "
                            "(run.json marked failed; `summarize` redoes them once there is room)") from None
        raise
    _mark(path, status, reason)
    if reason:
        raise RunFailed(f"{reason} (results kept in {path}, marked failed)")
    if mark_latest:
        link_latest(path, "latest")
        update_index(path.parent)
    return load_run(path)


def update_index(results_dir: Path) -> None:
    """results/index.html brought up to date; a folder where it cannot be written keeps its runs all the same."""
    from harness.present.index import write_index

    try:
        write_index(results_dir)
    except OSError:
        pass


def run_status(run: Run) -> tuple[str, str | None]:
    """complete, or failed when a task raised: every record is kept, but the run measured something else."""
    errors = run.tasks["error"].dropna() if "error" in run.tasks else []
    if len(errors):
        return "failed", f"{len(errors)} of {len(run.tasks)} tasks raised an error, e.g. {errors.iloc[0]}"
    return "complete", None


def _mark(path: Path, status: str, reason: str | None) -> None:
    """The run's final status in run.json, with the list of files it ended with."""
    folder = RunFolder(path.parent, path.name, existing=True)
    folder.write_manifest({**read_manifest(path), "status": status, "reason": reason, "files": folder.listing()})


def summarize_folder(path: Path, timed: bool = False) -> Run:
    """Recompute a run folder's summary from its stored records, draw its figures, write run.json back."""
    from harness.present.run_figures import draw_run_figures
    from harness.present.trace import write_trace

    run = load_run(path, allow_incomplete=True)
    if run.manifest.get("partial") or run.tasks.empty:
        raise ResultsError(f"{path / 'run.json'}: run is {run.status} and did not record all its tasks; "
                           "there is nothing to summarize")
    t0 = time.monotonic()
    run.manifest["summary"] = summarize_run(run.manifest, run.tasks, run.samples, run.table("gil_oncpu.csv"),
                                            run.table("gil_contention.csv"))
    run.manifest["analysis_version"] = ANALYSIS_VERSION
    t1 = time.monotonic()
    draw_run_figures(run)
    write_trace(run)
    if timed:  # a fresh run: what summarizing and drawing cost, beside the measuring timings
        run.manifest["settings"]["harness_timings"].update(analysis_s=t1 - t0, figures_s=time.monotonic() - t1)
    folder = RunFolder.of(run)
    folder.write_manifest({**run.manifest, "files": folder.listing()})
    return run


# --- sweeps ----------------------------------------------------------------------------------

def start_sweep(experiment: Experiment, quick: bool, results_dir: str | Path,
                agree: "Callable[[list[RunSpec]], None] | None" = None) -> Path:
    """A new sweep folder with every (cell, repeat) pending, once every pool it needs can run here and
    `agree` (given every run's spec, repeats included) has not refused it."""
    from harness.lab import environment
    from harness.lab.preflight import check_can_run

    check_writable(Path(results_dir))
    version = experiment.shrunk() if quick else experiment
    specs = version.specs()
    checks = {(s.pool, s.interpreter, s.gil, s.task, s.task_path, s.args, s.kwargs): s for s in specs}
    for spec in checks.values():
        check_can_run(spec, log=print)
    if agree is not None:
        agree([spec for _ in range(version.repeats) for spec in specs])
    return new_sweep(experiment, quick, Path(results_dir), environment.collect())


def pending_specs(folder: Path) -> list[RunSpec]:
    """The spec of every run of a sweep folder that a resume would run (all but the complete ones)."""
    manifest = load_sweep_manifest(folder)
    cells = {c["cell"]: c for c in manifest["cells"]}
    return [build_spec(**cells[e["cell"]]["settings"]) for e in manifest["runs"] if e["status"] != "complete"]


def run_sweep(folder: Path, redis_url: str | None = None, log: Log = print, show_progress: bool = True,
              fresh_workers: bool = False, rerun_disturbed: bool = False, max_s: float | None = None) -> dict:
    """Run every pending or failed entry of a sweep folder (so the same call resumes one), then summarize it.

    Runs whose worker would be started the same way share a warm worker (harness.lab.warm), and run
    one after another for that: the entries are taken worker by worker, each worker's cells with
    their repeats interleaved (runs that get a fresh worker keep their place). `fresh_workers`: a
    worker of its own for every run, in the stored order. `rerun_disturbed`: then every complete run
    that other processes disturbed is run once more, and the new run replaces it in the sweep.
    `max_s`: no run starts after that many seconds; the rest stay pending, for a resume.
    """
    folder = Path(folder)
    manifest = load_sweep_manifest(folder)
    for cell in manifest["cells"]:  # every cell checked before anything starts, as for a new sweep
        try:
            build_spec(**cell["settings"])
        except (SpecError, TypeError) as exc:
            raise ResultsError(f"{folder / 'sweep.json'}: cell {cell['label']!r} cannot run: {exc}") from None
    with sweep_lock(folder):
        stop_at = None if max_s is None else time.monotonic() + max_s
        return _run_sweep(folder, manifest, redis_url, log, show_progress, fresh_workers, rerun_disturbed, stop_at)


def _run_sweep(folder: Path, manifest: dict, redis_url: str | None, log: Log, show_progress: bool,
               fresh_workers: bool, rerun_disturbed: bool, stop_at: float | None) -> dict:
    from contextlib import nullcontext

    from harness.lab.broker import Broker
    from harness.lab.warm import WarmWorkers

    todo = [e for e in manifest["runs"] if e["status"] != "complete"]
    manifest.update(status="running", owner=owner())
    write_sweep_manifest(folder, manifest)
    try:
        with Broker(redis_url) as broker, (nullcontext() if fresh_workers else WarmWorkers()) as workers:
            _run_entries(folder, manifest, todo, broker.url, workers, log, show_progress, stop_at)
            if rerun_disturbed:
                again = [e for e in manifest["runs"] if e["status"] == "complete" and _disturbed(folder, e)]
                log(f"rerunning {len(again)} disturbed run(s)")
                _run_entries(folder, manifest, again, broker.url, workers, log, show_progress, stop_at)
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        write_sweep_manifest(folder, manifest)
        raise
    failed = [e for e in manifest["runs"] if e["status"] != "complete"]
    manifest.update(status="complete" if not failed else "partial", finished_utc=now_utc())
    write_sweep_manifest(folder, manifest)
    summarize_sweep(folder)
    return load_sweep_manifest(folder)


def _disturbed(folder: Path, entry: dict) -> bool:
    return bool((read_manifest(folder / "runs" / entry["run"]).get("summary") or {}).get("disturbed"))


def _run_entries(folder: Path, manifest: dict, todo: list[dict], broker_url: str, workers: "WarmWorkers | None",
                 log: Log, show_progress: bool, stop_at: float | None) -> None:
    """Run the given entries of a sweep (worker by worker where workers are shared), recording each in sweep.json."""
    from harness.present.live import BarPostfix

    cells = {c["cell"]: c for c in manifest["cells"]}
    if workers is not None:
        todo = _worker_by_worker(todo, manifest["cells"])
    with tqdm(total=len(todo), unit="run", disable=not show_progress) as bar:
        for done, entry in enumerate(todo, start=1):
            if stop_at is not None and time.monotonic() > stop_at:
                log(f"--max-hours reached: {len(todo) - done + 1} run(s) not started, left for a resume")
                return
            cell = cells[entry["cell"]]
            bar.set_description(f"{cell['label']} #{entry['repeat'] + 1}")
            live = (lambda spec: BarPostfix(bar, spec.tasks + spec.background_tasks)) if show_progress else None
            try:
                run = run_bench(build_spec(**cell["settings"]), results_dir=folder / "runs", redis_url=broker_url,
                                log=lambda _line: None, mark_latest=False, workers=workers, live=live)
                entry.update(status="complete", run=run.run_id, reason=None)
            except RunFailed as exc:
                # A failed cell is recorded and the sweep goes on; a resume retries it.
                entry.update(status="failed", reason=str(exc))
                log(f"cell {cell['label']} repeat {entry['repeat'] + 1} failed: {exc}")
            write_sweep_manifest(folder, manifest)
            bar.update(1)
            if not show_progress:
                log(f"[{done}/{len(todo)}] {cell['label']} #{entry['repeat'] + 1}: {entry['status']}")

def _worker_by_worker(todo: list[dict], cells: list[dict]) -> list[dict]:
    """The pending entries ordered so that runs sharing a warm worker follow each other (each group at
    the place of its first entry); a run on a fresh worker keeps its own place."""
    from harness.lab.interpreters import worker_interpreter
    from harness.lab.warm import WarmWorkers
    from workloads.protocol import worker_key

    pythons, keys = {}, {}
    for cell in cells:
        spec = build_spec(**cell["settings"])
        if spec.interpreter not in pythons:
            pythons[spec.interpreter] = worker_interpreter(spec.interpreter, log=lambda _l: None).python
        shared = WarmWorkers.shareable(spec)
        keys[cell["cell"]] = worker_key(spec.to_dict(), pythons[spec.interpreter]) if shared else None
    group = [keys[e["cell"]] or ("fresh", i) for i, e in enumerate(todo)]
    first: dict = {}
    for key in group:
        first.setdefault(key, len(first))
    return [e for _, e in sorted(enumerate(todo), key=lambda ie: first[group[ie[0]]])]


def summarize_sweep(folder: Path) -> "pd.DataFrame":
    """summary.csv of a sweep (one row per cell, over repeats), from its runs' stored summaries."""
    sweep = load_sweep(folder)
    table = stats.sweep_table(sweep.entries(), sweep.axes, sweep.manifest["cells"])
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
    labels = {c["cell"]: c["label"] for c in sweep.manifest["cells"]}
    foregrounds = [(labels[e["cell"]], sweep.run(e).foreground) for e in sweep.manifest["runs"]
                   if e["status"] == "complete"]
    figures = sweep_figures(sweep.path, table, sweep.axes, sweep_cores(sweep), stats.latencies_by_cell(foregrounds),
                            "task latency, submit to finish (s)")
    return sweep_report(sweep, table, figures, advice_of(folder), judge_sweep(folder, table))


# --- the advisor's sweeps -------------------------------------------------------------------

def advice_of(folder: Path) -> "Advice | None":
    """The advice for an advisor's sweep folder, recomputed from its summary.csv; None for other sweeps."""
    from harness.analysis.advice import recommend

    sweep = load_sweep(folder)
    advisor = sweep.manifest.get("advisor")
    if not advisor or sweep.summary.empty:
        return None
    return recommend(sweep.summary, advisor["cpu_share"])


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
    figures = [run.path / name for name in ("timeline.png", "parallelism.png")]
    if not all(p.exists() for p in figures):  # a folder whose figures were never drawn, or removed
        figures = draw_run_figures(run)[:2]
    return run_report(run, figures)


def summarize(path: str | Path, log: Log = print) -> Path:
    """Recompute the summary (and figures, and for a sweep summary.csv and report) of a stored folder."""
    path = Path(path)
    if is_sweep(path):
        sweep = load_sweep(path)
        for entry in sweep.manifest["runs"]:
            if entry["status"] == "complete":
                _summarize_one(sweep.path / "runs" / entry["run"], log)
        summarize_sweep(path)
        out = _present_sweep(path)
        log(f"{path}: summary.csv recomputed by analysis version {ANALYSIS_VERSION}; report: {out}")
        return out
    _summarize_one(path, log)
    return path


def _summarize_one(path: Path, log: Log) -> None:
    before = load_run(path, allow_incomplete=True)
    after = summarize_folder(path)  # refuses a run that did not record all its tasks
    changed = comparing.summary_changes(before.summary, after.manifest["summary"])
    log(f"{path}: summary recomputed by analysis version {ANALYSIS_VERSION} (was "
        f"{before.manifest.get('analysis_version')}); {len(changed)} values changed"
        + (f" ({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''})" if changed else ""))


def compare(a: str | Path, b: str | Path) -> "pd.DataFrame":
    """Cell by cell, do two runs or two sweeps differ? (harness.analysis.compare)"""
    a, b = Path(a), Path(b)
    a_sweep, b_sweep = is_sweep(a), is_sweep(b)
    if a_sweep != b_sweep:
        raise UsageError(f"compare two runs or two sweeps, not a {'sweep' if a_sweep else 'run'} "
                         f"with a {'sweep' if b_sweep else 'run'}")
    if a_sweep:
        return comparing.compare_sweeps(load_sweep(a).entries(), load_sweep(b).entries())
    return comparing.compare_runs(load_run(a).foreground, load_run(b).foreground)
