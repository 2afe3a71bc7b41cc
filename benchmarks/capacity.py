"""Benchmark: open-loop load (issue 25). How fast the lab's submitter keeps a schedule on this machine (the highest
rate it sends with its lateness p99 under the mark, SUBMITTER BEHIND), and the capacity of each pool for io_sleep
50 ms and cpu 20 ms tasks within p95 < 0.5 s, one worker each at the slots of experiments/capacity.toml.

Writes its section of BENCHMARKS.md (between its markers), with the machine it ran on.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness import capacity  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.experiment import Experiment, load_experiment  # noqa: E402
from harness.model.slo import parse  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402
from harness.present.sweep_figures import hockey_sticks  # noqa: E402

# Rates for the submitter: tasks that take 1 ms of waiting on gevent at 200 slots, so the worker keeps up and what
# is measured is the sender's lateness.
SUBMITTER_RATES = [250, 500, 1000, 2000]
WORKS = [("io_sleep", 0.05), ("cpu", 0.02)]


def main() -> None:
    results = ROOT / "results"
    submitter = []
    with RedisBroker() as broker:
        def measure(spec, folder):
            return run_bench(spec, results_dir=folder, redis_url=broker.url, log=lambda _l: None, mark_latest=False)

        for rate in SUBMITTER_RATES:
            run = measure(build_spec(pool="gevent", workload="io_sleep", duration=0.001, concurrency=200, rate=rate,
                                     load_time=5, sample_hz=10), results)
            load = run.summary.load
            submitter.append((rate, load.submit_late_p50_s, load.submit_late_p99_s, load.submit_late_max_s,
                              load.submitter_behind, load.finish_rate, load.saturated))
        shipped = load_experiment(ROOT / "experiments" / "capacity.toml")
        slo = parse(shipped.slo or "p95<500ms")
        found = []
        for work, duration in WORKS:
            exp = Experiment(shipped.path, f"benchmark-{work}", shipped.question, 1,
                             {**shipped.fixed, "workload": work, "duration": duration}, {"pool": shipped.axes["pool"]},
                             slo=shipped.slo)
            t0 = time.monotonic()
            searches, folder = capacity.search_experiment(exp, slo, results, measure)
            hockey_sticks([s.to_dict() for s in searches], slo.percentile, slo.limit_s, f"{work} {duration:g} s",
                          folder / "capacity.png")
            found.append((work, duration, searches, time.monotonic() - t0, folder))
    env = environment.collect()
    held = [r for r in submitter if not r[4]]
    rows = [f"| {rate:,} | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms | {mx * 1000:.1f} ms | "
            f"{'BEHIND' if behind else 'on schedule'} | {fin:,.0f} |"
            for rate, p50, p99, mx, behind, fin, _ in submitter]
    cap_rows = []
    for work, duration, searches, _wall, _folder in found:
        for s in searches:
            d = s.to_dict()
            cap_rows.append(f"| {work} {duration * 1000:g} ms | {s.pool} | "
                            + (f"{d['capacity']:.3g}" if d["capacity"] else "none held") + " | "
                            + (f"{d['cores_used']:.2f}" if d["cores_used"] else "-") + " | "
                            + (f"{d['memory_mib']:.0f} MiB" if d["memory_mib"] else "-") + " | "
                            + (capacity.rate_text(d["per_gib"]) if d["per_gib"] else "-") + f" | {len(s.steps)} |")
    concurrency = shipped.fixed.get("concurrency")
    body = [
        "## Open-loop load and capacity (issue 25)", "",
        f"`python benchmarks/capacity.py`, {env['time_utc']}. Machine: {env['cpu_model']}, {env['cpu_count_logical']} "
        f"logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.", "",
        "The submitter: 5 s of constant arrivals of 1 ms waits to gevent at 200 slots; how late each task was sent "
        "after its scheduled time (marked BEHIND past max(20 ms, two gaps between arrivals)). *finished/s* is the "
        "worker's: below the rate it is the worker that did not keep up, not the submitter.", "",
        "| rate (tasks/s) | late p50 | late p99 | late max | submitter | finished/s |", "|---|---|---|---|---|---|",
        *rows, "",
        f"Highest rate held on schedule here: {max(r[0] for r in held):,} tasks/s." if held else
        "No rate tried was held on schedule here.", "",
        f"Capacity of one worker within {slo.text} (make capacity; concurrency {concurrency}, 5 s of load a step, "
        "ramp then three bisection steps). *cores used* and *memory* are the worker's at the capacity step.", "",
        "| tasks | pool | capacity (tasks/s) | cores used | memory (PSS peak) | per GiB | steps |",
        "|---|---|---|---|---|---|---|", *cap_rows, "",
        *[f"- {line} (the {len(searches)} searches: {wall:.0f} s)" for _w, _d, searches, wall, _f in found
          for line in capacity.answers(searches)],
    ]
    print(write_section("capacity", body))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()  # a SIGTERM stops the worker and Redis and removes temporary files
    main()
