"""Pools beyond the five, offline: settings, the ideal speedup of several workers, slot names,
experiments with "N/workers", and the topology figure from a hand-made table."""
from __future__ import annotations

import pandas as pd
import pytest

from harness.errors import ExperimentError, SpecError
from harness.model.experiment import load_experiment, resolve_concurrency
from harness.model.pools import CELERY_POOLS, POOL_NAMES, pool
from harness.model.spec import build_spec
from harness.present.sweep_figures import sweep_figures


def test_a_custom_pool_is_run_by_celerys_custom_pool_and_assumed_nothing():
    spec = build_spec(pool="custom:celery.concurrency.thread:TaskPool", workload="io_sleep", concurrency=4)
    rules = spec.pool_rules
    assert (rules.celery_pool, rules.celery_class, rules.label) == ("custom", "celery.concurrency.thread:TaskPool",
                                                                    "custom-TaskPool")
    assert rules.ideal_speedup("io", 4, 16, 2) is None and not rules.gil_probe and not rules.stays_warm
    assert spec.deadline_s() > 16 * 0.25  # unknown overlap: a deadline for one task at a time
    for bad, says in [("custom:", "custom:package.module:Class"), ("custom:mod", "custom:package.module:Class"),
                      ("thread", "allowed: prefork, threads"), ("custom:a b:C", "custom:package.module:Class")]:
        with pytest.raises(SpecError, match=says):
            build_spec(pool=bad)


def test_the_interpreters_pool_is_the_labs_own_class_run_as_a_custom_pool():
    rules = pool("interpreters")
    assert "interpreters" in POOL_NAMES and "interpreters" not in CELERY_POOLS
    assert rules.celery_pool == "custom" and rules.celery_class == "workloads.interpreter_pool:TaskPool"
    assert rules.min_python == (3, 13)
    assert rules.ideal_speedup("python-cpu", 4, 16, 2) == 2  # a GIL per subinterpreter: up to the cores
    assert rules.ideal_speedup("io", 4, 16, 2) == 4
    with pytest.raises(SpecError, match="its own"):
        build_spec(pool="interpreters", gil_probe=True)


@pytest.mark.parametrize("name, kind, workers, concurrency, expected", [
    ("threads", "python-cpu", 2, 1, 2),   # two processes, two GILs
    ("threads", "python-cpu", 4, 1, 2),   # ... up to the cores
    ("threads", "io", 2, 2, 4),
    ("solo", "io", 3, 1, 3),              # one task at a time per worker
    ("solo", "python-cpu", 1, 4, 1),
    ("gevent", "python-cpu", 2, 8, 2),    # one OS thread per worker
    ("prefork", "python-cpu", 2, 2, 2),
])
def test_the_ideal_speedup_of_several_workers(name, kind, workers, concurrency, expected):
    assert pool(name).ideal_speedup(kind, concurrency, tasks=16, cores=2, workers=workers) == expected


def test_mixed_work_on_several_threads_workers_gets_a_core_per_worker():
    # f = 0.5: one threads worker is held to 1 / 0.5 = 2x by its GIL; two workers to 4x.
    assert pool("threads").ideal_speedup("mixed", 4, 16, 2, cpu_fraction=0.5) == 2
    assert pool("threads").ideal_speedup("mixed", 4, 16, 2, cpu_fraction=0.5, workers=2) == 4


def test_workers_default_tasks_and_bounds():
    assert build_spec(concurrency=2, workers=3).tasks == 24  # 4 per slot
    for bad in (0, 65, "two"):
        with pytest.raises(SpecError, match="workers must be a whole number from 1 to 64"):
            build_spec(workers=bad)
    with pytest.raises(SpecError, match="WORKERS=1"):
        build_spec(workers=2, gil_probe=True)


def test_slots_are_named_by_where_a_task_ran():
    assert pool("interpreters").slot_name(10, 11, interpreter_id=3) == "interpreter 3"
    where = pool("custom:pkg.mod:Pool")
    assert where.slot_name(10, 11, worker_pid=10) == "thread 11"   # in the worker's own process
    assert where.slot_name(12, 11, worker_pid=10) == "process 12"  # in a child


def test_n_per_workers_shares_the_slots_among_workers(tmp_path):
    assert [resolve_concurrency("4/workers", workers=w) for w in (1, 2, 4)] == [4, 2, 1]
    exp = load_experiment("experiments/topology.toml")
    assert {(c["workers"], c["concurrency"]) for c in exp.cells()} == {(1, 4), (2, 2), (4, 1)}
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nquestion = "q"\n[fixed]\nconcurrency = "4/workers"\n[axes]\nworkers = [1, 3]\n')
    with pytest.raises(ExperimentError, match="bad.toml: concurrency '4/workers': 4 slots cannot be shared evenly "
                                              "among 3 workers"):
        load_experiment(bad)


def test_a_topology_sweep_draws_speedup_and_memory_by_split(tmp_path):
    rows = []
    for p, base in (("threads", 47.0), ("prefork", 134.0)):
        for w in (1, 2, 4):
            rows.append({"pool": p, "workload": "cpu", "workers": w, "concurrency": 4 // w,
                         "speedup": 1.0 * w if p == "threads" else 1.8, "ideal_speedup": min(w, 2),
                         "pss_peak_mib": base * w, "label": f"pool={p} workers={w}", "n": 1})
            for m in ("speedup", "pss_peak_mib"):  # one repeat: no spread
                rows[-1][f"{m}_q25"] = rows[-1][f"{m}_q75"] = rows[-1][m]
    table = pd.DataFrame(rows)
    drawn = sweep_figures(tmp_path, table, ["pool", "workload", "workers"], 2, {}, "latency")
    assert [p.name for p in drawn] == ["topology.png"] and drawn[0].stat().st_size > 10_000
