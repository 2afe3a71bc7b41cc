"""`python -m harness`: a thin command line. Subcommands dispatch to cmd_* functions.

The bench flags are derived from harness.model.settings.SETTINGS; errors are mapped to exit codes
in one place, `main`, from the code each error class carries (harness.errors).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from harness.errors import EXIT_INTERRUPTED, EXIT_USAGE, LabError, UsageError
from harness.model.settings import SETTINGS, from_environment


STRICT_HELP = ("measure the machine for a second first and refuse to start (exit 3) if other processes are busy "
               "enough to disturb the run")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message names what was wrong.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


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


def _strict(args: argparse.Namespace) -> None:
    if getattr(args, "strict", False):
        from harness.lab.machine_load import refuse_if_busy

        refuse_if_busy()


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.model.spec import build_spec
    from harness.pipeline import run_bench
    from harness.present.console import summary_table

    raw = from_environment(dict(os.environ)) if args.from_make else {}
    raw.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None})
    spec = build_spec(**raw)
    _strict(args)
    run = run_bench(spec, results_dir=args.results_dir, log=_log, show_progress=sys.stderr.isatty())
    if args.json:
        _print_json({"run": run.run_id, "path": str(run.path), "status": run.manifest["status"], "spec": run.spec,
                     "summary": run.summary, "machine_load": run.manifest["settings"].get("machine_load")})
    else:
        print(summary_table(run))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.analysis.trust import sweep_cautions
    from harness.model.experiment import load_experiment
    from harness.judge import judge_sweep
    from harness.pipeline import report, run_sweep, start_sweep
    from harness.results.files import link_latest
    from harness.results.sweep_folder import load_sweep, load_sweep_manifest

    if args.resume:
        folder = Path(args.resume)
        load_sweep_manifest(folder)
    elif args.file is None:
        raise UsageError("give an experiment file (e.g. experiments/pools.toml) or --resume <sweep folder>")
    else:
        experiment = load_experiment(args.file)
        _strict(args)
        folder = start_sweep(experiment, args.quick, args.results_dir)
    if args.resume:
        _strict(args)
    args.interrupted = f"interrupted: resume with `python -m harness sweep --resume {folder}`"
    _log(f"sweep folder: {folder}")
    started = load_sweep_manifest(folder)
    for line in sweep_cautions(bool(started.get("quick")), int(started["experiment"]["repeats"]), 0, {}, str(folder)):
        _log(f"caution: {line}")
    manifest = run_sweep(folder, log=_log, show_progress=sys.stderr.isatty(), fresh_workers=args.fresh_workers,
                         rerun_disturbed=args.rerun_disturbed)
    path = report(folder)
    link_latest(folder, "latest-sweep")
    judgement = judge_sweep(folder)
    done = sum(e["status"] == "complete" for e in manifest["runs"])
    if args.json:
        _print_json({"sweep": str(folder), "status": manifest["status"], "runs_complete": done,
                     "runs": len(manifest["runs"]), "report": str(path), "cautions": judgement.cautions,
                     "decisions": [d.to_dict() for d in judgement.decisions],
                     "cells": load_sweep(folder).summary.to_dict("records")})
    else:
        for line in judgement.cautions:
            print(f"caution: {line}")
        for decision in judgement.decisions:
            print(f"decision: {decision.line()}")
        print(f"{manifest['status']}: {done} of {len(manifest['runs'])} runs; report: {path}")
    if manifest["status"] != "complete":
        _log(f"resume with: python -m harness sweep --resume {folder}")
        return 1
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    from harness.advisor import advice_of, advise
    from harness.pipeline import report
    from harness.present.console import advice_text

    raw = from_environment(dict(os.environ)) if args.from_make else {}
    raw.update({name: getattr(args, name) for name in SETTINGS if getattr(args, name, None) is not None})
    _strict(args)
    folder = advise(raw, results_dir=args.results_dir, quick=args.quick, log=_log, show_progress=sys.stderr.isatty())
    report(folder)
    advice = advice_of(folder)
    if advice is None:
        print(f"no setting of the advisor's sweep completed; see {folder}/report.html")
        return 1
    print(advice_text(advice, folder))
    return 0


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
            _log(f"caution: {disturbed} of {total} runs in {side} were DISTURBED by other processes: "
                 "a difference may be theirs")
    if args.json:
        _print_json({"a": args.a, "b": args.b, "different": not differences(table).empty, "result": line,
                     "rows": table.to_dict("records")})
    else:
        print(format_comparison(table))
        print(line)
    return EXIT_DIFFERENT if not differences(table).empty and not args.exit_zero else 0


def cmd_lesson(args: argparse.Namespace) -> int:
    from harness.course.lessons import LESSONS, run_lesson

    number = int(args.number) if args.number.strip().isdigit() else None
    if number not in LESSONS:
        raise UsageError(f"unknown lesson {args.number!r}; lessons are 1 to {len(LESSONS)}")
    result = run_lesson(number, log=_log)
    print(f"Lesson {number}: {result.title}")
    print(result.table.to_string(float_format=lambda v: f"{v:.3g}"))
    for line in result.cautions:
        print(f"caution: {line}")
    print(result.verdict.line())
    return 0


def _setting_flags(bench: argparse.ArgumentParser) -> None:
    for s in SETTINGS.values():
        default = "" if s.default is None else f" (default {s.default})"
        if s.flag_only:
            bench.add_argument(s.flag, action="store_const", const=True, default=None, help=s.help)
        else:
            bench.add_argument(s.flag, default=None, metavar=s.name.upper(), help=s.help + default)


def _bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="run one batch of tasks on one pool and summarise it",
                           description="Start a real Celery worker under one pool, run a batch of tasks, "
                                       "record timings and CPU, print a summary and write results/<run-id>/.")
    _setting_flags(bench)
    bench.add_argument("--from-make", action="store_true",
                       help="also read settings from make variables (POOL=..., as `make bench` passes them); "
                            "flags given here win")
    bench.add_argument("--results-dir", default="results", help="where run folders go (default results)")
    bench.add_argument("--json", action="store_true", help="print the run's summary as JSON on stdout (logs stay on "
                                                           "stderr)")
    bench.add_argument("--strict", action="store_true", help=STRICT_HELP)
    bench.set_defaults(func=cmd_bench, interrupted="interrupted: the worker and broker were stopped; "
                                                   "any partial results are marked 'interrupted'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description="Measure Celery worker pools against the GIL.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _bench_parser(sub)

    adv = sub.add_parser("advise", help="measure a task under every pool and recommend a pool and concurrency",
                         description="Time the task alone, then measure it under every pool that can run it at a "
                                     "few concurrency levels, with repeats; print the recommendation and write a "
                                     "sweep folder with report.html. The advisor chooses pool, concurrency, tasks.")
    _setting_flags(adv)
    adv.add_argument("--from-make", action="store_true", help="also read settings from make variables")
    adv.add_argument("--quick", action="store_true", help="one repeat per setting instead of two")
    adv.add_argument("--results-dir", default="results", help="where the folders go (default results)")
    adv.add_argument("--strict", action="store_true", help=STRICT_HELP)
    adv.set_defaults(func=cmd_advise, interrupted="interrupted: the worker and broker were stopped")

    sweep = sub.add_parser("sweep", help="run every cell of an experiment file, with repeats, and report",
                           description="Run an experiment (experiments/*.toml) as a grid with repeats; "
                                       "writes results/sweep-<id>/ with summary.csv, figures and report.html.")
    sweep.add_argument("file", nargs="?", help="experiment file, e.g. experiments/pools.toml")
    sweep.add_argument("--quick", action="store_true", help="the experiment's [quick] settings: fewer, shorter runs")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted or partly failed sweep")
    sweep.add_argument("--fresh-workers", action="store_true",
                       help="start a worker for every run, in the stored order (default: runs that start their "
                            "worker the same way share a warm one)")
    sweep.add_argument("--results-dir", default="results", help="where sweep folders go (default results)")
    sweep.add_argument("--rerun-disturbed", action="store_true",
                       help="after the pending runs, run again once every run that other processes disturbed "
                            "(with --resume: of an earlier sweep)")
    sweep.add_argument("--strict", action="store_true", help=STRICT_HELP)
    sweep.add_argument("--json", action="store_true",
                       help="print the cautions, decisions and per-cell table as JSON on stdout")
    sweep.set_defaults(func=cmd_sweep, interrupted="interrupted")

    rep = sub.add_parser("report", help="write report.html for a run or sweep folder")
    rep.add_argument("path", nargs="?", default="results/latest", help="run or sweep folder (default results/latest)")
    rep.set_defaults(func=cmd_report)

    summ = sub.add_parser("summarize", help="recompute the summary and figures of a stored run or sweep folder",
                          description="Recompute summaries from a folder's raw records with this lab's analysis "
                                      "(and upgrade its files to the current schema version); figures and, "
                                      "for a sweep, summary.csv and report.html are drawn again.")
    summ.add_argument("path", nargs="?", default="results/latest", help="run or sweep folder (default results/latest)")
    summ.set_defaults(func=cmd_summarize)

    cmp_ = sub.add_parser("compare", help="tell, cell by cell, whether two runs or two sweeps differ")
    cmp_.add_argument("a", help="run or sweep folder A (the baseline)")
    cmp_.add_argument("b", help="run or sweep folder B")
    cmp_.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")
    cmp_.add_argument("--exit-zero", action="store_true",
                      help="exit 0 even when B differs from A (by default a significant difference exits 1, "
                           "so CI can fail on it)")
    cmp_.set_defaults(func=cmd_compare)

    lesson = sub.add_parser("lesson", help="run lesson N (1-10) live at small settings and print its verdict")
    lesson.add_argument("number", help="lesson number, 1 to 11")
    lesson.set_defaults(func=cmd_lesson, interrupted="interrupted: the worker and broker were stopped")
    return parser


def _sigterm_as_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def stop_in_order_on_signals() -> None:
    """Ctrl-C must stop a run in order (worker, Redis, temporary files) even where SIGINT was
    inherited as ignored (a background job of a script); SIGTERM is treated the same way."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_in_order_on_signals()
    try:
        return args.func(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"error: {getattr(args, 'interrupted', 'interrupted')}", file=sys.stderr)
        return EXIT_INTERRUPTED
