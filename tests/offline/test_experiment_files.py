"""Experiment files: the shipped ones load, bad ones are refused naming file, key and what is allowed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.analysis.compare import compare_samples
from harness.errors import ExperimentError
from harness.model.experiment import load_experiment, resolve_concurrency

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["pools", "concurrency", "switch-interval", "convoy", "seed-demo", "dispatch-gap", "interpreters", "drivers",
           "capacity", "brokers", "broker-overhead"]


def write(tmp_path, text: str, name="exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load_and_validate(name):
    exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
    assert exp.name == name and exp.question
    assert exp.cells() and exp.shrunk().cells()
    assert exp.shrunk().repeats == 1


def test_pools_experiment_covers_every_pool_and_workload():
    exp = load_experiment(ROOT / "experiments" / "pools.toml")
    assert len(exp.cells()) == 25


def test_the_drivers_experiment_pairs_each_driver_with_its_workload_and_psycogreen_with_green_pools_only():
    from harness.model.drivers import DRIVERS

    exp = load_experiment(ROOT / "experiments" / "drivers.toml")
    cells = exp.cells()
    assert len(cells) == 26 and len(exp.specs()) == 26  # every cell a valid run
    for cell in cells:
        assert DRIVERS[cell["driver"]].kind == cell["workload"]
    patched = {c["pool"] for c in cells if c["driver"] == "psycopg2+psycogreen"}
    assert patched == {"gevent", "eventlet"}
    assert {c["pool"] for c in cells if c["driver"] == "pycurl"} == {"prefork", "threads", "gevent", "eventlet"}


def test_a_driver_given_for_every_cell_that_does_not_fit_is_refused_not_left_out(tmp_path):
    path = write(tmp_path, 'name = "x"\nquestion = "q"\n[fixed]\nworkload = "db"\ndriver = "requests"\n'
                           '[axes]\npool = ["threads"]\n')
    with pytest.raises(Exception, match="DRIVER=requests is a http client"):
        load_experiment(path).specs()


def test_seed_demo_is_the_tutorial_exactly():
    exp = load_experiment(ROOT / "experiments" / "seed-demo.toml")
    assert {c["pool"] for c in exp.cells()} == {"threads", "prefork"}
    for cell in exp.cells():
        assert (cell["workload"], cell["duration"], cell["tasks"],
                cell["switch_interval"]) == ("busy_wait", 10.0, 2, 10.0)


def test_switch_interval_axis_is_log_spaced_from_a_microsecond_to_ten_seconds():
    values = load_experiment(ROOT / "experiments" / "switch-interval.toml").axes["switch_interval"]
    assert min(values) == 1e-6 and max(values) == 10.0
    ratios = {round(b / a) for a, b in zip(values, values[1:], strict=False)}
    assert ratios == {10}


def test_concurrency_in_cores_is_resolved_and_duplicates_dropped():
    assert resolve_concurrency("4*cores", cores=2) == 8
    assert resolve_concurrency("cores", cores=3) == 3
    assert resolve_concurrency(5, cores=3) == 5


BAD_FILES = [
    ('name = "x"\nquestion = "q"\ncolour = 1\n[axes]\npool = ["threads"]',
     "unknown key 'colour'; allowed: name, question"),
    ('name = "x"\nquestion = "q"\n[axes]\nflavour = ["a"]', "unknown axis axes.flavour; allowed: pool, workload"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = []', "axes.pool is empty"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = "threads"', "axes.pool must be a list of values"),
    ('name = "x"\nquestion = "q"\n[axes]\nconcurrency = ["two"]', "axes.concurrency: 'two' is not a whole number"),
    ('name = "x"\nquestion = "q"\n[axes]\nduration = [true]', "axes.duration: True is not a number"),
    ('name = "x"\nquestion = "q"\n[fixed]\npool = 3\n[axes]\nworkload = ["cpu"]', "fixed.pool: 3 is not a string"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = ["thread"]',
     "unknown pool 'thread' (did you mean 'threads'?); allowed: prefork"),
    ('name = "x"\nquestion = "q"\n[axes]\nduration = [-1]', "duration must be a number > 0"),
    ('name = "x"\nquestion = "q"\nrepeats = 0\n[axes]\npool = ["solo"]', "repeats must be a whole number >= 1"),
    ('name = "x"\nquestion = "q"\n[fixed]\npool = "solo"\n[axes]\npool = ["solo"]', "pool is both fixed and an axis"),
    ('name = "x"\n[axes]\npool = ["solo"]', "question must be a non-empty string"),
    ('name = "x"\nquestion = "q"', "[axes] is missing or empty"),
    ('name = "x\nquestion', "not valid TOML"),
    ('name = "x"\nquestion = "q"\n[axes]\npool = ["solo"]\n[[skip]]\npool = "threads"',
     "skip.pool = 'threads' is not a value of an axis; allowed: pool in ['solo']"),
    ('name = "x"\nquestion = "q"\nskip = 3\n[axes]\npool = ["solo"]', "skip must be a list of [[skip]] tables"),
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


def test_compare_samples_finds_a_real_difference_and_ignores_noise():
    assert compare_samples([1.0, 1.01, 0.99], [2.0, 2.02, 1.98])["verdict"].startswith("differs: B is 100% higher")
    assert compare_samples([1.0, 1.1, 0.9], [1.02, 0.95, 1.08])["verdict"] == "no significant difference"
    assert compare_samples([1.0], [2.0])["verdict"] == "too few repeats to test"
    small = compare_samples([1.0, 1.001, 0.999, 1.0], [1.01, 1.011, 1.009, 1.01])
    assert small["verdict"].startswith("same within 5%")




def test_a_driver_axis_draws_speedup_by_driver_and_pool_with_no_bar_where_no_run_was(tmp_path):
    import pandas as pd

    from harness.present.sweep_figures import sweep_figures

    table = pd.DataFrame({
        "workload": ["db", "db", "db", "http"], "pool": ["gevent", "gevent", "threads", "gevent"],
        "driver": ["psycopg2", "psycopg2+psycogreen", "psycopg2", "pycurl"], "speedup": [0.99, 7.6, 7.6, 0.97],
        "ideal_speedup": [8, 8, 8, 8], "disturbed": [0, 0, 0, 0], "speedup_q25": [0.98, 7.5, 7.5, 0.96],
        "speedup_q75": [1.0, 7.7, 7.7, 0.98]})
    drawn = sweep_figures(tmp_path, table, ["workload", "pool", "driver"], 2, {}, "")
    assert [p.name for p in drawn] == ["drivers.png"] and (tmp_path / "drivers.png").stat().st_size > 10_000


def test_skip_tables_leave_out_the_cells_that_have_all_their_values(tmp_path):
    path = write(tmp_path, 'name = "x"\nquestion = "q"\n[axes]\npool = ["asyncio", "prefork"]\n'
                           'concurrency = [10, 1000]\n[[skip]]\npool = "prefork"\nconcurrency = 1000\n')
    cells = load_experiment(path).cells()
    assert [(c["pool"], c["concurrency"]) for c in cells] == [("asyncio", 10), ("asyncio", 1000), ("prefork", 10)]
    asked = load_experiment(ROOT / "experiments" / "async.toml")
    assert not any(c["pool"] == "prefork" and c["concurrency"] == 1000 for c in asked.cells())
    assert {c["pool"] for c in asked.cells()} == {"asyncio", "gevent", "threads", "prefork"}
