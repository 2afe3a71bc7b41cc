"""Benchmark: how true the reported speedups are on this machine, whose speed drifts (issue 21).

10 interleaved rounds of solo, threads and prefork on `cpu` work at concurrency 2 (solo, threads, prefork,
solo, ...), each a fresh worker, as `make bench` runs them. For every run two speedups are computed from the
same records:
- before issue 21: against the one task timed alone before the batch, nothing marked but other processes;
- now: against the median of the tasks timed alone before and after the batch, runs marked UNSTEADY or
  DISTURBED set apart.
The physical expectation is solo 1, threads 1 (a GIL build), prefork min(2, cores). Target: every unmarked
speedup within 10 % of it. An argument sets the number of rounds (default 10). Writes its section of BENCHMARKS.md,
with the machine it ran on.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402
from harness.analysis.trust import unreliable  # noqa: E402
from harness.lab import environment  # noqa: E402
from harness.lab.services.redis_broker import RedisBroker  # noqa: E402
from harness.model.machine import usable_cores  # noqa: E402
from harness.model.spec import build_spec  # noqa: E402
from harness.pipeline import run_bench  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10  # `python benchmarks/fidelity.py 20`: more rounds
POOLS = ("solo", "threads", "prefork")
TARGET = 0.10


def expected(pool: str) -> float:
    return float(min(2, usable_cores())) if pool == "prefork" else 1.0


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f} (median {statistics.median(values):.2f})"


def _within(values: list[float], ideal: float) -> str:
    if not values:
        return "-"
    ok = sum(abs(v - ideal) <= TARGET * ideal for v in values)
    return f"{ok} of {len(values)}"


def main() -> None:
    env = environment.collect()
    runs: dict[str, list[dict]] = {p: [] for p in POOLS}
    with RedisBroker(None) as broker:
        for i in range(ROUNDS):
            for pool in POOLS:
                run = run_bench(build_spec(pool=pool, workload="cpu", concurrency=2), results_dir=ROOT / "results",
                                redis_url=broker.url, log=lambda _line: None, mark_latest=False)
                s = run.summary
                assert s is not None and s.alone_runs_s and s.makespan_s
                first = s.alone_runs_s[0]
                runs[pool].append({"old": (s.tasks_done or 0) * first / s.makespan_s, "new": s.speedup,
                                   "old_marked": bool(s.disturbed), "marked": unreliable(s),
                                   "unsteady": bool(s.unsteady), "drift": s.machine_drift or 0.0,
                                   "steal": s.steal_cores or 0.0})
                print(f"round {i + 1} {pool}: before {runs[pool][-1]['old']:.2f}x, now {s.speedup:.2f}x"
                      f"{' UNSTEADY: ' + str(s.unsteady_cause) if s.unsteady else ''}", flush=True)
    rows, beyond = [], 0
    for pool in POOLS:
        ideal, rs = expected(pool), runs[pool]
        old = [r["old"] for r in rs if not r["old_marked"]]
        new = [r["new"] for r in rs if not r["marked"]]
        beyond += sum(v > ideal * (1 + TARGET) for v in new)
        rows.append(f"| {pool} | {ideal:g}x | {_spread(old)} | {_within(old, ideal)} | "
                    f"{sum(r['old_marked'] for r in rs)} of {len(rs)} | {_spread(new)} | {_within(new, ideal)} | "
                    f"{sum(r['marked'] for r in rs)} of {len(rs)} ({sum(r['unsteady'] for r in rs)} unsteady) | "
                    f"{statistics.median(r['drift'] for r in rs):.0%} | {max(r['steal'] for r in rs):.2f} |")
    lines = ["## Fidelity: speedups on a machine whose speed drifts (issue 21)", "",
             f"`python benchmarks/fidelity.py`, {env['time_utc']}. Machine: {env['cpu_model']}, "
             f"{env['cpu_count_logical']} logical CPUs, Python {env['python']}, celery {env['packages']['celery']}.",
             f"{ROUNDS} interleaved rounds of solo, threads and prefork, `cpu` work, concurrency 2, 8 tasks of 0.25 s, "
             "a fresh worker each. *Before*: the speedup against the one task timed alone before the batch, as the lab "
             "reported it before issue 21, only DISTURBED runs set apart. *Now*: against the median of the tasks "
             "timed alone before and after, DISTURBED and UNSTEADY runs set apart. Both from the same runs.", "",
             "| pool | expected | before: unmarked speedups | within 10 % | marked | now: unmarked speedups | "
             "within 10 % | marked | median drift | max steal (cores) |",
             "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
             f"Unmarked speedups more than 10 % above their expectation now: {beyond} (target 0)."]
    print(write_section("fidelity", lines))


if __name__ == "__main__":
    from harness.cli import stop_in_order_on_signals

    stop_in_order_on_signals()
    main()
