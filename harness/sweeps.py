"""Running a sweep folder: every (cell, repeat) entry measured as a run, resumable, then summarized.

A new sweep is checked before its folder is written (every pool it needs can run here, and a long
one was agreed to: harness.model.estimate); `run_sweep` runs whatever is not complete yet, so the
same call resumes one, worker by worker where runs can share a warm worker, and records each
entry's outcome in sweep.json as it goes. Each run goes through harness.pipeline.run_bench; the
sweep's summary.csv is harness.pipeline.summarize_sweep's.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from harness.errors import ResultsError, RunFailed, SpecError
from harness.model.experiment import Experiment, work_key
from harness.model.pools import BASELINE_POOL
from harness.model.spec import RunSpec, build_spec
from harness.model.workloads import workload
from harness.pipeline import Log, run_bench, summarize_sweep
from harness.results.files import check_writable, owner, sweep_lock
from harness.results.records import Cell, Status, SweepEntry, SweepManifest
from harness.results.run_folder import read_manifest
from harness.results.sweep_folder import load_sweep_manifest, new_sweep, now_utc, write_sweep_manifest

if TYPE_CHECKING:
    from harness.lab.services.rabbitmq import TaskBroker
    from harness.lab.warm import WarmWorkers


def start_sweep(experiment: Experiment, quick: bool, results_dir: str | Path,
                agree: Callable[[list[RunSpec]], None] | None = None) -> Path:
    """A new sweep folder with every (cell, repeat) pending, once every pool it needs can run here and
    `agree` (given every run's spec, repeats included) has not refused it."""
    from harness.lab import environment
    from harness.lab.preflight import check_can_run, check_fleet_run

    check_writable(Path(results_dir))
    version = experiment.shrunk() if quick else experiment
    specs = version.specs()
    checks = {(s.pool, s.interpreter, s.gil, s.task, s.task_path, s.args, s.kwargs, s.app, s.calls, s.routes,
               s.driver, s.broker, s.hosts): s for s in specs}
    pythons = {}
    for spec in checks.values():  # HOSTS: checked by their agents at each run's start; here, that they answer
        check = check_fleet_run if spec.hosts else check_can_run
        pythons[spec.interpreter] = check(spec, log=print).interpreter.python
    if agree is not None:
        agree([spec for _ in range(version.repeats) for spec in specs])
    return new_sweep(experiment, quick, Path(results_dir), environment.collect(), calibrate_once(specs, pythons))


def calibrate_once(specs: list[RunSpec], pythons: dict[str | None, str]) -> dict[str, dict]:
    """One rate per (workload, interpreter, GIL) the sweep's fixed work needs, measured now, before any
    cell: every cell then sizes the same work from it (harness.lab.calibrate), so makespans and tasks/s
    compare across cells, and a resume reuses it."""
    from harness.lab.calibrate import Calibrations

    rates = Calibrations(given={})  # a sweep's: each rate missing from it is measured once and added
    for spec in specs:
        for name in (spec.workload, spec.background):
            if name and workload(name).calibration is not None:
                rates.rate(workload(name), pythons[spec.interpreter], spec.gil)
    return rates.given


def pending_specs(folder: Path) -> list[RunSpec]:
    """The spec of every run of a sweep folder that a resume would run (all but the complete ones)."""
    manifest = load_sweep_manifest(folder)
    return [build_spec(**manifest.cell(e.cell).settings) for e in manifest.runs if e.status != Status.COMPLETE]


def run_sweep(folder: Path, redis_url: str | None = None, log: Log = print, show_progress: bool = True,
              fresh_workers: bool = False, rerun_disturbed: bool = False,
              max_s: float | None = None) -> SweepManifest:
    """Run every pending or failed entry of a sweep folder (so the same call resumes one), then summarize it.

    Runs whose worker would be started the same way share a warm worker (harness.lab.warm), and run
    in the order _plan_order gives (each work beside its solo baseline, a warm worker per pool; or worker
    by worker where there are too many worker settings), every cell's fixed work sized from the sweep's
    one rate per workload and interpreter. `fresh_workers`: a worker of its own for every run, in the
    stored order. `rerun_disturbed`: then every complete run that was disturbed or unsteady
    (harness.analysis.trust.unreliable) is run once more, and the new run replaces it in the sweep.
    `max_s`: no run starts after that many seconds; the rest stay pending, for a resume.
    """
    folder = Path(folder)
    manifest = load_sweep_manifest(folder)
    for cell in manifest.cells:  # every cell checked before anything starts, as for a new sweep
        try:
            build_spec(**cell.settings)
        except (SpecError, TypeError) as exc:
            raise ResultsError(f"{folder / 'sweep.json'}: cell {cell.label!r} cannot run: {exc}") from None
    with sweep_lock(folder):
        stop_at = None if max_s is None else time.monotonic() + max_s
        return _run_sweep(folder, manifest, redis_url, log, show_progress, fresh_workers, rerun_disturbed, stop_at)


def _run_sweep(folder: Path, manifest: SweepManifest, redis_url: str | None, log: Log, show_progress: bool,
               fresh_workers: bool, rerun_disturbed: bool, stop_at: float | None) -> SweepManifest:
    from harness.lab.services.rabbitmq import rabbit_broker
    from harness.lab.services.redis_broker import RedisBroker
    from harness.lab.warm import WarmWorkers

    todo = [e for e in manifest.runs if e.status != Status.COMPLETE]
    manifest.status, manifest.owner = Status.RUNNING, owner()
    write_sweep_manifest(folder, manifest)
    try:
        order = _plan_order(todo, manifest.cells, fresh_workers)
        manifest.order = order.how
        write_sweep_manifest(folder, manifest)
        # BROKER=rabbitmq in any cell: one node for all of them, started once (a node takes seconds), as the warm
        # workers are shared.
        rabbit_cells = any(manifest.cell(e.cell).settings.get("broker") == "rabbitmq" for e in todo)
        with RedisBroker(redis_url) as broker, (rabbit_broker() if rabbit_cells else nullcontext()) as rabbit, \
                (nullcontext() if fresh_workers else WarmWorkers(order.keep)) as workers:
            assert broker.url is not None  # a started broker has its URL (RedisBroker.start)
            _run_entries(folder, manifest, order.entries, broker.url, workers, log, show_progress, stop_at, rabbit)
            if rerun_disturbed:
                again = [e for e in manifest.runs if e.status == Status.COMPLETE and _disturbed(folder, e)]
                log(f"rerunning {len(again)} disturbed run(s)")
                _run_entries(folder, manifest, again, broker.url, workers, log, show_progress, stop_at, rabbit)
    except KeyboardInterrupt:
        manifest.status = Status.INTERRUPTED
        write_sweep_manifest(folder, manifest)
        raise
    failed = [e for e in manifest.runs if e.status != Status.COMPLETE]
    manifest.status = Status.PARTIAL if failed else Status.COMPLETE
    manifest.finished_utc = now_utc()
    write_sweep_manifest(folder, manifest)
    summarize_sweep(folder)
    return load_sweep_manifest(folder)


def _disturbed(folder: Path, entry: SweepEntry) -> bool:
    """Whether a run's numbers cannot be read: disturbed or unsteady (harness.analysis.trust.unreliable)."""
    from harness.analysis.trust import unreliable

    return unreliable(read_manifest(folder / "runs" / str(entry.run)).summary)


def _run_entries(folder: Path, manifest: SweepManifest, todo: list[SweepEntry], broker_url: str,
                 workers: WarmWorkers | None, log: Log, show_progress: bool, stop_at: float | None,
                 rabbit: TaskBroker | None = None) -> None:
    """Run the given entries of a sweep (worker by worker where workers are shared), recording each in sweep.json."""
    from harness.lab.calibrate import Calibrations
    from harness.present.live import BarPostfix

    # The sweep's own rates (none for one stored before they were: then this machine's recent ones).
    calibrations = Calibrations(given=manifest.calibrations or None)
    with tqdm(total=len(todo), unit="run", disable=not show_progress) as bar:
        for done, entry in enumerate(todo, start=1):
            if stop_at is not None and time.monotonic() > stop_at:
                log(f"--max-hours reached: {len(todo) - done + 1} run(s) not started, left for a resume")
                return
            cell = manifest.cell(entry.cell)
            bar.set_description(f"{cell.label} #{entry.repeat + 1}")
            live = (lambda spec: BarPostfix(bar, spec.tasks + spec.background_tasks)) if show_progress else None
            try:
                run = run_bench(build_spec(**cell.settings), results_dir=folder / "runs", redis_url=broker_url,
                                log=lambda _line: None, mark_latest=False, workers=workers, live=live,
                                calibrations=calibrations, rabbit=rabbit)
                entry.status, entry.run, entry.reason = Status.COMPLETE, run.run_id, None
            except RunFailed as exc:
                # A failed cell is recorded and the sweep goes on; a resume retries it.
                entry.status, entry.reason = Status.FAILED, str(exc)
                log(f"cell {cell.label} repeat {entry.repeat + 1} failed: {exc}")
            if calibrations.given != manifest.calibrations:  # a rate measured at a resume: kept for the rest
                manifest.calibrations = dict(calibrations.given)
            write_sweep_manifest(folder, manifest)
            bar.update(1)
            if not show_progress:
                log(f"[{done}/{len(todo)}] {cell.label} #{entry.repeat + 1}: {entry.status}")

# Warm workers a sweep keeps alive at once so that its runs can alternate pools: enough for the pools that
# stay warm (prefork, threads, solo, the interpreters pool) at one setting each.
MAX_WARM = 4


@dataclass(frozen=True)
class Order:
    entries: list[SweepEntry]
    keep: int  # warm workers kept alive at once
    how: str   # said in sweep.json and the report


def _plan_order(todo: list[SweepEntry], cells: list[Cell], fresh_workers: bool) -> Order:
    """The order a sweep's pending runs are run in, so that speedups and cross-cell ratios survive drift.

    Repeats are interleaved (every cell once, then again). Within a repeat, the cells of one work run
    together with that work's solo baseline, solo first in one repeat and last in the next (S A B, B A S,
    ...), so each cell's run is a few runs from a solo run of the same work (harness.analysis.stats compares
    them). That needs a warm worker per pool at once; a sweep with more worker settings than MAX_WARM runs
    worker by worker instead (its solo runs then lie further away, which the report says)."""
    if fresh_workers:
        return Order(todo, 1, "as stored (a fresh worker for every run)")
    keys = _warm_keys(cells)
    shared = {k for e in todo if (k := keys[e.cell]) is not None}
    if len(shared) > MAX_WARM:
        return Order(_worker_by_worker(todo, keys), 1,
                     f"worker by worker ({len(shared)} worker settings, more than {MAX_WARM} kept warm at once)")
    settings = {c.cell: c.settings for c in cells}
    pools = {c.cell: build_spec(**c.settings).pool for c in cells}
    by_repeat: dict[int, list[SweepEntry]] = {}
    for e in todo:
        by_repeat.setdefault(e.repeat, []).append(e)
    ordered = []
    for repeat, entries in sorted(by_repeat.items()):
        works: dict[tuple, list[SweepEntry]] = {}
        for e in entries:
            works.setdefault(work_key(settings[e.cell]), []).append(e)
        for group in works.values():
            group.sort(key=lambda e: pools[e.cell] != BASELINE_POOL)  # solo first, else as stored
            ordered += group if repeat % 2 == 0 else group[::-1]
    return Order(ordered, max(1, len(shared)), "each work with its solo baseline, solo first then last in "
                                               "alternate repeats (S A B, B A S)")


def _warm_keys(cells: list[Cell]) -> dict[int, tuple | None]:
    """Per cell: the warm worker it would run on (None: a fresh worker of its own)."""
    from harness.lab.interpreters import worker_interpreter
    from harness.lab.warm import WarmWorkers
    from workloads.protocol import worker_key

    pythons, keys = {}, {}
    for cell in cells:
        spec = build_spec(**cell.settings)
        if spec.interpreter not in pythons:
            pythons[spec.interpreter] = worker_interpreter(spec.interpreter, log=lambda _l: None).python
        keys[cell.cell] = worker_key(spec.to_dict(), pythons[spec.interpreter]) \
            if WarmWorkers.shareable(spec) else None
    return keys


def _worker_by_worker(todo: list[SweepEntry], keys: dict[int, tuple | None]) -> list[SweepEntry]:
    """The pending entries ordered so that runs sharing a warm worker follow each other (each group at
    the place of its first entry); a run on a fresh worker keeps its own place."""
    group = [keys[e.cell] or ("fresh", i) for i, e in enumerate(todo)]
    first: dict = {}
    for key in group:
        first.setdefault(key, len(first))
    return [e for _, e in sorted(enumerate(todo), key=lambda ie: first[group[ie[0]]])]
