"""Benchmark: how long `make advise` takes on each task of examples/, and what it recommends.

Target (issue 11): under 3 minutes for one task on a 2-core machine, with its default two repeats.
Writes its section of BENCHMARKS.md, with the machine it ran on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.advisor import advice_of, advise  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.pipeline import report  # noqa: E402
from harness.results import load_sweep  # noqa: E402

TARGET_S = 180.0
TASKS = ("examples.tasks:parse_logs", "examples.tasks:call_service", "examples.tasks:fetch_and_parse")


def main() -> None:
    env = environment.collect()
    rows = []
    for task in TASKS:
        t0 = time.monotonic()
        folder = advise({"task": task}, results_dir=ROOT / "results", log=print)
        report(folder)
        wall = time.monotonic() - t0
        advice = advice_of(folder)
        assert advice is not None, f"{folder}: no setting completed"
        runs = len(load_sweep(folder).manifest.runs)
        rows.append(f"| `{task}` | {runs} | {wall:.0f} s | < {TARGET_S:.0f} s | {'yes' if wall < TARGET_S else 'no'} | "
                    f"{advice.pool} at {advice.concurrency}{' (close call)' if advice.close_call else ''} | "
                    f"`{folder.relative_to(ROOT)}` |")
    lines = ["## The advisor's wall time (issue 11)", "",
             f"`python benchmarks/advise_time.py`, {env['time_utc']}. Machine: {env['cpu_model']}, "
             f"{env['cpu_count_logical']} logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.",
             "Each task: timed alone, then every pool at the planned concurrency levels, two repeats, on warm workers; "
             "the wall time includes the report.", "",
             "| task | runs | wall time | target | met | recommendation | folder |", "|---|---|---|---|---|---|---|",
             *rows]
    print(write_section("advise-time", lines))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()
    main()
