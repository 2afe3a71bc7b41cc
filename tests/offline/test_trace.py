"""trace.json against the Trace Event Format, on the committed run folders."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness.pipeline import summarize
from harness.results import load_run

DATA = Path(__file__).resolve().parents[1] / "data" / "v1"
PHASES = {"X": {"name", "ph", "ts", "dur", "pid", "tid"}, "C": {"name", "ph", "ts", "pid", "args"},
          "M": {"name", "ph", "pid", "args"}}


def check_trace_event_format(trace: dict) -> None:
    """The JSON Object Format of the Trace Event Format: what Perfetto and chrome://tracing read."""
    assert set(trace) >= {"traceEvents"} and isinstance(trace["traceEvents"], list)
    assert trace.get("displayTimeUnit") in (None, "ms", "ns")
    for event in trace["traceEvents"]:
        assert event["ph"] in PHASES, event
        assert PHASES[event["ph"]] <= set(event), event
        assert isinstance(event["pid"], int) and isinstance(event.get("tid", 0), int)
        if event["ph"] in ("X", "C"):
            assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0, event
        if event["ph"] == "X":
            assert event["dur"] >= 0
        if event["ph"] == "C":
            assert all(isinstance(v, (int, float)) for v in event["args"].values())
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "process_sort_index", "thread_name", "thread_sort_index")


@pytest.mark.parametrize("name", ["run-threads-cpu-gil", "run-prefork-io_net"])
def test_every_run_gets_a_trace_with_a_lane_per_slot_and_a_slice_per_task(tmp_path, name):
    path = tmp_path / name
    shutil.copytree(DATA / name, path)
    summarize(path, log=lambda _line: None)
    trace = json.loads((path / "trace.json").read_text())
    check_trace_event_format(trace)
    run = load_run(path)
    events = trace["traceEvents"]
    lanes = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == 1}
    assert lanes == set(run.tasks["slot"].astype(str))
    slices = [e for e in events if e["ph"] == "X" and e["pid"] == 1]
    assert len(slices) == len(run.tasks)
    first = run.tasks.sort_values("started").iloc[0]
    earliest = min(slices, key=lambda e: e["ts"])
    assert earliest["args"]["task_id"] == first["task_id"]
    assert earliest["dur"] == pytest.approx((first["finished"] - first["started"]) * 1e6, abs=1)
    assert earliest["args"]["own_cpu_s"] == pytest.approx(first["cpu_s"], abs=1e-6)
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert {"tasks running", "worker's CPU cores"} <= counters
    gil_lanes = [e for e in events if e["pid"] == 3 and e["ph"] == "X"]
    assert bool(gil_lanes) == ("gil" in name)  # the GIL holder's lanes only with the probe
    assert "trace.json" in json.loads((path / "run.json").read_text())["files"]


def test_a_trace_keeps_the_reference_task_apart():
    tasks = pd.DataFrame({"task_id": ["a", "b"], "role": ["reference", "foreground"], "submitted": [0.0, 1.0],
                          "started": [0.0, 1.0], "finished": [0.5, 1.5], "cpu_s": [0.5, 0.5], "slot": "t1",
                          "error": None})
    from harness.model.spec import build_spec
    from harness.present.trace import trace_events

    trace = trace_events(tasks, pd.DataFrame(columns=["t", "kind", "pid", "tid", "user_s", "system_s"]),
                         build_spec(pool="threads", workload="cpu", concurrency=1, tasks=1, switch_interval=0.005))
    check_trace_event_format(trace)
    names = sorted(e["name"] for e in trace["traceEvents"] if e["ph"] == "X")
    assert names == ["cpu", "cpu (alone)"]
