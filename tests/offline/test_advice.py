"""The advisor's pure half, on hand-made tables: which cells it measures, what it recommends and why."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.analysis import advice
from harness.analysis.resources import memory
from harness.model.pools import pool
from harness.model.workloads import workload

ALL = ["solo", "prefork", "threads", "gevent", "eventlet"]


def test_plan_tries_a_high_level_only_for_a_task_that_mostly_waits():
    cpu = advice.plan(2, 0.97, ALL)
    assert cpu.high is None and cpu.levels == [2, 8]
    assert {(c["pool"], c["concurrency"]) for c in cpu.cells} == {("solo", 1)} | {
        (p, c) for p in ALL[1:] for c in (2, 8)}
    io = advice.plan(2, 0.02, ALL)
    assert io.high == 100  # 2 cores / 2 % CPU: about 100 tasks keep the cores busy
    assert ("gevent", 100) in [(c["pool"], c["concurrency"]) for c in io.cells]
    assert ("prefork", 100) not in [(c["pool"], c["concurrency"]) for c in io.cells]  # 100 processes: no
    assert advice.plan(16, 0.0, ["solo", "threads"]).high == 128  # bounded
    assert [c["pool"] for c in advice.plan(2, 0.5, ["solo", "threads"]).cells] == ["solo", "threads", "threads"]
    assert advice.tasks_for(1) == 8 and advice.tasks_for(100) == 200


def table(rows):
    cols = ["pool", "concurrency", "throughput_per_s", "speedup", "pss_peak_mib", "latency_p95_s", "mean_cores_used",
            "task_stretch", "work_inflation"]
    return pd.DataFrame(rows, columns=cols)


CPU_TABLE = table([
    ("solo", 1, 9.5, 0.98, 45, 0.8, 1.0, 1.0, 1.0),
    ("prefork", 2, 18.3, 1.9, 95, 0.43, 1.9, 0.99, 0.98),
    ("prefork", 8, 17.7, 1.85, 280, 0.89, 1.9, 3.9, 1.0),
    ("threads", 2, 9.5, 0.97, 50, 0.82, 1.0, 1.8, 1.0),
    ("gevent", 8, 9.48, 0.99, 50, 1.6, 1.0, 0.99, 0.99),
])


def test_cpu_work_gets_prefork_with_its_memory_in_the_reason():
    a = advice.recommend(CPU_TABLE, cpu_share=0.99)
    assert (a.pool, a.concurrency, a.close_call) == ("prefork", 2, False)
    assert a.reason.startswith("99% of a task's time alone is CPU under the GIL: prefork 1.9x at 2.1x the memory")
    assert "Choose prefork at concurrency 2: 18.3 tasks/s." in a.reason
    assert list(a.candidates["pool"])[:2] == ["prefork", "prefork"]  # fastest first
    assert a.runner_up["pool"] in ("solo", "threads", "gevent")


def test_a_close_call_says_so_and_takes_the_smaller_memory():
    io = table([
        ("solo", 1, 9.4, 0.98, 47, 0.8, 0.02, 1.0, 1.0),
        ("eventlet", 128, 293, 30.4, 59, 0.59, 0.85, 1.39, 0.8),
        ("gevent", 128, 276, 28.7, 54, 0.65, 0.87, 1.33, 0.7),
        ("threads", 128, 144, 14.9, 53, 1.28, 0.52, 2.65, 3.0),
        ("prefork", 8, 64.5, 6.9, 430, 0.23, 0.2, 1.0, 0.5),
    ])
    a = advice.recommend(io, cpu_share=0.01)
    assert (a.pool, a.concurrency, a.close_call) == ("gevent", 128, True)
    assert "a close call" in a.reason and "under the GIL" not in a.reason
    assert any("within 10%" in note and "eventlet" in note for note in a.notes)
    # Further apart than the margin, the faster one wins whatever its memory.
    io.loc[io["pool"] == "gevent", ["throughput_per_s", "speedup"]] = (200, 20.8)
    assert advice.recommend(io, cpu_share=0.01).pool == "eventlet"


def test_cells_are_ranked_by_their_speedup_not_by_tasks_per_second_measured_at_other_moments():
    # The machine ran twice as fast while the solo cell ran: its tasks/s beat prefork's, measured in a slow
    # minute. Each cell's speedup is against the task alone in its own run, at its own moment: prefork wins.
    drifted = CPU_TABLE.copy()
    drifted.loc[drifted["pool"] == "solo", "throughput_per_s"] = 19.0
    drifted.loc[drifted["pool"] == "prefork", "throughput_per_s"] = (10.1, 9.8)
    assert advice.ranking_metric(drifted) == "speedup"
    assert advice.recommend(drifted, cpu_share=0.99).pool == "prefork"
    # Without a speedup for every cell (no reference), tasks/s is all there is.
    assert advice.ranking_metric(drifted.assign(speedup=[1.0, None, 1.8, 1.0, 1.0])) == "throughput_per_s"


def test_no_completed_cell_is_said_not_guessed():
    with pytest.raises(ValueError, match="no cell"):
        advice.recommend(table([]), cpu_share=0.5)


def test_mixed_work_ideal_speedup_is_bounded_by_slots_and_by_cpu():
    # f = share of a task's time alone that is CPU: speedup <= min(slots, python cores / f)
    assert pool("threads").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=0.2) == 4
    assert pool("threads").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=0.8) == pytest.approx(1.25)
    assert pool("prefork").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=0.8) == pytest.approx(2.5)
    assert pool("prefork").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=1.0) == 2
    assert pool("gevent").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=0.0) == 4
    assert pool("solo").ideal_speedup("mixed", 4, 8, 2, cpu_fraction=0.2) == 1
    assert pool("threads").ideal_speedup("mixed", 4, 8, 2, gil_free=True, cpu_fraction=0.8) == pytest.approx(2.5)
    assert pool("threads").ideal_speedup("own", 4, 8, 2) is None  # the user's task is not assumed anything


def test_mixed_task_arguments_give_the_cpu_share_asked():
    rate = {"iterations_per_s": 1_000_000}
    burst, wait, rounds = workload("mixed").task_args(0.5, rate, None, cpu_fraction=0.3)
    assert rounds == 25 and burst * rounds == pytest.approx(0.3 * 0.5 * 1_000_000, rel=0.01)
    assert wait * rounds == pytest.approx(0.7 * 0.5)


def test_memory_sums_the_tree_at_each_sample_and_keeps_the_peak():
    mib = 2 ** 20
    rows = [(1.0, "process", 1, 100 * mib, 40 * mib, 60 * mib), (1.0, "process", 2, 100 * mib, 30 * mib, 50 * mib),
            (2.0, "process", 1, 120 * mib, None, None), (2.0, "process", 2, 100 * mib, None, None),
            (2.0, "core", None, None, None, None)]
    samples = pd.DataFrame(rows, columns=["t", "kind", "pid", "rss", "uss", "pss"])
    m = memory(samples, 0.5, 2.5)
    assert m["rss_peak_mib"] == pytest.approx(220) and m["rss_mean_mib"] == pytest.approx(210)
    assert m["uss_peak_mib"] == pytest.approx(70) and m["pss_peak_mib"] == pytest.approx(110)
    # A run shorter than the USS period: the whole record stands in.
    assert memory(samples, 1.9, 2.5)["pss_peak_mib"] == pytest.approx(110)
    assert memory(pd.DataFrame(), 0, 1)["rss_peak_mib"] is None


def crossover_table():
    rows = []
    for f, thr, pre, gev in [(0.0, 3.8, 3.7, 3.75), (0.25, 3.35, 3.4, 3.2), (0.5, 1.85, 2.9, 1.65),
                             (1.0, 0.97, 1.76, 0.93)]:
        for pool_name, speedup in (("threads", thr), ("prefork", pre), ("gevent", gev)):
            ideal = pool(pool_name).ideal_speedup("mixed", 4, 16, 2, cpu_fraction=f)
            rows.append({"cell": len(rows), "label": f"pool={pool_name} cpu_fraction={f}", "pool": pool_name,
                         "cpu_fraction": f, "speedup": speedup, "speedup_q25": speedup, "speedup_q75": speedup,
                         "ideal_speedup": ideal, "warning": ""})
    return pd.DataFrame(rows)


def test_where_each_pool_stops_paying_off_is_interpolated_from_the_table(tmp_path):
    from harness.analysis.stats import stops_paying_off
    from harness.present.reading import sweep_reading
    from harness.present.sweep_figures import sweep_figures

    stops = stops_paying_off(crossover_table())
    assert stops["prefork"] is None
    # threads: ratio 3.35/3.4 = 0.985 at 0.25, 1.85/2.9 = 0.638 at 0.5 -> crosses 0.9 at ~0.33
    assert stops["threads"] == pytest.approx(0.25 + (0.985 - 0.9) / (0.985 - 0.638) * 0.25, abs=0.01)
    assert stops["gevent"] < stops["threads"]
    lines = sweep_reading(crossover_table(), ["pool", "cpu_fraction"], 2)
    assert any(line.startswith("prefork is within 90% of the best pool's speedup at the highest") for line in lines)
    assert any(line.startswith("threads falls below 90% of the best pool's speedup past CPU fraction 0.31")
               for line in lines)
    assert not any(line.startswith("Caution") for line in lines)
    figures = sweep_figures(tmp_path, crossover_table(), ["pool", "cpu_fraction"], 2, {}, "")
    assert tmp_path / "crossover.png" in figures and (tmp_path / "crossover.png").stat().st_size > 10_000


def test_a_dip_that_recovers_is_not_where_a_pool_stops_paying_off():
    from harness.analysis.stats import stops_paying_off

    table = crossover_table()
    table.loc[(table["pool"] == "prefork") & (table["cpu_fraction"] == 0.25), "speedup"] = 2.9  # 0.87 of threads
    assert stops_paying_off(table)["prefork"] is None
    table.loc[table["pool"] == "gevent", "speedup"] = 0.5  # below everywhere: it never kept up
    assert stops_paying_off(table)["gevent"] == 0.0


def test_a_speedup_beyond_its_ideal_or_a_cell_never_measured_steadily_does_not_lead():
    # solo's 1.47x (ideal 1) came from an unsteady reference: counted at 1x, prefork's 1.4x wins.
    drifted = CPU_TABLE.assign(ideal_speedup=[1, 2, 2, 1, 1], n=2, disturbed=0, unsteady=[2, 0, 0, 0, 0])
    drifted.loc[drifted["pool"] == "solo", "speedup"] = 1.47
    drifted.loc[drifted["pool"] == "prefork", "speedup"] = (1.4, 1.35)
    assert advice.recommend(drifted, cpu_share=0.99).pool == "prefork"
    # Unsteady cells are not ranked down (most runs here are); the advice says how many there were.
    marked = drifted.assign(unsteady=[0, 2, 1, 0, 0])
    a = advice.recommend(marked, cpu_share=0.99)
    assert a.pool == "prefork" and list(advice.candidates(marked)["pool"])[0] == "prefork"
    assert any(n.startswith("2 of 5 settings had a repeat measured while") for n in a.notes), a.notes


def test_a_green_pool_that_ran_a_waiting_task_one_at_a_time_is_said_from_the_measurements():
    """The advisor's table for examples.tasks:wait_in_c as measured here (a wait inside C): gevent's records show
    tasks "running" together (the task, as it was, yielded on its way in: find_library's child) but it gained 1.3x
    with 128 slots; threads overlapped."""
    io = table([
        ("solo", 1, 4.9, 0.99, 47.2, 1.56, 0.01, 1.0, 0.92),
        ("threads", 128, 340, 68.7, 53.8, 0.64, 0.63, 1.01, 0.71),
        ("gevent", 128, 6.42, 1.34, 51, 37.5, 0.04, 1.63, 0.74),
        ("eventlet", 8, 4.61, 0.96, 67.8, 3.31, 0.01, 4.42, 0.88),
    ]).assign(mean_tasks_running=[0.99, 69.3, 2.18, 4.23], max_tasks_running=[1, 128, 9, 6],
              task_cpu_share=[0.01, 0.01, 0.01, 0.001])
    a = advice.recommend(io, cpu_share=0.01)
    assert a.pool == "threads"
    assert "gevent ran your tasks about one at a time (1.3x one at a time at concurrency 128)" in a.reason
    assert "eventlet ran your tasks about one at a time" in a.reason and "threads ran" not in a.reason
    assert "waits without yielding to the event loop" in a.reason
    # The same pools overlapping the waits (a driver that yields): nothing said.
    io.loc[io["pool"] == "gevent", ["speedup", "max_tasks_running"]] = (110.0, 128)
    io.loc[io["pool"] == "eventlet", ["speedup", "max_tasks_running"]] = (7.6, 8)
    assert "one at a time (" not in advice.recommend(io, cpu_share=0.01).reason


def test_advice_at_a_rate_searches_the_recommendation_and_the_best_other_pool():
    a = advice.recommend(CPU_TABLE, cpu_share=0.99)
    # gevent at 8 (0.99x) ranks above threads at 2 (0.97x): the best other pool by the batch ranking
    assert advice.rate_candidates(a) == [{"pool": "prefork", "concurrency": 2}, {"pool": "gevent", "concurrency": 8}]


def test_workers_for_a_rate_are_what_one_holds_rounded_up_and_only_those_that_fit_are_measured():
    # 120/s on a setting that holds 50/s: 3 workers; each used 0.5 cores, 3 fit in 90 % of 2 cores: all measured
    fits = advice.plan_rate(120, 50, 0.5, cores=2, max_workers=64)
    assert (fits.workers, fits.here, fits.verify_rate, fits.extrapolated) == (3, 3, 120, False)
    # each used 1.9 cores: one fits; it is offered 90 % of what it held, the other two are extrapolated
    big = advice.plan_rate(120, 50, 1.9, cores=2, max_workers=64)
    assert (big.workers, big.here, big.verify_rate, big.extrapolated) == (3, 1, 45.0, True)
    assert advice.plan_rate(30, 50, 1.9, cores=2, max_workers=64).workers == 1


def test_the_advice_at_a_rate_gives_its_headroom_what_was_measured_and_marks_what_was_not():
    plan = advice.plan_rate(120, 50, 1.9, cores=2, max_workers=64)
    said = advice.rate_sentence(120, "p95<500ms", "prefork", 2, 50, 1.9, plan,
                                {"workers": 1, "rate": 45.0, "percentile": 95, "latency_slo_s": 0.08, "held": True})
    assert said.startswith("One prefork worker at concurrency 2 holds 50 tasks/s within p95<500ms, using 1.90 cores. "
                           "120 tasks/s needs 3 such workers (150 tasks/s between them: 25% headroom).")
    assert "Measured: 1 worker offered 45 tasks/s here: p95 80 ms, held." in said
    assert "EXTRAPOLATED: 3 workers is 3.0x the 1 measured here" in said
    fits = advice.plan_rate(40, 50, 0.5, cores=2, max_workers=64)
    failed = advice.rate_sentence(40, "p95<500ms", "threads", 8, 50, 0.5, fits,
                                  {"workers": 1, "rate": 40, "percentile": 95, "latency_slo_s": 0.9, "held": False,
                                   "saturated": True})
    assert failed.endswith("p95 900 ms, NOT held (saturated).") and "EXTRAPOLATED" not in failed


def test_the_advice_says_when_the_broker_not_the_pool_explains_a_loss():
    rows = table([("solo", 1, 4.0, 0.98, 45, 0.3, 0.0, 1.0, 1.0), ("threads", 8, 30.0, 7.5, 50, 0.3, 0.1, 1.0, 1.0),
                  ("gevent", 8, 1.3, 0.3, 50, 7.0, 0.0, 1.0, 1.0)]).assign(dispatch_gap_max_s=[0.002, 0.003, 1.95])
    said = [n for n in advice.recommend(rows, cpu_share=0.02).notes if "broker's doing" in n]
    assert said and said[0].startswith("gevent at 8: free slots waited up to 1.95 s")
    assert not [n for n in advice.recommend(rows, 0.02, broker_name="rabbitmq").notes if "broker's doing" in n]
