"""`python -m harness`: a thin command line. Subcommands dispatch to cmd_* functions.

The bench flags are derived from harness.model.settings.SETTINGS; errors are mapped to exit codes
in one place, `main`, from the code each error class carries (harness.errors).
"""
from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from harness.commands import (
    cmd_advise,
    cmd_agent,
    cmd_bench,
    cmd_capacity,
    cmd_compare,
    cmd_fleet_broker,
    cmd_lesson,
    cmd_netns,
    cmd_report,
    cmd_summarize,
    cmd_sweep,
    cmd_trace,
)
from harness.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, LabError
from harness.model.settings import SETTINGS
from harness.results.paths import LATEST, RESULTS_DIR

# The disk's or the file system's refusals (full, over quota, read-only, a file too big): one line, not a traceback,
# wherever they strike (a sweep's manifest, the results index) that no command turned into a message first.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}



# Flags several subcommands share, each declared once here (as asv's common_args): `what` fills in the words
# that differ between commands.
def _results_dir_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help=f"where {what} go (default {RESULTS_DIR})")


def _strict_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="measure the machine for a second first and refuse to start (exit 3) if other processes "
                             "are busy enough to disturb the run")


def _yes_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true",
                        help="agree in advance to what would be asked: your app's tasks run for real (YES=1 with "
                             "make)")


def _json_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout (logs stay on stderr)")


def _from_make_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-make", action="store_true",
                        help="also read settings from make variables (POOL=..., as make passes them); flags given "
                             "here win")


def _folder_arg(parser: argparse.ArgumentParser, what: str = "run or sweep folder") -> None:
    parser.add_argument("path", nargs="?", default=str(LATEST), help=f"{what} (default {LATEST})")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message names what was wrong (and a near miss).
        from harness.model.settings import did_you_mean

        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if wrong:
            choices = re.findall(r"'([^']*)'", wrong.group(2)) or [c.strip() for c in wrong.group(2).split(",")]
            message = message.replace(wrong.group(0), wrong.group(0) + did_you_mean(wrong.group(1), choices))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _setting_flags(bench: argparse.ArgumentParser, leave_out: tuple[str, ...] = ()) -> None:
    for s in SETTINGS.values():
        if s.name in leave_out:
            continue
        if s.flag_only:
            bench.add_argument(s.flag, action="store_const", const=True, default=None, help=s.help)
        else:
            bench.add_argument(s.flag, default=None, metavar=s.name.upper(), help=s.help + s.default_text)


def _bench_parser(sub, name: str = "bench") -> None:
    bench = (sub.add_parser("bench", help="run one batch of tasks on one pool and summarise it",
                            description="Start a real Celery worker under one pool, run a batch of tasks, "
                                        "record timings and CPU, print a summary and write results/<run-id>/.")
             if name == "bench" else
             sub.add_parser("load", help="offer tasks at a rate (RATE, LOAD_TIME, ARRIVALS) to one pool: latency "
                                         "from each task's scheduled time, and whether the pool held the rate",
                            description="Start a real Celery worker under one pool, send tasks on a schedule fixed in "
                                        "advance (whatever the worker does), measure each task's latency from its "
                                        "scheduled time and the queue's growth, and write results/<run-id>/."))
    _setting_flags(bench)
    _from_make_flag(bench)
    _results_dir_flag(bench, "run folders")
    _json_flag(bench, "the run's summary")
    _strict_flag(bench)
    _yes_flag(bench)
    bench.add_argument("--recalibrate", action="store_true",
                       help="measure the fixed work's rate again rather than reuse one this machine measured within "
                            "the hour (.lab/calibrations.json): RECALIBRATE=1 with make")
    bench.set_defaults(func=cmd_bench, interrupted="interrupted: the worker and broker were stopped; "
                                                   "any partial results are marked 'interrupted'",
                       needs_rate=name == "load")


def _sweep_parser(sub) -> None:
    sweep = sub.add_parser("sweep", help="run every cell of an experiment file, with repeats, and report",
                           description="Run an experiment (experiments/*.toml) as a grid with repeats; "
                                       "writes results/sweep-<id>/ with summary.csv, figures and report.html.")
    sweep.add_argument("file", nargs="?", help="experiment file, e.g. experiments/pools.toml")
    sweep.add_argument("--quick", action="store_true", help="the experiment's [quick] settings: fewer, shorter runs")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted or partly failed sweep")
    sweep.add_argument("--fresh-workers", action="store_true",
                       help="start a worker for every run, in the stored order (default: runs that start their "
                            "worker the same way share a warm one)")
    _results_dir_flag(sweep, "sweep folders")
    sweep.add_argument("--rerun-disturbed", action="store_true",
                       help="after the pending runs, run again once every disturbed or unsteady run (other processes "
                            "busy, the worker stopped, or the machine's own speed changing) (with --resume: of an "
                            "earlier sweep)")
    _strict_flag(sweep)
    sweep.add_argument("--yes", action="store_true",
                       help="start a sweep estimated at over 30 minutes without asking (asked at a terminal; "
                            "refused in a script without --yes or --max-hours), and agree that your app's tasks "
                            "run for real")
    sweep.add_argument("--max-hours", metavar="H",
                       help="start no run after H hours; the rest stay pending for --resume")
    _json_flag(sweep, "the cautions, decisions and per-cell table")
    sweep.set_defaults(func=cmd_sweep, interrupted="interrupted")


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("gil-lab")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gil-lab", description="Measure Celery worker pools against the GIL: how much real "
                     "parallelism each pool gives which work. Start with `gil-lab bench --pool threads` "
                     "(or `make bench POOL=threads`).",
                     epilog="`python -m harness` is the same command. Each subcommand has its own --help.")
    parser.add_argument("--version", action="version", version=f"gil-lab {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _bench_parser(sub)
    _bench_parser(sub, "load")
    cap = sub.add_parser("capacity", help="find the highest rate one worker holds within a latency objective (SLO)",
                         description="Open-loop loads at rising rates, then bisection: the highest rate one worker of "
                                     "the pool holds within the SLO without saturating; writes capacity.json and "
                                     "capacity.png (latency against offered load).")
    _setting_flags(cap, leave_out=("rate", "tasks"))
    _from_make_flag(cap)
    _results_dir_flag(cap, "the search's folder")
    _yes_flag(cap)
    cap.add_argument("--slo", default=None, help="the latency objective, e.g. 'p95<1s' or 'p99<250ms' (SLO= with "
                                                 "make; default p95<1s)")
    cap.add_argument("--exp", default=None, metavar="FILE", help="a capacity experiment (a TOML file with slo, e.g. "
                                                                 "experiments/capacity.toml): a search per cell")
    cap.add_argument("--quick", action="store_true", help="with --exp: the file's [quick] settings")
    cap.set_defaults(func=cmd_capacity, interrupted="interrupted: the worker and broker were stopped")

    adv = sub.add_parser("advise", help="measure a task under every pool and recommend a pool and concurrency",
                         description="Time the task alone, then measure it under every pool that can run it at a "
                                     "few concurrency levels, with repeats; print the recommendation and write a "
                                     "sweep folder with report.html. The advisor chooses the pool and the "
                                     "concurrency (and TASKS, except for your app's mix); for your app (APP=) it "
                                     "also measures a queue split when the task kinds want different pools. With "
                                     "--rate (RATE=): the capacity of its best settings within --slo, and how many "
                                     "workers hold that rate.")
    _setting_flags(adv, leave_out=("pool", "concurrency", "routes"))
    _from_make_flag(adv)
    _yes_flag(adv)
    # Not --quick: a sweep's --quick takes an experiment's [quick] settings, which an advice has none of.
    adv.add_argument("--once", action="store_true", help="one repeat per setting instead of two (ONCE=1 with make)")
    adv.add_argument("--slo", default=None, help="with --rate: the latency objective the rate must be held within, "
                                                 "e.g. 'p95<500ms' (SLO= with make; default p95<1s)")
    _results_dir_flag(adv, "the advice's folders")
    _strict_flag(adv)
    adv.set_defaults(func=cmd_advise, interrupted="interrupted: the worker and broker were stopped")

    _sweep_parser(sub)

    rep = sub.add_parser("report", help="write report.html for a run or sweep folder")
    _folder_arg(rep)
    rep.set_defaults(func=cmd_report)

    summ = sub.add_parser("summarize", help="recompute the summary and figures of a stored run or sweep folder",
                          description="Recompute summaries from a folder's raw records with this lab's analysis "
                                      "(and upgrade its files to the current schema version); figures and, "
                                      "for a sweep, summary.csv and report.html are drawn again.")
    _folder_arg(summ)
    summ.set_defaults(func=cmd_summarize)

    cmp_ = sub.add_parser("compare", help="tell, cell by cell, whether two runs or two sweeps differ")
    cmp_.add_argument("a", help="run or sweep folder A (the baseline)")
    cmp_.add_argument("b", help="run or sweep folder B")
    _json_flag(cmp_, "the comparison")
    cmp_.add_argument("--exit-zero", action="store_true",
                      help="exit 0 even when B differs from A (by default a significant difference exits 1, "
                           "so CI can fail on it)")
    cmp_.set_defaults(func=cmd_compare)

    trace = sub.add_parser("trace", help="open a run's timeline (trace.json) in a zoomable viewer, offline",
                           description="Serve a run's trace.json (a track per slot, a slice per task, CPU counters, "
                                       "and with --gil-probe who held the GIL) with viztracer's vizviewer on "
                                       "127.0.0.1; writes the trace first if the folder has none.")
    _folder_arg(trace, "run folder")
    trace.add_argument("--port", type=int, default=9001, help="port on 127.0.0.1 (default 9001)")
    trace.add_argument("--no-browser", action="store_true", help="only serve it (print the address)")
    trace.add_argument("--write-only", action="store_true", help="write trace.json and print its path")
    trace.set_defaults(func=cmd_trace)

    lesson = sub.add_parser("lesson", help="run lesson N (1-13) live at small settings and print its verdict")
    lesson.add_argument("number", help="lesson number, 1 to 13")
    lesson.add_argument("--save-reference", action="store_true",
                        help="keep this result as the lesson's reference (notebooks/reference/), shown by its "
                             "notebook when a live run cannot be done")
    lesson.set_defaults(func=cmd_lesson, interrupted="interrupted: the worker and broker were stopped")

    agent = sub.add_parser("agent", help="take part in runs on several hosts: answer the fleet's signed control "
                                         "messages on its broker (a small Celery worker; Ctrl-C stops it)")
    agent.add_argument("--name", required=True, help="this host's name in HOSTS= (lower-case letters, digits, '-')")
    agent.add_argument("--broker", help="the fleet's broker, redis://:PASSWORD@HOST:PORT/0 (rediss:// for TLS); "
                                        "default: $LAB_FLEET_BROKER (keeps the password out of `ps`)")
    agent.add_argument("--secret-file", required=True,
                       help="a file (mode 600) holding the fleet's shared secret, which signs every control message")
    agent.add_argument("--broker-file", help="a file (mode 600) holding the fleet's broker URL, as `gil-lab "
                                             "fleet-broker --url-file` writes it")
    agent.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                       help="a folder your tasks (TASK's package, APP's project) may be imported from on this host; "
                            "give it again for more (default: none: only the lab's own workloads run here)")
    agent.set_defaults(func=cmd_agent, interrupted="interrupted: the agent stopped")

    fleet_broker = sub.add_parser("fleet-broker", help="the fleet's broker: a private Redis listening on the one "
                                                       "address you name, with a fresh password (until Ctrl-C)")
    fleet_broker.add_argument("--bind", required=True, help="the IP address of this host the other hosts reach")
    fleet_broker.add_argument("--port", type=int, help="its port, the one a firewall opens (default: a free one)")
    fleet_broker.add_argument("--url-file", required=True,
                              help="a new file its URL (with the password) is written to, mode 600: copy it to each "
                                   "host, then --broker-file FILE for agents, LAB_FLEET_BROKER_FILE=FILE for runs")
    fleet_broker.set_defaults(func=cmd_fleet_broker, interrupted="the fleet's broker stopped")

    netns = sub.add_parser("netns", help="as root: run a lab command with hosts host1..hostN on this machine, each a "
                                         "network namespace with its agent, the fleet's broker on their bridge; "
                                         "e.g. netns --hosts 4 -- sweep experiments/hosts.toml")
    netns.add_argument("--hosts", type=int, default=2, help="how many hosts (namespaces) to make, 1 to 16 (default 2)")
    netns.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                       help="a folder the agents may import your tasks from (as gil-lab agent's)")
    netns.add_argument("lab_command", nargs=argparse.REMAINDER, metavar="command",
                       help="the lab command to run, after --")
    netns.set_defaults(func=cmd_netns, interrupted="interrupted: the hosts were removed")
    return parser


# The command's first imports, done before its signal handling takes over: a signal that lands in them ends the
# process at once (harness.__main__), as nothing has been started. Imports done later are safe too (see
# _interrupt), but an interrupt then waits for the import's end: seconds, for scipy or matplotlib.
PRELOAD = {
    "bench": ("harness.pipeline", "harness.present.live", "harness.present.console", "harness.model.spec"),
    "capacity": ("harness.capacity", "harness.pipeline", "harness.present.live"),
    "load": ("harness.pipeline", "harness.present.live", "harness.present.console", "harness.model.spec"),
    "advise": ("harness.advisor", "harness.pipeline", "harness.present.console"),
    "sweep": ("harness.analysis.trust", "harness.model.experiment", "harness.judge", "harness.pipeline",
              "harness.sweeps", "harness.results.files", "harness.results.sweep_folder"),
    "report": ("harness.pipeline",),
    "summarize": ("harness.pipeline",),
    "compare": ("harness.analysis.compare", "harness.judge", "harness.pipeline"),
    "trace": ("harness.present.trace", "harness.results"),
    "lesson": ("harness.course.lessons", "harness.present.live"),
}

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
# Set as the first act of main's `finally`: the command has ended, its code is decided, and a signal can change
# nothing any more (it could only kill the exiting interpreter: exit -15 instead of 130, seen when a second SIGTERM
# came 0.5 s after the first, the clean-up done and the interpreter tearing its modules down).
_ended = False


def _handling_interrupt() -> bool:
    """Whether the main thread is inside the handling of an interrupt (an except, finally or __exit__ that a
    KeyboardInterrupt is passing through, or one nested in such), i.e. stopping in order."""
    exc = sys.exc_info()[1]
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def _importing(frame) -> bool:
    """Whether `frame` runs inside an import (its caller chain passes through importlib)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib._bootstrap") or name.endswith(
                (os.path.join("importlib", "_bootstrap.py"), os.path.join("importlib", "_bootstrap_external.py"))):
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int, after_s: float = 0.05) -> None:
    """The signal sent to this process again a moment later, unless the command has ended by then."""
    def again() -> None:
        if not _ended:
            os.kill(os.getpid(), signum)
    timer = threading.Timer(after_s, again)
    timer.daemon = True
    timer.start()


def _interrupt(signum: int, frame) -> None:
    """Ctrl-C, SIGTERM and SIGHUP while a command runs: a KeyboardInterrupt, which stops the run in order.

    Not where it would break that order or be lost:
    - while a first interrupt is being handled (the clean-up it started: stopping the worker and the broker,
      marking run.json), a second one changes nothing: the clean-up is bounded and the exit is 130 anyway; raised,
      it skipped the rest of the clean-up or left main with a traceback;
    - inside an import it is sent again a moment later, so it is raised once the import is done: raised inside it,
      it can come out as another error (scipy's pybind11 modules make it "ImportError: initialization failed");
    - once the command has ended (`_ended`) it changes nothing.
    """
    if _ended or _handling_interrupt():
        return
    if _importing(frame):
        _send_again(signum)
        return
    raise KeyboardInterrupt


def stop_in_order_on_signals() -> None:
    """Ctrl-C must stop a run in order (worker, Redis, temporary files) even where SIGINT was
    inherited as ignored (a background job of a script); SIGTERM is treated the same way, and SIGHUP
    (the terminal closed, or an ssh session dropped). See _interrupt."""
    global _ended
    _ended = False
    for s in SIGNALS:
        signal.signal(s, _interrupt)
    catch_lost_interrupts()


def _ignore_signals() -> None:
    """At the end of a process that ran a command: nothing is left to stop, and the interpreter's own exit
    (which first puts back the default handlers, then tears down its modules: a fraction of a second with
    pandas, scipy and matplotlib loaded) must not be killed by a late signal."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def catch_lost_interrupts() -> None:
    """An interrupt that lands in a garbage-collector or __del__ callback cannot leave it: Python prints
    "Exception ignored ... KeyboardInterrupt" with a traceback and goes on, so the run went on to the end
    (seen once in ten Ctrl-Cs while figures were drawn, which makes many such callbacks). Such an interrupt
    is sent again a moment later, when it lands in the main flow and stops the run in order; not once the
    command has ended (`_ended`), when it could only kill the exiting interpreter.

    A signal that came just as its handler became SIG_IGN (at the command's end) is reported by Python as
    "Signal N ignored due to race condition": it is, and that is said nowhere."""
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _send_again(signal.SIGINT)
            return
        if _ended and unraisable.exc_type is OSError and "ignored due to race condition" in str(unraisable.exc_value):
            return
        previous(unraisable)
    sys.unraisablehook = hook


def _preload(command: str) -> None:
    import importlib

    for module in PRELOAD.get(command, ()):
        try:
            importlib.import_module(module)
        except ImportError:  # the command meets it again, and says what is missing its own way
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. Run as the program (`argv` None: gil-lab, python -m harness), it owns the process's
    signals: until the command's first imports are done a signal ends the process at once (nothing has started),
    then it stops the command in order (_interrupt), and once the command has ended it is ignored, so the exit
    code is the command's. Called with `argv` (a test, in-process), the caller's handlers are put back at the end."""
    global _ended
    program = argv is None
    if program:
        from harness.__main__ import exit_at_once_on_signals

        exit_at_once_on_signals()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # run bare: say what it can do
        parser.print_help()
        return 0
    _preload(args.command)
    before = {s: signal.getsignal(s) for s in SIGNALS}
    _ended = False
    try:
        try:
            stop_in_order_on_signals()
            return args.func(args)
        except LabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"error: {getattr(args, 'interrupted', 'interrupted')}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except OSError as exc:
            if exc.errno not in STORAGE_ERRORS:
                raise  # anything else is the lab's bug: its traceback is wanted
            print(f"error: {exc.filename or 'a result file'}: {exc.strerror} (what was measured is kept where it "
                  "could be written)", file=sys.stderr)
            return EXIT_FAILED
    except KeyboardInterrupt:  # one that landed while another error's message was being printed
        print(f"error: {getattr(args, 'interrupted', 'interrupted')}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _ended = True  # first (a plain store: no signal handler can run before it)
        if program:
            _ignore_signals()
        else:
            for s, handler in before.items():
                if handler is not None:
                    signal.signal(s, handler)
