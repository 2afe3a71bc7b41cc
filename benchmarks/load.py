"""Benchmark: the cost of load — 10,000 tasks, and gevent at concurrency 1,000 — with every record counted.

Writes its section of BENCHMARKS.md (between its markers), with the machine it ran on.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402
from harness.results.records import Environment  # noqa: E402

CASES = [
    ("10,000 tasks", dict(pool="threads", workload="io_sleep", concurrency=8, tasks=10_000, duration=0.001,
                          sample_hz=10)),
    ("gevent at concurrency 1,000", dict(pool="gevent", workload="io_sleep", concurrency=1000, tasks=1000, duration=1.0,
                                         sample_hz=10)),
]


def main() -> None:
    rows: list[str] = []
    env: Environment | None = None
    with RedisBroker() as broker:
        for name, settings in CASES:
            t0 = time.monotonic()
            run = run_bench(build_spec(**settings), results_dir=ROOT / "results", redis_url=broker.url,
                            log=lambda _l: None, mark_latest=False)
            wall = time.monotonic() - t0
            env = run.manifest.environment
            timings = run.manifest.settings.harness_timings
            summary = run.summary
            assert summary is not None  # run_bench returns a summarized run
            worker_rss = run.samples[run.samples["kind"] == "process"].groupby("t")["rss"].sum().max()
            rows.append(f"| {name} | {settings['pool']}, {settings['workload']} {settings['duration']:g} s, "
                        f"concurrency {settings['concurrency']} | {len(run.tasks):,} of {settings['tasks']:,} | "
                        f"{wall:.1f} s | {timings['submit_s']:.1f} s | {summary.makespan_s:.1f} s | "
                        f"{len(run.tasks) / timings['collect_s']:,.0f} | {summary.throughput_per_s:,.0f} | "
                        f"{worker_rss / 2**20:.0f} MiB |")
    assert env is not None  # CASES is not empty
    harness_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    body = [
        "## Load (issue 5)", "",
        f"`python benchmarks/load.py`, {env.time_utc}. Machine: {env.cpu_model}, {env.cpu_count_logical} "
        f"logical CPUs, {env.extra['memory_total'] / 2**30:.0f} GiB, Python {env.python}, "
        f"celery {env.packages['celery']}.",
        "", "| case | settings | records kept | run wall time | submit | makespan | records collected/s | tasks/s "
            "| worker peak RSS |", "|---|---|---|---|---|---|---|---|---|", *rows, "",
        f"Harness peak RSS over both runs: {harness_rss:.0f} MiB. The tests in `tests/test_load.py` assert that no "
        "record is lost; these figures are their cost, not assertions.",
    ]
    print(write_section("load", body))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()  # a SIGTERM stops the worker and Redis and removes temporary files
    main()
