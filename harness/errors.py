"""Every error the lab raises on purpose, each carrying the exit code the command line gives it.

A `UsageError` is the user's to fix (a bad setting or file, an unreachable broker, a folder that
is not a result): one line, exit 2, nothing half-written. A `RunFailed` is a run that started but
could not finish: exit 1, with what was measured kept and marked. The CLI maps them in one place.
"""
from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130
# `compare` found a significant difference between A and B (as `diff` exits 1 when files differ).
EXIT_DIFFERENT = 1


class LabError(RuntimeError):
    """Base of the lab's own errors; `str(error)` is the one line the user sees."""

    exit_code = EXIT_FAILED


class UsageError(LabError):
    """The user's mistake: fixable by changing what was asked for."""

    exit_code = EXIT_USAGE


class SpecError(UsageError, ValueError):
    """A bad run setting."""


class ExperimentError(UsageError, ValueError):
    """A bad experiment file: the message names the file, the key and what is allowed."""


class ServiceError(UsageError):
    """A service the lab needs cannot be had (harness.lab.services): not installed, unreachable, or not answering.
    The message says how to get it."""


class BrokerError(ServiceError):
    """The broker cannot be had (unreachable REDIS_URL, no redis-server to start)."""


class ResultsError(UsageError):
    """A run or sweep folder that cannot be read: the message names the file."""


class MachineBusy(LabError):
    """--strict and other processes are busy on the machine: nothing was started."""

    exit_code = EXIT_BUSY


class RunFailed(LabError):
    """The run started but could not finish; partial results are kept and marked."""


class WorkerError(RunFailed):
    """The worker could not start or died: one line with the end of its log."""
