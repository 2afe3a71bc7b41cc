"""Child processes the lab starts: started so they cannot outlive it, stopped with nothing left."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from typing import Sequence

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: if the harness dies, even by SIGKILL, the child gets SIGTERM.

    The child also gets its own session, so a Ctrl-C in the terminal reaches only the harness,
    which then shuts the child down in order (a warm shutdown for a worker) instead of racing it.
    """
    os.setsid()
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
        if log_path:
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
    psutil.wait_procs(descendants, timeout=5)
    return clean
