"""Writing result files so that a reader never sees one half-written, the `latest` links, the checks and
lock before a results folder is written, and who writes a folder while it says "running"."""
from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from harness.errors import ResultsError, UsageError


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a reader never sees it half-written."""
    _replace_from(path, lambda tmp: tmp.write_text(text))


def _replace_from(path: Path, write: Callable[[Path], object]) -> None:
    """`write` a temporary file beside `path`, then move it into place. A write that fails (a full disk)
    removes its half: the space it took is what the run's manifest needs next, to say it failed."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def owner() -> dict[str, Any]:
    """Who writes a folder while it says "running": this process, told apart from a later one of the same pid."""
    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": me.pid, "started": round(me.create_time(), 2)}


def settle_running(manifest: dict[str, Any], what: str) -> dict[str, Any]:
    """A manifest still saying "running" whose writer has died (killed with SIGKILL, the machine restarted) is
    read as interrupted: no dead run or sweep claims to be running. A writer on another host is not judged."""
    writer = manifest.get("owner")
    if (manifest.get("status") != "running" or not isinstance(writer, dict)
            or writer.get("host") != socket.gethostname() or _alive(writer)):
        return manifest
    return {**manifest, "status": "interrupted",
            "reason": f"its harness (pid {writer.get('pid')}) ended without marking the {what}: it was killed "
                      "(SIGKILL) or the machine restarted"}


def _alive(writer: dict[str, Any]) -> bool:
    try:
        return abs(psutil.Process(int(writer["pid"])).create_time() - float(writer["started"])) < 1.0
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, KeyError, TypeError, ValueError):
        return True  # cannot tell: left as it says


def read_json(path: Path, what: str) -> Any:
    """A manifest's JSON, or a ResultsError naming the file (`what` says which folder it should be in)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing (is {path.parent} a {what} folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ResultsError(f"{path}: unreadable ({exc.strerror})") from None


def write_frame(path: Path, df: pd.DataFrame, float_format: str = "%.9f") -> None:
    """A table as CSV, atomically."""
    _replace_from(path, lambda tmp: df.to_csv(tmp, index=False, float_format=float_format))


def link_latest(folder: Path, name: str) -> None:
    """Point <folder's parent>/<name> at `folder` (a relative symlink, replaced atomically)."""
    link = folder.parent / name
    tmp = folder.parent / f".{name}-{folder.name}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder.name)
    os.replace(tmp, link)


def check_writable(results_dir: Path) -> None:
    """Refuse, before anything starts, a results folder that cannot take a run: a file in its place, or a
    folder (or, if it does not exist yet, a parent) this user cannot write."""
    results_dir = Path(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: is a file, not a folder for results; move it or give --results-dir")
    existing = results_dir if results_dir.exists() else next((p for p in results_dir.parents if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultsError(f"{existing}: not writable, so no results could be kept; give --results-dir a folder "
                           "you can write")


@contextmanager
def sweep_lock(folder: Path) -> Iterator[None]:
    """One process at a time runs a sweep folder: a second `--resume` of it would run the same cells twice."""
    path = Path(folder) / ".sweep.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise UsageError(f"{folder}: already being run by {holder}; wait for it to end, or stop it "
                             "and resume again") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
