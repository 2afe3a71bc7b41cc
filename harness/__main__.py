"""`python -m harness`: the lab's command line (harness.cli).

Its first act, before any of the lab's imports (pandas, scipy, matplotlib and Celery take seconds on a slow
machine), is to make Ctrl-C, SIGTERM and SIGHUP end the process at once, in one line and exit 130: until the
command's own handling takes over (harness.cli.main, once the command's first imports are done) nothing has been
started, so there is nothing to stop. An interrupt raised inside an import instead came out of scipy as
"ImportError: initialization failed" and a traceback (its pybind11 modules turn any error in their set-up into
that).
"""
import os
import signal
import sys

SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
EXIT_INTERRUPTED = 130  # harness.errors.EXIT_INTERRUPTED, which is not imported yet


def exit_at_once(_signum: int, _frame: object) -> None:
    try:  # what was printed so far, if it can be (not if the signal landed inside a write to the same stream)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os.write(2, b"error: interrupted (before anything had started)\n")
    os._exit(EXIT_INTERRUPTED)


def exit_at_once_on_signals() -> None:
    """Until harness.cli.main installs the command's handlers: a signal ends the process, nothing to stop."""
    for s in SIGNALS:
        signal.signal(s, exit_at_once)


def run() -> None:
    """The program: the `gil-lab` command's entry point (pyproject.toml), so that its handlers are in place before
    harness.cli is imported (0.1 s in which a signal would otherwise get Python's defaults)."""
    exit_at_once_on_signals()  # first, before the lab's imports
    from harness.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
