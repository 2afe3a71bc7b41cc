"""Child processes the lab starts: started so they cannot outlive it, stopped with nothing left."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if the harness dies, even by SIGKILL, the child gets SIGTERM.

    The child also gets its own session, so a Ctrl-C in the terminal reaches only the harness,
    which then shuts the child down in order (a warm shutdown for a worker) instead of racing it.
    """
    os.setsid()
    parent_death_signal()


def parent_death_signal() -> None:
    """Runs in a child before exec: it gets SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def spawn(argv: Sequence[str], env: dict[str, str] | None = None, log_path: str | None = None,
          cwd: str | None = None) -> subprocess.Popen:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
    finally:
        if not isinstance(log, int):  # the log file opened above (not DEVNULL)
            log.close()


def stop_tree(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 10.0) -> bool:
    """Send `sig` to a child and wait for it; then SIGKILL it and anything it started.

    Returns True when the child stopped on the first signal within the grace period.
    """
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    clean = True
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            clean = False
    # Whatever is still alive in the tree (the child itself, prefork children, a stuck thread's
    # process) is killed; the child's session id catches grandchildren that were re-parented.
    for p in descendants:
        try:
            p.kill()
        except psutil.Error:
            pass
    # The child leads its own process group (see _die_with_parent); the group outlives a leader
    # killed by SIGKILL, and its orphans (prefork children) are still in it.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    _wait_gone(descendants, timeout_s=5.0)
    return clean


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> None:
    """Until the killed processes are gone, a zombie counting as gone (psutil.wait_procs waits for another
    parent to reap a killed grandchild: 1.5 s here)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        except psutil.Error:
            alive = processes  # one ended between the two calls: look again
        if not alive:
            return
        time.sleep(0.02)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done, then are raised as KeyboardInterrupt.

    For clean-up: a second interrupt landing inside a worker's stop (while it waits out the warm
    shutdown) used to skip the process-group kill that follows and leave the worker running. The
    block itself is bounded (every wait in a stop has a timeout). Only the main thread may set signal
    handlers; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    kinds = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in kinds}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if received:
            raise KeyboardInterrupt


# Kills a process group when the harness dies, by any means. A worker's own parent-death signal is SIGTERM,
# which only starts Celery's warm shutdown, and that waits for the running task (a long one: minutes).
_WATCHDOG = """
import ctypes, os, shutil, signal, sys
group, harness, leftovers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def fire(*_):
    try:
        if group > 0:  # 0: no process group here (workers on other hosts), only the folders
            os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
    for path in leftovers:  # the harness's scratch folders, which it had no chance to remove
        shutil.rmtree(path, ignore_errors=True)
    os._exit(0)
signal.signal(signal.SIGTERM, fire)
signal.signal(signal.SIGHUP, fire)
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: told when the harness dies
except (OSError, AttributeError):
    pass
if os.getppid() != harness:  # the harness died before this process could ask to be told
    fire()
while True:
    signal.pause()
"""


def start_watchdog(group: int, leftovers: Sequence[str] = ()) -> subprocess.Popen | None:
    """A small process that SIGKILLs process group `group` (a worker and its children, or a private broker; 0: none)
    and removes the `leftovers` folders if the harness dies. The harness kills the watchdog itself once it
    has stopped the group. Linux only (parent-death signal)."""
    if not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(group), str(os.getpid()), *leftovers],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_watchdog(watchdog: subprocess.Popen | None) -> None:
    if watchdog is not None and watchdog.poll() is None:
        watchdog.kill()  # SIGKILL: its handler, which kills the group, does not run
        watchdog.wait(timeout=5)
