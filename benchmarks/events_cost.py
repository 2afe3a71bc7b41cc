"""Benchmark: what Celery's task events cost (EVENTS=1, for Flower). Writes its section of BENCHMARKS.md.

Short io_sleep tasks on a threads worker, where the per-task overhead shows most: runs with events on and
off interleaved, medians of throughput and makespan.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402

TASKS, CONCURRENCY, DURATION, REPEATS = 400, 8, 0.01, 5


def main() -> None:
    env = environment.collect()
    throughput: dict[bool, list[float]] = {False: [], True: []}
    with RedisBroker() as broker:
        for _ in range(REPEATS):
            for events in (False, True):
                run = run_bench(build_spec(pool="threads", workload="io_sleep", concurrency=CONCURRENCY, tasks=TASKS,
                                           duration=DURATION, events=events),
                                results_dir=ROOT / "results", redis_url=broker.url, log=lambda _l: None,
                                mark_latest=False)
                assert run.summary is not None  # run_bench returns a summarized run
                throughput[events].append(run.summary.throughput_per_s)
    off, on = statistics.median(throughput[False]), statistics.median(throughput[True])
    lines = ["## Celery task events, EVENTS=1 (issue 14)", "",
             f"`python benchmarks/events_cost.py`, {env['time_utc']}. Machine: {env['cpu_model']}, "
             f"{env['cpu_count_logical']} logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.",
             "", f"{TASKS} io_sleep tasks of {DURATION * 1000:g} ms on threads, concurrency {CONCURRENCY}: "
             f"{REPEATS} runs with events and {REPEATS} without, interleaved; medians. Events are off by default; "
             "turn them on to watch a run with Flower.", "",
             "| task events | tasks/s | change |", "|---|---|---|",
             f"| off (default) | {off:.0f} | |", f"| on | {on:.0f} | {on / off - 1:+.1%} |"]
    print(write_section("events", lines))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()
    main()
