"""Experiment files, sweeps, reports and comparisons."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare import compare, compare_samples
from harness.experiment import ExperimentError, load_experiment, resolve_concurrency
from harness.report import report
from harness.sweep import load_sweep_manifest, new_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["pools", "concurrency", "switch-interval", "convoy", "seed-demo", "dispatch-gap"]


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


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load_and_validate(name):
    exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
    assert exp.name == name and exp.question
    assert exp.cells() and exp.shrunk().cells()
    assert exp.shrunk().repeats == 1


def test_pools_experiment_covers_every_pool_and_workload():
    exp = load_experiment(ROOT / "experiments" / "pools.toml")
    assert len(exp.cells()) == 25


def test_seed_demo_is_the_tutorial_exactly():
    exp = load_experiment(ROOT / "experiments" / "seed-demo.toml")
    assert {c["pool"] for c in exp.cells()} == {"threads", "prefork"}
    for cell in exp.cells():
        assert (cell["workload"], cell["duration"], cell["tasks"], cell["switch_interval"]) == ("busy_wait", 10.0, 2, 10.0)


def test_switch_interval_axis_is_log_spaced_from_a_microsecond_to_ten_seconds():
    values = load_experiment(ROOT / "experiments" / "switch-interval.toml").axes["switch_interval"]
    assert min(values) == 1e-6 and max(values) == 10.0
    ratios = {round(b / a) for a, b in zip(values, values[1:])}
    assert ratios == {10}


def test_concurrency_in_cores_is_resolved_and_duplicates_dropped():
    assert resolve_concurrency("4*cores", cores=2) == 8
    assert resolve_concurrency("cores", cores=3) == 3
    assert resolve_concurrency(5, cores=3) == 5


BAD_FILES = [
    ('name = "x"\nquestion = "q"\ncolour = 1\n[axes]\npool = ["threads"]', "unknown key 'colour'; allowed: name, question"),
    ('name = "x"\nquestion = "q"\n[axes]\nflavour = ["a"]', "unknown axis axes.flavour; allowed: pool, workload"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = []', "axes.pool is empty"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = "threads"', "axes.pool must be a list of values"),
    ('name = "x"\nquestion = "q"\n[axes]\nconcurrency = ["two"]', "axes.concurrency: 'two' is not a whole number"),
    ('name = "x"\nquestion = "q"\n[axes]\nduration = [true]', "axes.duration: True is not a number"),
    ('name = "x"\nquestion = "q"\n[fixed]\npool = 3\n[axes]\nworkload = ["cpu"]', "fixed.pool: 3 is not a string"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = ["thread"]', "unknown pool 'thread'; allowed: prefork"),
    ('name = "x"\nquestion = "q"\n[axes]\nduration = [-1]', "duration must be a number > 0"),
    ('name = "x"\nquestion = "q"\nrepeats = 0\n[axes]\npool = ["solo"]', "repeats must be a whole number >= 1"),
    ('name = "x"\nquestion = "q"\n[fixed]\npool = "solo"\n[axes]\npool = ["solo"]', "pool is both fixed and an axis"),
    ('name = "x"\n[axes]\npool = ["solo"]', "question must be a non-empty string"),
    ('name = "x"\nquestion = "q"', "[axes] is missing or empty"),
    ('name = "x\nquestion', "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_experiment_file_names_file_key_and_what_is_allowed(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_experiment_file_is_an_error_from_the_cli_before_any_worker(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "sweep", "experiments/nope.toml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 2
    assert "experiments/nope.toml: no such experiment file" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_tiny_real_sweep_then_resume_report_and_compare(tmp_path, redis_url):
    exp = load_experiment(write(tmp_path, GOOD))
    folder = new_sweep(exp, quick=False, results_dir=tmp_path / "results")
    manifest = load_sweep_manifest(folder)
    # Interleaved: every cell once, then every cell again.
    assert [(e["cell"], e["repeat"]) for e in manifest["runs"]] == [(0, 0), (1, 0), (0, 1), (1, 1)]

    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest["status"] == "complete"
    finished = {e["run"] for e in manifest["runs"]}
    assert len(finished) == 4 and all((folder / "runs" / r / "run.json").exists() for r in finished)

    # Make one entry look failed, as after a crash: a resume reruns only that one.
    manifest["runs"][1].update(status="failed", reason="worker died")
    (folder / "sweep.json").write_text(json.dumps(manifest))
    resumed = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert resumed["status"] == "complete"
    kept = [e["run"] for i, e in enumerate(resumed["runs"]) if i != 1]
    assert kept == [e["run"] for i, e in enumerate(manifest["runs"]) if i != 1]
    assert resumed["runs"][1]["run"] != manifest["runs"][1]["run"]
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


def test_compare_samples_finds_a_real_difference_and_ignores_noise():
    assert compare_samples([1.0, 1.01, 0.99], [2.0, 2.02, 1.98])["verdict"].startswith("differs: B is 100% higher")
    assert compare_samples([1.0, 1.1, 0.9], [1.02, 0.95, 1.08])["verdict"] == "no significant difference"
    assert compare_samples([1.0], [2.0])["verdict"] == "too few repeats to test"
    small = compare_samples([1.0, 1.001, 0.999, 1.0], [1.01, 1.011, 1.009, 1.01])
    assert small["verdict"].startswith("same within 5%")


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path, redis_url):
    text = GOOD.replace('workload = "io_sleep"', 'workload = "io_sleep"\ntimeout = 1.0').replace(
        "duration = 0.1", "duration = 3.0").replace("repeats = 2", "repeats = 1")
    folder = new_sweep(load_experiment(write(tmp_path, text)), quick=False, results_dir=tmp_path / "results")
    manifest = run_sweep(folder, redis_url=redis_url, log=lambda _l: None, show_progress=False)
    assert manifest["status"] == "partial"
    assert [e["status"] for e in manifest["runs"]] == ["failed", "failed"]
    assert all("did not finish within 1 s" in e["reason"] for e in manifest["runs"])
    assert "Failed runs" in report(folder).read_text()
