"""Benchmark: how long the offline tests take (`make check`), and that they start no broker or worker.

Writes its section of BENCHMARKS.md. Target (issue 9): under 60 s on a 2-core machine.
With --live, also times the live tests (`tests/live`, real Redis and workers), for comparison.
"""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.lab import environment  # noqa: E402

TARGET_S = 60.0


def _lab_processes() -> set[int]:
    """Redis-protocol servers and Celery workers of the lab running now (not a process that only imports the app)."""
    found = set()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        worker = "-A workloads.app worker" in cmd
        if worker or any(s in (p.info["name"] or "") + cmd for s in ("redis-server", "valkey-server")):
            found.add(p.info["pid"])
    return found


def _watch(stop: threading.Event, seen: set[int]) -> None:
    """Every lab process that appears while the suite runs, polled 10 times a second."""
    while not stop.is_set():
        seen |= _lab_processes()
        stop.wait(0.1)


def time_suite(folder: str) -> tuple[float, str, int]:
    """Wall time, pytest's closing line, and how many lab processes appeared meanwhile."""
    before = _lab_processes()
    seen: set[int] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(stop, seen), daemon=True)
    watcher.start()
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder], cwd=ROOT,
                         capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    stop.set()
    watcher.join()
    closing = [line for line in out.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return wall, closing[-1].strip("= ") if closing else f"exit {out.returncode}", len(seen - before)


def main() -> None:
    env = environment.collect()
    rows = [("tests/offline", *time_suite("tests/offline"))]
    if "--live" in sys.argv:
        rows.append(("tests/live", *time_suite("tests/live")))
    lines = ["## Test suites: offline against live (issue 9)", "",
             f"`python benchmarks/offline_suite.py{' --live' if len(rows) > 1 else ''}`, {env['time_utc']}. "
             f"Machine: {env['cpu_model']}, {env['cpu_count_logical']} logical CPUs, Python {env['python']}.", "",
             "| suite | wall time | result | redis-servers or workers started | target | met |",
             "|---|---|---|---|---|---|"]
    for folder, wall, closing, started in rows:
        target = f"< {TARGET_S:g} s, none started" if folder == "tests/offline" else ""
        met = ("yes" if wall < TARGET_S and started == 0 else "no") if folder == "tests/offline" else ""
        lines.append(f"| `{folder}` | {wall:.1f} s | {closing} | {started} | {target} | {met} |")
    print(write_section("offline-suite", lines))


if __name__ == "__main__":
    main()
