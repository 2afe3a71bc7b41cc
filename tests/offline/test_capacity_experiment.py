"""A capacity experiment (experiments/capacity.toml): a search per cell under one objective, refused as a sweep, and
the answer per work (which pool holds the most per worker, per core it used, per GiB) from hand-made searches."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.capacity import Capacity, Step, answers, sentence
from harness.errors import ExperimentError
from harness.model.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_capacity_experiment_has_an_objective_and_its_cells_build_with_a_rate():
    exp = load_experiment(ROOT / "experiments" / "capacity.toml")
    assert exp.slo == "p95<500ms" and exp.shrunk().slo == exp.slo
    assert {(c["pool"], c["workload"]) for c in exp.cells()} >= {("prefork", "cpu"), ("threads", "io_sleep")}
    assert len(exp.shrunk().cells()) < len(exp.cells())


@pytest.mark.parametrize("extra,message", [
    ('slo = "p95 under 1s"', "slo: SLO 'p95 under 1s' does not parse"),
    ('slo = "p95<1s"\nrepeats = 2', "runs one search per cell"),
    ('slo = "p95<1s"', "chooses the rate itself: leave rate out"),
])
def test_a_bad_capacity_experiment_is_refused_naming_what(tmp_path, extra, message):
    axes = "[axes]\npool = [\"threads\"]\n" + ("rate = [10.0]\n" if "rate itself" in message else "")
    path = tmp_path / "cap.toml"
    path.write_text(f'name = "cap"\nquestion = "q"\n{extra}\n{axes}')
    with pytest.raises(ExperimentError, match=message.replace("(", r"\(")):
        load_experiment(path)


def _search(pool: str, work: str, capacity: float | None, memory_mib: float, cores_used: float) -> Capacity:
    steps = [Step(capacity or 10.0, "r1", capacity is None, False, 0.1, 0.05, capacity, memory_mib, cores_used)]
    return Capacity("p95<1s", pool, work, 2, steps, capacity, None)


def test_the_answer_ranks_per_worker_per_core_it_used_and_per_gib_each_on_its_own():
    found = [_search("prefork", "cpu", 80.0, 512.0, 2.0), _search("threads", "cpu", 40.0, 64.0, 1.0),
             _search("gevent", "cpu", None, 64.0, 1.0), _search("threads", "io_sleep", 150.0, 64.0, 0.1)]
    cpu, io = answers(found)
    assert cpu.startswith("cpu: per worker: prefork (80 tasks/s, 50% of it on threads)")
    # per core it used, a tie (40 each); per GiB threads: 40 / (64/1024) = 640, prefork 80 / 0.5 = 160
    assert "per core it used: prefork (40 tasks/s, 100% of it on threads)" in cpu
    assert "per GiB of worker memory: threads (640 tasks/s, 25% of it on prefork)" in cpu
    assert cpu.endswith("held no rate tried: gevent")
    assert io == "io_sleep: per worker: threads (150 tasks/s); per core it used: threads (1,500 tasks/s); " \
                 "per GiB of worker memory: threads (2,400 tasks/s)"
    assert "40 per core it used (1.00 cores)" in sentence(found[1])


def test_a_step_whose_submitter_fell_behind_is_measured_again_before_the_search_stops(tmp_path):
    """A search with a stand-in measure that reads back folders (the live searches are tests/live/test_load.py): the
    first step's submitter behind once, then held; the search goes on instead of stopping with no capacity."""
    from types import SimpleNamespace

    from harness import capacity
    from harness.model.slo import parse

    calls: list[float] = []

    def measure(spec, folder):
        calls.append(spec.rate)
        behind = len(calls) == 1
        ok = spec.rate <= 40
        load = SimpleNamespace(saturated=behind or not ok, submitter_behind=behind, latency_p50_s=0.02,
                               finish_rate=spec.rate)
        summary = SimpleNamespace(load=load, pss_peak_mib=50.0, mean_cores_used=0.5)
        tasks = pd.DataFrame({"role": ["foreground"], "scheduled": [0.0], "finished": [0.05], "started": [0.01],
                              "submitted": [0.0]})
        return SimpleNamespace(summary=summary, spec=SimpleNamespace(warmup=0.0), tasks=tasks, run_id=f"r{len(calls)}")

    result, _ = capacity.search({"pool": "threads", "workload": "cpu", "duration": 0.02, "concurrency": 2},
                                parse("p95<1s"), tmp_path, measure, log=lambda _l: None)
    assert calls[0] == calls[1] and result.steps[0].behind and not result.steps[1].behind
    assert result.capacity is not None and not result.stopped
