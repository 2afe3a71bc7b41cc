"""Benchmark: what measuring costs. Writes its section of BENCHMARKS.md.

- instrumentation overhead: no-op tasks on one threads worker, batches with the lab's full
  recording interleaved with batches that only count (target: throughput ratio >= 0.95);
- sampler overhead at 10 / 50 / 200 Hz, as a fraction of one core (target: <= 2 % at 50 Hz).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks.sections import write_section  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.client import client_app  # noqa: E402
from harness.lab.sampler import Sampler  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.lab.worker import Worker  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402
from workloads.protocol import done_key, queue_name, records_key  # noqa: E402

BATCH, ROUNDS = 2000, 4
RATIO_TARGET, SAMPLER_TARGET = 0.95, 0.02


def _batch(app, client, queue: str, run_id: str, record: bool) -> float:
    """Tasks per second for one batch, from the first submit to the last completion."""
    key = records_key(run_id) if record else done_key(run_id)
    client.delete(key)
    t0 = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(BATCH):
            app.send_task("noop", args=[record], queue=queue, producer=producer)
    deadline = time.monotonic() + 120
    count = (lambda: client.llen(key)) if record else (lambda: int(client.get(key) or 0))
    while count() < BATCH:
        if time.monotonic() > deadline:
            raise RuntimeError("batch did not finish")
        time.sleep(0.005)
    return BATCH / (time.perf_counter() - t0)


def instrumentation(broker_url: str) -> dict:
    run_id = "bench-instrumentation"
    queue = queue_name(run_id)
    spec = build_spec(pool="threads", workload="io_sleep", concurrency=2, tasks=1)
    app, client = client_app(broker_url), redis.Redis.from_url(broker_url)
    on, off = [], []
    with Worker(spec, broker_url, run_id, Path("/tmp") / "bench-instrumentation.log"):
        _batch(app, client, queue, run_id, True)  # warm-up, discarded
        for _ in range(ROUNDS):  # interleaved, so drift hits both alike
            on.append(_batch(app, client, queue, run_id, True))
            off.append(_batch(app, client, queue, run_id, False))
    client.delete(queue, records_key(run_id), done_key(run_id))
    return {"on": statistics.median(on), "off": statistics.median(off)}


def sampler_cost(broker_url: str) -> list[tuple[str, int, float, float]]:
    rows = []
    for pool in ("threads", "prefork"):
        spec = build_spec(pool=pool, workload="io_sleep", concurrency=2, tasks=1)
        with Worker(spec, broker_url, f"bench-sampler-{pool}", Path("/tmp") / "bench-sampler.log") as worker:
            for hz in (10, 50, 200):
                with Sampler(worker.pid, hz) as sampler:
                    time.sleep(5)
                sampler.stop()
                cost = sampler.own_cost()
                rows.append((pool, hz, cost["sampler_core_fraction"], cost["samples"] / sampler.elapsed_s))
    return rows


def probe_cost(broker_url: str) -> dict:
    """What the GIL probes cost the work they watch: cpu tasks on threads, probes on vs off, interleaved."""
    makespans: dict[bool, list[float]] = {True: [], False: []}
    oncpu = []
    for _ in range(3):
        for probe in (False, True):
            run = run_bench(build_spec(pool="threads", workload="cpu", concurrency=2, tasks=4, duration=0.3,
                                       gil_probe=probe), results_dir=ROOT / "results", redis_url=broker_url,
                            log=lambda _l: None, mark_latest=False)
            assert run.summary is not None  # run_bench returns a summarized run
            makespans[probe].append(run.summary.makespan_s)
            if probe:
                cost = run.manifest.settings.gil_probe_cost
                assert cost is not None  # recorded by every run with the probes
                oncpu.append(cost["oncpu_sampler_core_fraction"])
    return {"off": statistics.median(makespans[False]), "on": statistics.median(makespans[True]),
            "oncpu_fraction": statistics.median(oncpu)}


def main() -> None:
    env = environment.collect()
    with RedisBroker() as broker:
        inst = instrumentation(str(broker.url))
        samp = sampler_cost(str(broker.url))
        probe = probe_cost(str(broker.url))
    ratio = inst["on"] / inst["off"]
    lines = [
        "## What measuring costs (issue 6)", "",
        f"`python benchmarks/instrumentation.py`, {env['time_utc']}. Machine: {env['cpu_model']}, "
        f"{env['cpu_count_logical']} logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.", "",
        f"Instrumentation: no-op tasks on one threads worker (concurrency 2), {ROUNDS} batches of {BATCH} with the "
        "lab's full recording interleaved with batches that only increment a counter; medians.", "",
        "| recording | tasks/s | ratio | target | met |", "|---|---|---|---|---|",
        f"| full record (times, CPU, slot, JSON to Redis) | {inst['on']:.0f} | {ratio:.3f} | >= {RATIO_TARGET} | "
        f"{'yes' if ratio >= RATIO_TARGET else 'no'} |",
        f"| counter only | {inst['off']:.0f} | 1 | | |", "",
        "Sampler: psutil over an idle worker's process tree for 5 s per rate, the sampler thread's own CPU time.", "",
        "| worker | rate asked | rate achieved | sampler CPU, fraction of one core | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for pool, hz, fraction, achieved in samp:
        target = f"<= {SAMPLER_TARGET:.0%}" if hz == 50 else ""
        met = ("yes" if fraction <= SAMPLER_TARGET else "no") if hz == 50 else ""
        lines.append(f"| {pool}, concurrency 2 | {hz} Hz | {achieved:.0f} Hz | {fraction:.2%} | {target} | {met} |")
    lines += ["", "GIL probes (`--gil-probe`, off by default): 4 cpu tasks of 0.3 s on threads, concurrency 2, "
              "3 runs with and 3 without, interleaved; medians. Each run with the probes records their cost in "
              "its run.json (`summary.gil_probe`).", "",
              "| probes | makespan | harness on-CPU sampler, fraction of one core |", "|---|---|---|",
              f"| off | {probe['off']:.3f} s | |",
              f"| on | {probe['on']:.3f} s ({probe['on'] / probe['off'] - 1:+.1%}) | {probe['oncpu_fraction']:.1%} |"]
    print(write_section("instrumentation", lines))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()  # a SIGTERM stops the worker and Redis and removes temporary files
    main()
