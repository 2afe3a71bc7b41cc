"""Open-loop load on a real worker (issue 25): tasks sent on a schedule whatever the worker does, latency from each
task's scheduled time, and SATURATED when a pool does not hold the rate. The rates are chosen far from capacity on
either side, so the machine's drifting speed (2x within seconds) cannot move a run across it."""
from __future__ import annotations

import json

from lab_process import harness


def test_a_rate_well_under_capacity_has_about_the_tasks_own_time_as_its_latency(bench):
    # 4 threads, 50 ms sleeps: 80 a second at most; 20 a second offered, Poisson arrivals (bunches happen).
    run = bench(pool="threads", workload="io_sleep", duration=0.05, concurrency=4, rate=20, load_time=4,
                arrivals="poisson", seed=3)
    s, load = run.summary, run.summary.load
    assert load is not None and not load.saturated and s.tasks_done == run.spec.tasks
    assert 0.05 <= load.latency_p50_s < 0.08 and load.latency_p99_s >= load.latency_p50_s
    assert load.submit_late_p50_s < 0.01 and load.latency_tasks > 0
    assert "scheduled" in run.tasks and (run.path / "queue.csv").exists()
    assert (run.path / "latency-spectrum.png").exists() and (run.path / "queue.png").exists()
    assert not any(n.startswith("SATURATED") for n in s.notes)


def test_a_rate_well_over_capacity_is_marked_saturated_with_its_growth(tmp_path):
    # Python CPU work on threads: one core under the GIL, 50 ms tasks, so 10-40 a second on this machine; 80 offered.
    done = harness("load", "--pool", "threads", "--workload", "cpu", "--duration", "0.05", "--concurrency", "2",
                   "--rate", "80", "--load-time", "3", "--json", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)["summary"]
    load = summary["load"]
    assert load["saturated"] and load["backlog_growth_per_s"] > 20 and load["finish_rate"] < 60
    said = [n for n in summary["notes"] if n.startswith("SATURATED: 80 tasks/s offered")]
    assert said and "the queue grew by" in said[0]
    assert load["latency_p99_s"] > 1.0  # the last arrivals waited behind the backlog


def test_load_needs_a_rate_and_refuses_a_bad_pattern_before_anything_starts(tmp_path):
    for args, message in [([], "load offers tasks at a rate: give RATE"),
                          (["--rate", "40", "--arrivals", "burst:3"], "is not an arrival pattern"),
                          (["--rate", "40", "--tasks", "10"], "TASKS follows from RATE x LOAD_TIME")]:
        done = harness("load", "--pool", "threads", *args, "--results-dir", "results", cwd=tmp_path, timeout=60)
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
        assert message in done.stderr
    assert not (tmp_path / "results").exists()
