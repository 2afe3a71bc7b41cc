"""Benchmark: the asyncio pool's speed target (issue 27). At 1,000 sleeps in flight it should overlap its waits at
least as well as gevent (a speedup within 10 % of gevent's, or better) in less memory than 1,000 threads. Interleaved
rounds of asyncio, gevent and threads on the same settings, one Redis; and what the loop-lag probe costs a worker
(its CPU on an idle loop).

Writes its section of BENCHMARKS.md (between its markers), with the machine it ran on.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402
from workloads import loop_lag  # noqa: E402

ROUNDS = 3
POOLS = ("asyncio", "gevent", "threads")
SLOTS = 1000
PROBE_S = 10.0


def probe_cost() -> float:
    """CPU seconds per second of an idle asyncio loop with the lag probe on it (the probe's ticks, its reports)."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    rows: list[str] = []
    t0 = time.process_time()
    loop_lag.start_asyncio(loop, rows.append)
    time.sleep(PROBE_S)
    spent = time.process_time() - t0

    async def stop() -> None:
        for task in asyncio.all_tasks(loop) - {asyncio.current_task()}:
            task.cancel()
        loop.stop()

    asyncio.run_coroutine_threadsafe(stop(), loop)
    return spent / PROBE_S


def main() -> None:
    speedups: dict[str, list[float]] = {p: [] for p in POOLS}
    memory: dict[str, list[float]] = {p: [] for p in POOLS}
    with RedisBroker() as broker:
        for _ in range(ROUNDS):
            for name in POOLS:  # interleaved: the machine's drift falls on all alike
                spec = build_spec(pool=name, workload="io_sleep", concurrency=SLOTS, duration=0.25)
                run = run_bench(spec, results_dir=ROOT / "results", redis_url=broker.url, log=lambda _l: None,
                                mark_latest=False)
                assert run.summary is not None and run.summary.pss_peak_mib is not None
                speedups[name].append(run.summary.speedup)
                memory[name].append(run.summary.pss_peak_mib)
    cost = probe_cost()
    env = environment.collect()
    med = {p: statistics.median(speedups[p]) for p in POOLS}
    mem = {p: statistics.median(memory[p]) for p in POOLS}
    ratio = med["asyncio"] / med["gevent"]
    body = [
        "## The asyncio pool against gevent and threads (issue 27)", "",
        f"`python benchmarks/asyncio_pool.py`, {env['time_utc']}. Machine: {env['cpu_model']}, "
        f"{env['cpu_count_logical']} logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.", "",
        f"`io_sleep` at {SLOTS:,} in flight ({4 * SLOTS:,} tasks of 0.25 s), {ROUNDS} interleaved rounds, median and "
        "range:", "",
        "| pool | speedup | worker memory (MiB PSS) |", "|---|---|---|",
        *(f"| {p} | {med[p]:.0f}x ({min(speedups[p]):.0f}-{max(speedups[p]):.0f}) | {mem[p]:.0f} "
          f"({min(memory[p]):.0f}-{max(memory[p]):.0f}) |" for p in POOLS), "",
        f"Target: asyncio within 10 % of gevent's speedup or better, in less memory than threads. Measured: "
        f"{ratio:.2f} of gevent's ({'met' if ratio >= 0.9 else 'NOT met'}), {mem['asyncio']:.0f} MiB against "
        f"threads' {mem['threads']:.0f} ({'met' if mem['asyncio'] < mem['threads'] else 'NOT met'}).", "",
        f"The loop-lag probe (a timer every {loop_lag.TICK_S * 1000:.0f} ms, a report every "
        f"{loop_lag.REPORT_S * 1000:.0f} ms) on an idle loop for {PROBE_S:.0f} s: {cost * 1000:.1f} ms of CPU a "
        "second, the idle loop's own included, its reports' pushes to Redis not.",
    ]
    print(write_section("asyncio", body))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()  # a SIGTERM stops the workers, the broker and removes temporary files
    main()
