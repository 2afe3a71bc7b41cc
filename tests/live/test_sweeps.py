"""Sweeps end to end on real Redis and real workers: run, resume, report, compare, a failing cell."""
from __future__ import annotations

import json
from pathlib import Path

from harness.model.experiment import load_experiment
from harness.pipeline import compare, report
from harness.results.records import Status
from harness.results.sweep_folder import load_sweep_manifest, write_sweep_manifest
from harness.sweeps import run_sweep, start_sweep


def write(tmp_path, text: str, name="exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = '''
name = "tiny"
question = "Does it run?"
repeats = 2
[fixed]
workload = "io_sleep"
duration = 0.1
tasks = 2
concurrency = 2
[axes]
pool = ["threads", "solo"]
[quick]
duration = 0.05
'''


def test_tiny_real_sweep_then_resume_report_and_compare(tmp_path, redis_url):
    exp = load_experiment(write(tmp_path, GOOD))
    folder = start_sweep(exp, quick=False, results_dir=tmp_path / "results")
    manifest = load_sweep_manifest(folder)
    # Interleaved: every cell once, then every cell again.
    assert [(e.cell, e.repeat) for e in manifest.runs] == [(0, 0), (1, 0), (0, 1), (1, 1)]

    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest.status == Status.COMPLETE
    finished = {e.run for e in manifest.runs}
    assert len(finished) == 4 and all((folder / "runs" / r / "run.json").exists() for r in finished)

    # Make one entry look failed, as after a crash: a resume reruns only that one.
    manifest.runs[1].status, manifest.runs[1].reason = Status.FAILED, "worker died"
    write_sweep_manifest(folder, manifest)
    resumed = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert resumed.status == Status.COMPLETE
    kept = [e.run for i, e in enumerate(resumed.runs) if i != 1]
    assert kept == [e.run for i, e in enumerate(manifest.runs) if i != 1]
    assert resumed.runs[1].run != manifest.runs[1].run
    assert len(list((folder / "runs").iterdir())) == 5

    page = report(folder)
    text = page.read_text()
    assert "Does it run?" in text and "What the numbers say" in text and "data:image/png;base64," in text
    summary = (folder / "summary.csv").read_text().splitlines()
    assert len(summary) == 3  # header and two cells
    assert "speedup_q25" in summary[0]

    # threads overlaps two sleeps, solo does not: compared with itself nothing differs.
    same = compare(folder, folder)
    assert (same["verdict"] == "no significant difference").all()


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path, redis_url):
    text = GOOD.replace('workload = "io_sleep"', 'workload = "io_sleep"\ntimeout = 1.0').replace(
        "duration = 0.1", "duration = 3.0").replace("repeats = 2", "repeats = 1")
    folder = start_sweep(load_experiment(write(tmp_path, text)), quick=False, results_dir=tmp_path / "results")
    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest.status == Status.PARTIAL
    assert [e.status for e in manifest.runs] == [Status.FAILED, Status.FAILED]
    assert all("did not finish within 1 s" in e.reason for e in manifest.runs)
    assert "Failed runs" in report(folder).read_text()


WARM = '''
name = "warm"
question = "Do runs with the same worker settings share one worker, and measure as a fresh one would?"
repeats = 2
[fixed]
duration = 0.2
tasks = 4
concurrency = 2
[axes]
pool = ["threads", "gevent"]
workload = ["io_sleep", "cpu"]
'''


def test_runs_with_the_same_worker_settings_share_a_warm_worker(tmp_path, redis_url):
    folder = start_sweep(load_experiment(write(tmp_path, WARM)), quick=False, results_dir=tmp_path / "results")
    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest.status == Status.COMPLETE
    runs = [json.loads((folder / "runs" / e.run / "run.json").read_text()) for e in manifest.runs]
    threads = sorted((r for r in runs if r["spec"]["pool"] == "threads"), key=lambda r: r["settings"]["worker_id"])
    # One threads worker served its four runs in turn; every gevent run had a worker of its own.
    assert len({r["settings"]["worker_id"] for r in threads}) == 1
    assert sorted(r["settings"]["warm_runs_before"] for r in threads) == [0, 1, 2, 3]
    gevent = [r for r in runs if r["spec"]["pool"] == "gevent"]
    assert all(r["settings"]["warm_runs_before"] is None for r in gevent)
    assert len({r["settings"]["worker_id"] for r in gevent}) == 4
    for r in threads:
        s = r["summary"]
        assert s["tasks_done"] == 4  # only its own records: 4 tasks (and one alone for cpu), not a neighbour's
        if r["spec"]["workload"] == "io_sleep":
            # Two slots, four 0.2 s sleeps: two waves, as on a fresh worker (a queue not yet polled: +0.2-2 s)
            assert s["makespan_s"] < 0.6 and s["speedup"] > 1.5, s


def test_a_sweep_given_a_time_limit_starts_no_run_after_it_and_a_resume_finishes(tmp_path, redis_url):
    folder = start_sweep(load_experiment(write(tmp_path, GOOD)), quick=True, results_dir=tmp_path / "results")
    lines = []
    # One run takes over a second (a worker, two tasks, figures): the limit passes during the first.
    manifest = run_sweep(folder, redis_url=redis_url, log=lines.append, show_progress=False, max_s=0.5)
    assert manifest.status == Status.PARTIAL, manifest
    # One run done (solo first: each work runs beside its solo baseline), the other left for a resume.
    assert sorted(e.status for e in manifest.runs) == [Status.COMPLETE, Status.PENDING], manifest.runs
    done = next(i for i, e in enumerate(manifest.runs) if e.status == Status.COMPLETE)
    assert any("--max-hours reached: 1 run(s) not started" in line for line in lines), lines
    resumed = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert resumed.status == Status.COMPLETE and resumed.runs[done].run == manifest.runs[done].run


def test_a_sweep_leaves_no_key_on_a_shared_redis(tmp_path, redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        before = set(client.scan_iter())
        folder = start_sweep(load_experiment(write(tmp_path, GOOD)), quick=True, results_dir=tmp_path / "results")
        run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)  # two warm workers
        # kombu's own table of binding deadlines (Celery's broadcast exchange) is shared, and swept by kombu.
        new = {k.decode() for k in set(client.scan_iter()) - before} - {"_kombu.binding_deadlines"}
    finally:
        client.close()
    assert new == set(), new
