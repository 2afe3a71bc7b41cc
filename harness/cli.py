"""`python -m harness`: a thin command line over the harness. Subcommands dispatch to cmd_* functions."""
from __future__ import annotations

import argparse
import signal
import sys
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
                          prefetch=args.prefetch, sample_hz=args.sample_hz, timeout=args.timeout)
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
    bench.add_argument("--results-dir", default="results", help="where run folders go (default results)")
    bench.set_defaults(func=cmd_bench)
    return parser


def _sigterm_as_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C must stop a run in order even where SIGINT was inherited as ignored (a background job
    # of a script); SIGTERM is treated the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    return args.func(args)
