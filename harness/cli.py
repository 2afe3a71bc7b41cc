"""`python -m harness`: a thin command line over the harness. Subcommands dispatch to cmd_* functions."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from harness.broker import BrokerError
from harness.spec import POOLS, WORKLOADS, SpecError, build_spec
from harness.worker import WorkerError

EXIT_USAGE = 2  # a user's mistake: bad setting, unreachable broker, missing package
EXIT_FAILED = 1  # the run started but did not complete
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message names what was wrong.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    from harness import console
    from harness.run import RunFailed, run_bench

    try:
        spec = build_spec(pool=args.pool, workload=args.workload, concurrency=args.concurrency,
                          tasks=args.tasks, duration=args.duration, switch_interval=args.switch_interval,
                          prefetch=args.prefetch, sample_hz=args.sample_hz, timeout=args.timeout,
                          background=args.background, background_tasks=args.background_tasks,
                          gil_probe=args.gil_probe)
        run = run_bench(spec, results_dir=args.results_dir, log=lambda line: print(line, file=sys.stderr),
                        show_progress=sys.stderr.isatty())
    except (SpecError, BrokerError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (WorkerError, RunFailed) as exc:
        return _fail(EXIT_FAILED, str(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted: the worker and broker were stopped; "
                                       "any partial results are marked 'interrupted'")
    print(console.summary_table(run))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.experiment import ExperimentError, load_experiment
    from harness.report import sweep_report
    from harness.results import RunLoadError, link_latest
    from harness.sweep import load_sweep_manifest, new_sweep, run_sweep

    folder = None
    try:
        if args.resume:
            folder = Path(args.resume)
            load_sweep_manifest(folder)
        elif args.file is None:
            raise ExperimentError("give an experiment file (e.g. experiments/pools.toml) or --resume <sweep folder>")
        else:
            experiment = load_experiment(args.file)
            from harness.run import check_pool_importable
            for pool in dict.fromkeys(spec.pool for spec in experiment.specs()):
                check_pool_importable(pool)
            folder = new_sweep(experiment, args.quick, Path(args.results_dir))
        print(f"sweep folder: {folder}", file=sys.stderr)
        manifest = run_sweep(folder, log=lambda line: print(line, file=sys.stderr),
                             show_progress=sys.stderr.isatty())
    except (ExperimentError, SpecError, BrokerError, RunLoadError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted" + (f": resume with `python -m harness sweep --resume {folder}`"
                                                        if folder else ""))
    path = sweep_report(folder)
    link_latest(folder, "latest-sweep")
    print(f"{manifest['status']}: {sum(e['status'] == 'complete' for e in manifest['runs'])} of "
          f"{len(manifest['runs'])} runs; report: {path}")
    if manifest["status"] != "complete":
        print(f"resume with: python -m harness sweep --resume {folder}")
        return EXIT_FAILED
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import report
    from harness.results import RunLoadError

    try:
        print(report(args.path))
    except RunLoadError as exc:
        return _fail(EXIT_USAGE, str(exc))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, format_comparison
    from harness.results import RunLoadError

    try:
        table = compare(args.a, args.b)
    except (RunLoadError, ValueError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    print(format_comparison(table))
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:
    from harness.lessons import LESSONS, run_lesson
    from harness.run import RunFailed

    try:
        number = int(args.number)
        if number not in LESSONS:
            raise ValueError
    except ValueError:
        return _fail(EXIT_USAGE, f"unknown lesson {args.number!r}; lessons are 1 to {len(LESSONS)}")
    try:
        result = run_lesson(number, log=lambda line: print(line, file=sys.stderr))
    except (SpecError, BrokerError) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (WorkerError, RunFailed) as exc:
        return _fail(EXIT_FAILED, str(exc))
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted: the worker and broker were stopped")
    print(f"Lesson {number}: {result.title}")
    print(result.table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(result.verdict.line())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description="Measure Celery worker pools against the GIL.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    bench = sub.add_parser("bench", help="run one batch of tasks on one pool and summarise it",
                           description="Start a real Celery worker under one pool, run a batch of tasks, "
                                       "record timings and CPU, print a summary and write results/<run-id>/.")
    bench.add_argument("--pool", default="threads", help=f"worker pool: {', '.join(POOLS)} (default threads)")
    bench.add_argument("--workload", default="cpu", help=f"task kind: {', '.join(WORKLOADS)} (default cpu)")
    bench.add_argument("--concurrency", default=None, help="pool size (default: the number of CPU cores)")
    bench.add_argument("--tasks", default=None, help="number of tasks (default: 4 x concurrency)")
    bench.add_argument("--duration", default="0.25", help="seconds each task takes alone (default 0.25)")
    bench.add_argument("--switch-interval", default="0.005",
                       help="sys.setswitchinterval in every process that runs tasks (default 0.005)")
    bench.add_argument("--prefetch", default=None,
                       help="worker_prefetch_multiplier (default: 1, or 0 = unlimited for gevent/eventlet)")
    bench.add_argument("--sample-hz", default="50", help="CPU samples per second (default 50)")
    bench.add_argument("--timeout", default=None, help="seconds the tasks may take before the run is "
                                                       "called stuck (default: derived from the work)")
    bench.add_argument("--background", default=None,
                       help="a workload run beside the measured tasks (cpu, busy_wait, gil_release, io_sleep)")
    bench.add_argument("--background-tasks", default="0", help="how many background tasks (default 1 "
                                                               "when --background is given)")
    bench.add_argument("--gil-probe", action="store_true", help="also record who held the GIL (1 kHz, from "
                       "the harness) and GIL contention (gilknocker, in the worker); writes gil.png")
    bench.add_argument("--results-dir", default="results", help="where run folders go (default results)")
    bench.set_defaults(func=cmd_bench)

    sweep = sub.add_parser("sweep", help="run every cell of an experiment file, with repeats, and report",
                           description="Run an experiment (experiments/*.toml) as a grid with repeats; "
                                       "writes results/sweep-<id>/ with summary.csv, figures and report.html.")
    sweep.add_argument("file", nargs="?", help="experiment file, e.g. experiments/pools.toml")
    sweep.add_argument("--quick", action="store_true", help="the experiment's [quick] settings: fewer, shorter runs")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted or partly failed sweep")
    sweep.add_argument("--results-dir", default="results", help="where sweep folders go (default results)")
    sweep.set_defaults(func=cmd_sweep)

    rep = sub.add_parser("report", help="write report.html for a run or sweep folder")
    rep.add_argument("path", nargs="?", default="results/latest", help="run or sweep folder (default results/latest)")
    rep.set_defaults(func=cmd_report)

    cmp_ = sub.add_parser("compare", help="tell, cell by cell, whether two runs or two sweeps differ")
    cmp_.add_argument("a", help="run or sweep folder A (the baseline)")
    cmp_.add_argument("b", help="run or sweep folder B")
    cmp_.set_defaults(func=cmd_compare)

    lesson = sub.add_parser("lesson", help="run lesson N (1-9) live at small settings and print its verdict")
    lesson.add_argument("number", help="lesson number, 1 to 9")
    lesson.set_defaults(func=cmd_lesson)
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
    return args.func(args)
