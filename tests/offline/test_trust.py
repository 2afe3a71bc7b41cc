"""How far results can be trusted, offline: disturbance, intervals, ties, trust levels, the decision,
the sweep's cautions, and compare's exit code and one-line result."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness import cli
from harness.analysis import summary, trust
from harness.analysis.compare import result_line
from harness.analysis.decision import decide
from harness.judge import judge_sweep
from harness.model.spec import build_spec
from harness.pipeline import compare, report, summarize
from harness.present.console import summary_table
from harness.results import load_run
from harness.results.records import Cell, Summary

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "v1"


# --- disturbance -------------------------------------------------------------------------------

def test_a_run_is_disturbed_from_half_a_core_or_a_tenth_of_a_big_machine():
    assert trust.is_disturbed(0.2, 2) is False and trust.is_disturbed(0.6, 2) is True
    assert trust.is_disturbed(1.0, 16) is False and trust.is_disturbed(1.7, 16) is True
    assert trust.is_disturbed(None, 2) is None and trust.is_disturbed(float("nan"), 2) is None


def _run_tables(machine_busy_s: float):
    """Two tasks of 1 s on a 2-core machine; the worker used 1 core, the lab 0.1, the machine in all
    1 + 0.1 + `machine_busy_s` beyond them."""
    tasks = pd.DataFrame({"submitted": [0.0, 0.0], "started": [0.0, 0.0], "finished": [1.0, 1.0],
                          "cpu_s": [0.5, 0.5], "slot": ["t1", "t2"], "switch_interval": 0.005, "error": None})
    rows = []
    for t, frac in ((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)):
        rows.append((t, "process", 10, None, 1.0 * frac, 0.0))
        rows.append((t, "lab", 20, None, 0.1 * frac, 0.0))
        rows.append((t, "core", None, 0, 1.0 * frac, 0.0))  # the worker's core
        rows.append((t, "core", None, 1, (0.1 + machine_busy_s) * frac, 0.0))  # the lab and the others
    samples = pd.DataFrame(rows, columns=["t", "kind", "pid", "tid", "user_s", "system_s"])
    return tasks, samples


def _ctx():
    return summary.RunContext(pool="threads", workload="cpu", kind="python-cpu", concurrency=2, tasks=2,
                              duration=1.0, switch_interval=0.005, cores=2)


def test_other_processes_cpu_is_what_neither_the_worker_nor_the_lab_used():
    tasks, samples = _run_tables(machine_busy_s=0.8)
    s = summary.summarize(tasks, samples, _ctx())
    assert s.other_cores_used == pytest.approx(0.8) and s.disturbed is True
    assert s.notes[0].startswith("DISTURBED: 0.8 other cores were busy during this run: its speedup is not reliable")
    # Two tasks running on one core of two: on a disturbed run the GIL is not blamed for it.
    assert "2.0 tasks running on average but 1.0 cores used: other processes on the machine took the difference." \
        in s.notes
    quiet = summary.summarize(*_run_tables(machine_busy_s=0.05), _ctx())
    assert quiet.other_cores_used == pytest.approx(0.05) and quiet.disturbed is False
    assert not any("DISTURBED" in n for n in quiet.notes)
    assert any(n.endswith("the GIL took the difference.") for n in quiet.notes)
    prefork = summary.summarize(*_run_tables(machine_busy_s=0.05), summary.RunContext(
        pool="prefork", workload="cpu", kind="python-cpu", concurrency=2, tasks=2, duration=1.0,
        switch_interval=0.005, cores=2))
    assert any(n.endswith("the OS scheduler (processes ready to run got no core) took the difference.")
               for n in prefork.notes)
    # A run stored before the lab sampled its own processes: not known, not called quiet.
    old = summary.summarize(tasks, samples[samples["kind"] != "lab"], _ctx())
    assert old.other_cores_used is None and old.disturbed is None


def test_the_console_names_a_disturbed_run_and_who_disturbed_it(tmp_path):
    path = tmp_path / "run"
    shutil.copytree(DATA / "run-threads-cpu-gil", path)
    manifest = json.loads((path / "run.json").read_text())
    manifest["summary"].update(other_cores_used=1.36, disturbed=True)
    manifest["settings"]["machine_load"] = {"load_average_before": [1.9, 1.0, 0.5],
                                            "load_average_after": [2.1, 1.1, 0.5],
                                            "busiest_other_processes": [{"name": "stress", "pid": 4242, "cpu_s": 5.4,
                                                                         "cores": 1.35}]}
    (path / "run.json").write_text(json.dumps(manifest))
    text = summary_table(load_run(path))
    assert "other processes' CPU" in text and "1.36 cores" in text
    assert "DISTURBED: load 1.90 before, 2.10 after; busiest: stress (1.35)" in text


# --- intervals, ties, trust --------------------------------------------------------------------

def test_bootstrap_interval_of_the_median():
    assert all(pd.isna(x) for x in trust.bootstrap_interval([1.8]))
    assert trust.bootstrap_interval([1.5, 1.5, 1.5]) == (1.5, 1.5)
    low, high = trust.bootstrap_interval([1.80, 1.85, 1.90, 1.82, 1.88])
    assert 1.80 <= low < high <= 1.90
    assert trust.bootstrap_interval([1.8, 1.9]) == trust.bootstrap_interval([1.8, 1.9])  # seeded: the same each time


def test_a_difference_smaller_than_the_spread_is_a_tie():
    one = trust.interval(1.0, float("nan"), float("nan"), n=1)
    assert one == pytest.approx((0.9, 1.1))  # one repeat: 10% either side
    assert trust.tied(one, trust.interval(1.08, float("nan"), float("nan"), n=1))
    assert not trust.tied(one, trust.interval(1.5, float("nan"), float("nan"), n=1))
    # Three repeats that agree closely still get the noise floor (3%)
    tight = trust.interval(1.94, 1.94, 1.94, n=3)
    assert tight == pytest.approx((1.94 * 0.97, 1.94 * 1.03))
    assert trust.tied(tight, trust.interval(1.97, 1.96, 1.98, n=3))
    assert not trust.tied(trust.interval(1.84, 1.80, 1.88, n=3), trust.interval(0.97, 0.95, 0.99, n=3))


def test_trust_levels():
    assert trust.trust_level(3, False, 0) == ("high", "3 repeats, none disturbed")
    assert trust.trust_level(2, False, 0)[0] == "medium"
    assert trust.trust_level(1, False, 0) == ("low", "one repeat: no spread known")
    assert trust.trust_level(3, True, 0) == ("low", "quick settings, a first look")
    assert trust.trust_level(3, False, 1) == ("low", "1 of 3 repeats disturbed (other processes busy, or the worker "
                                                     "stopped)")
    assert trust.trust_level(3, False, 0, "speedup varies by 40% over 3 repeats")[0] == "low"
    assert trust.weakest([("high", "a"), ("low", "b"), ("medium", "c")]) == ("low", "b")


def test_a_sweep_says_first_what_its_numbers_rest_on():
    quick = trust.sweep_cautions(True, 1, 10, {}, "results/sweep-x")
    assert len(quick) == 1 and quick[0].startswith("QUICK SWEEP: shorter runs and one repeat per cell")
    assert trust.sweep_cautions(False, 1, 10, {}, "f")[0].startswith("ONE REPEAT per cell")
    assert trust.sweep_cautions(False, 3, 10, {}, "f") == []
    disturbed = trust.sweep_cautions(False, 3, 8, {"pool=prefork workload=cpu": 2}, "results/sweep-x")
    assert disturbed == ["DISTURBED: 2 of 8 runs had other processes busy on the machine or their worker stopped "
                         "(pool=prefork workload=cpu "
                         "(2)): their numbers are not reliable. Rerun them: python -m harness sweep --resume "
                         "results/sweep-x --rerun-disturbed"]


# --- the decision ------------------------------------------------------------------------------

def _sweep(rows):
    """A summary table and its cells from (pool, workload, concurrency, speedup, ci_low, ci_high, n, pss, disturbed)."""
    table, cells = [], []
    for i, (pool, work, c, speedup, lo, hi, n, pss, disturbed) in enumerate(rows):
        label = f"pool={pool} workload={work}"
        table.append({"cell": i, "label": label, "pool": pool, "workload": work, "n": n, "speedup": speedup,
                      "speedup_ci_low": lo, "speedup_ci_high": hi, "ideal_speedup": None, "pss_peak_mib": pss,
                      "disturbed": disturbed, "warning": ""})
        cells.append(Cell(cell=i, label=label, settings={"pool": pool, "workload": work, "concurrency": c,
                                                         "workers": 1, "task": None}))
    return pd.DataFrame(table), cells


POOLS_SWEEP = [("prefork", "cpu", 2, 1.84, 1.80, 1.88, 3, 84.0, 0), ("threads", "cpu", 2, 0.97, 0.95, 0.99, 3, 47.0, 0),
               ("solo", "cpu", 1, 0.99, 0.98, 1.00, 3, 40.0, 0),
               ("threads", "io_sleep", 2, 1.94, 1.93, 1.95, 3, 47.0, 0),
               ("gevent", "io_sleep", 2, 1.96, 1.95, 1.97, 3, 60.0, 0),
               ("eventlet", "io_sleep", 2, 1.97, 1.96, 1.98, 3, 55.0, 0)]


def test_the_decision_names_the_clear_winner_and_calls_ties_ties():
    table, cells = _sweep(POOLS_SWEEP)
    cpu, io = decide(table, cells, ["pool", "workload"], quick=False)
    assert cpu.choice == "prefork at concurrency 2" and cpu.tied_with == () and cpu.trust == "high"
    assert cpu.sentence == ("cpu (pure-Python CPU work): choose prefork at concurrency 2: 1.84x against solo at "
                            "concurrency 1 (0.99x), the next best.")
    # io_sleep: three pools within their spread: a tie, settled by memory, and said to be one
    assert io.choice == "threads at concurrency 2" and len(io.tied_with) == 2
    assert io.sentence.startswith("io_sleep (waiting on I/O): a tie: threads at concurrency 2 (1.94x) and ")
    assert "choose threads at concurrency 2, the cheapest (47 MiB)" in io.sentence
    assert io.line().endswith("Trust: high (3 repeats, none disturbed).")


def test_a_deprecated_pool_is_marked_where_it_is_recommended():
    table, cells = _sweep([("eventlet", "io_sleep", 128, 30.1, 29.5, 30.6, 2, 40.0, 0),
                           ("threads", "io_sleep", 8, 7.8, 7.7, 7.9, 2, 47.0, 0)])
    (io,) = decide(table, cells, ["pool"], quick=False)
    assert io.pool == "eventlet" and io.deprecated and io.trust == "medium"
    assert ("choose eventlet at concurrency 128 (deprecated: eventlet's maintainers discourage it for new code"
            in io.sentence)
    # In a tie the pool its maintainers do not discourage is chosen, though it used more memory.
    table, cells = _sweep([("eventlet", "io_sleep", 2, 1.97, 1.96, 1.98, 3, 40.0, 0),
                           ("gevent", "io_sleep", 2, 1.96, 1.95, 1.97, 3, 60.0, 0)])
    (tie,) = decide(table, cells, ["pool"], quick=False)
    assert tie.pool == "gevent" and tie.deprecated is None


def test_when_nothing_ran_in_parallel_the_decision_says_so_and_trust_follows_the_weakest_cell():
    table, cells = _sweep([("threads", "cpu", 2, 1.02, float("nan"), float("nan"), 1, 47.0, 0),
                           ("solo", "cpu", 1, 0.99, float("nan"), float("nan"), 1, 40.0, 0)])
    (cpu,) = decide(table, cells, ["pool"], quick=True)
    assert cpu.sentence.startswith("cpu (pure-Python CPU work): no setting ran it in parallel (best 1.02x); "
                                   "choose solo")
    assert (cpu.trust, cpu.trust_why) == ("low", "quick settings, a first look")
    table, cells = _sweep([("prefork", "cpu", 2, 1.84, 1.80, 1.88, 3, 84.0, 1), ("threads", "cpu", 2, 0.97, 0.95,
                                                                                  0.99, 3,
                                                                                  47.0, 0)])
    (disturbed,) = decide(table, cells, ["pool"], quick=False)
    assert (disturbed.trust, disturbed.trust_why) == ("low", "1 of 3 repeats disturbed (other processes busy, or "
                                                                 "the worker stopped)")


# --- sweeps and compare on stored folders --------------------------------------------------------

def test_a_sweep_report_ends_with_its_decision_and_a_quick_one_opens_with_its_caution(tmp_path):
    folder = tmp_path / "sweep-tiny"
    shutil.copytree(DATA / "sweep-tiny", folder)
    summarize(folder, log=lambda _line: None)
    judgement = judge_sweep(folder)
    assert judgement.cautions == []
    (decision,) = judgement.decisions
    assert decision.choice == "threads at concurrency 2" and decision.trust == "medium"
    text = report(folder).read_text()
    assert "Read this first" not in text
    assert text.rindex("<h2>Decision</h2>") > text.rindex("<h2>Environment</h2>")
    manifest = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**manifest, "quick": True}))
    text = report(folder).read_text()
    assert text.index("Read this first") < text.index("<h2>Results") and "QUICK SWEEP" in text
    assert "Trust: low</span> (quick settings, a first look)" in text


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_compare_exits_1_on_a_significant_difference_with_one_line_for_ci(monkeypatch, capsys):
    differ = _cli("compare", str(DATA / "run-threads-cpu-gil"), str(DATA / "run-prefork-io_net"))
    assert differ.returncode == 1, differ.stderr
    assert differ.stdout.strip().splitlines()[-1].startswith("compare: DIFFERENT in ")
    # The other exits in-process (the command's own function, without a new interpreter each time).
    monkeypatch.setattr(cli, "stop_in_order_on_signals", lambda: None)
    assert cli.main(["compare", str(DATA / "sweep-tiny"), str(DATA / "sweep-tiny")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("compare: SAME")
    assert cli.main(["compare", "--json", "--exit-zero", str(DATA / "run-threads-cpu-gil"),
                     str(DATA / "run-prefork-io_net")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["different"] is True and data["result"].startswith("compare: DIFFERENT")
    assert {r["metric"] for r in data["rows"]} == {"run_s", "queue_wait_s", "latency_s"}


def test_result_line_names_the_largest_changes():
    table = compare(DATA / "run-threads-cpu-gil", DATA / "run-prefork-io_net")
    line = result_line(table)
    assert line.startswith("compare: DIFFERENT in ") and "p=" in line and "->" in line


def test_phantom_speedups_are_left_out_of_the_choice():
    table, cells = _sweep([("threads", "busy_wait", 2, 1.86, 1.80, 1.90, 3, 47.0, 0),
                           ("prefork", "busy_wait", 2, 1.84, 1.80, 1.88, 3, 84.0, 0)])
    table["phantom_cores"] = [0.9, 0.0]
    (spin,) = decide(table, cells, ["pool"], quick=False)
    # Without the rule, threads' phantom 1.86x would tie with prefork and win on memory.
    assert spin.choice == "prefork at concurrency 2" and spin.tied_with == ()
    assert spin.sentence.endswith("threads at concurrency 2: its 1.86x is phantom (the tasks overlapped in wall "
                                  "time without the CPU): left out.")
    table["phantom_cores"] = [0.9, 0.8]
    (none,) = decide(table, cells, ["pool"], quick=False)
    assert none.choice == "none" and "every speedup measured is phantom" in none.sentence


def test_a_run_too_short_for_two_samples_of_the_lab_is_not_known_and_still_drawn(tmp_path):
    tasks, samples = _run_tables(machine_busy_s=0.8)
    one_lab_sample = samples[(samples["kind"] != "lab") | (samples["t"] == 0.0)]
    s = summary.summarize(tasks, one_lab_sample, _ctx())
    assert s.other_cores_used is None and s.disturbed is None
    from harness.present.run_figures import parallelism
    frame = one_lab_sample.assign(**{c: None for c in ("idle_s", "vol_ctx", "invol_ctx", "rss", "uss", "pss")})
    out = parallelism(tasks, frame, build_spec(pool="threads", workload="cpu", concurrency=2, tasks=2,
                                               duration=1.0, switch_interval=0.005), 2, tmp_path / "p.png", s)
    assert out.exists()


def test_a_machine_that_changed_speed_is_told_apart_from_contention_the_lesson_is_about():
    # prefork was seen at 1.19x with inflation 1.76: on work that shares nothing that is the machine.
    assert trust.speed_change(Summary(work_inflation=1.76, shares_nothing=True)) == "slower"
    assert trust.speed_change(Summary(work_inflation=0.58, shares_nothing=True)) == "faster"  # threads at c=1: 1.76x
    assert trust.speed_change(Summary(work_inflation=1.76,
                                      shares_nothing=False)) == ""  # cpu_shared: lesson 10's finding
    assert trust.speed_change(Summary(work_inflation=1.02, shares_nothing=True)) == ""
    assert trust.speed_change(Summary(work_inflation=None, shares_nothing=True)) == ""


# --- a stopped worker ---------------------------------------------------------------------------

def _stopped_samples(stopped_from: float, stopped_to: float) -> pd.DataFrame:
    """A worker sampled every 0.1 s for 10 s, in state T (stopped) between the two times."""
    rows = [{"t": t / 10, "kind": "process", "pid": 1, "tid": None, "user_s": 0.0, "system_s": 0.0,
             "state": "T" if stopped_from <= t / 10 < stopped_to else "R"} for t in range(101)]
    return pd.DataFrame(rows)


def test_the_time_a_worker_stood_stopped_is_read_from_its_sampled_states():
    from harness.analysis.cpu import stopped_seconds

    assert stopped_seconds(_stopped_samples(2.0, 5.0), 0.0, 10.0) == pytest.approx(3.0, abs=0.01)
    assert stopped_seconds(_stopped_samples(2.0, 5.0), 3.0, 10.0) == pytest.approx(2.0, abs=0.01)  # within [t0, t1]
    assert stopped_seconds(_stopped_samples(0.0, 0.0), 0.0, 10.0) == 0.0
    assert stopped_seconds(_stopped_samples(2.0, 5.0).drop(columns="state"), 0.0, 10.0) is None  # stored before


def test_a_worker_stopped_for_a_twentieth_of_the_run_disturbs_it_and_is_not_blamed_on_the_gil():
    assert trust.is_disturbed(0.0, 2, stopped_s=0.6, span_s=10.0) is True
    assert trust.is_disturbed(0.0, 2, stopped_s=0.4, span_s=10.0) is False
    summary = Summary(disturbed=True, worker_stopped_s=3.0, makespan_s=7.0, other_cores_used=0.01, cores=2)
    assert trust.disturbance_cause(summary) == "worker stopped 3.0 s"
    assert trust.disturbance_note(summary).startswith("DISTURBED: the worker was stopped (SIGSTOP, Ctrl-Z or a "
                                                      "debugger) for 3.0 s of the 7.0 s its tasks ran")
    both = dataclasses.replace(summary, other_cores_used=0.9)
    assert trust.disturbance_cause(both) == "worker stopped 3.0 s, 0.9 other cores busy"
