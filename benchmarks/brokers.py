"""Benchmark: the broker as an axis (issue 26). How long a private RabbitMQ node takes to start; the per-task overhead
of each broker (tasks/s of near-empty tasks, Celery's own bench figure); and whether the lab's record channel, which
stays on its Redis when RabbitMQ carries the tasks, costs the run anything (the Redis server's CPU against the node's
and the worker's, per 1,000 tasks).

Writes its section of BENCHMARKS.md (between its markers), with the machine it ran on.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from benchmarks.sections import write_section  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.services.rabbitmq import RabbitBroker  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402

STARTS = 5
ROUNDS = 3
TASKS = 2000


def cpu_s(pid: int | None) -> float:
    """CPU seconds of a process and its children so far."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def main() -> None:
    starts = []
    for _ in range(STARTS):
        t0 = time.monotonic()
        with RabbitBroker() as node:
            starts.append(time.monotonic() - t0)
            version = node.version
    rates: dict[str, list[float]] = {"redis": [], "rabbitmq": []}
    channel: dict[str, list[tuple[float, float, float]]] = {"redis": [], "rabbitmq": []}
    with RedisBroker() as redis_broker, RabbitBroker() as node:
        for _ in range(ROUNDS):
            for name in ("redis", "rabbitmq"):  # interleaved: the machine's drift falls on both alike
                spec = build_spec(pool="threads", workload="io_sleep", duration=0.0001, concurrency=8, tasks=TASKS,
                                  broker=name, sample_hz=10)
                redis_before, node_before = cpu_s(redis_broker.pid), cpu_s(node.pid)
                run = run_bench(spec, results_dir=ROOT / "results", redis_url=redis_broker.url,
                                log=lambda _l: None, mark_latest=False, rabbit=node)
                assert run.summary is not None and run.summary.throughput_per_s and run.summary.makespan_s
                rates[name].append(run.summary.throughput_per_s)
                worker = (run.summary.mean_cores_used or 0) * run.summary.makespan_s
                channel[name].append((cpu_s(redis_broker.pid) - redis_before, cpu_s(node.pid) - node_before, worker))
    env = environment.collect()
    per_k = 1000 / TASKS

    def row(name: str) -> str:
        r, n, w = (statistics.median(c[i] for c in channel[name]) for i in range(3))
        return (f"| {name} | {statistics.median(rates[name]):,.0f} ({min(rates[name]):,.0f}-{max(rates[name]):,.0f}) "
                f"| {r * per_k * 1000:.0f} ms | {n * per_k * 1000:.0f} ms | {w * per_k * 1000:.0f} ms |")

    body = [
        "## The broker as an axis (issue 26)", "",
        f"`python benchmarks/brokers.py`, {env['time_utc']}. Machine: {env['cpu_model']}, {env['cpu_count_logical']} "
        f"logical CPUs, Python {env['python']}, celery {env['packages']['celery']}, {version}.", "",
        f"A private RabbitMQ node, started {STARTS} times: ready in {statistics.median(starts):.1f} s (median; "
        f"{min(starts):.1f}-{max(starts):.1f} s). A sweep starts one for all its cells.", "",
        f"Near-empty tasks ({TASKS:,} of 0.1 ms on threads at 8 slots, {ROUNDS} interleaved rounds, median and "
        "range): tasks/s through each broker, and the CPU per 1,000 tasks of the lab's Redis (which carries the "
        "records either way, and the tasks too on Redis), of the RabbitMQ node, and of the worker.", "",
        "| broker | tasks/s | Redis CPU | RabbitMQ CPU | worker CPU |", "|---|---|---|---|---|",
        row("redis"), row("rabbitmq"), "",
        "With RabbitMQ carrying the tasks, the Redis column is the record channel's whole cost.",
    ]
    print(write_section("brokers", body))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()  # a SIGTERM stops the workers, the brokers and removes temporary files
    main()
