"""The run's summary as text for a terminal."""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from harness.analysis import trust
from harness.analysis.summary import WHEN_ALONE
from harness.errors import ResultsError
from harness.model.pools import pool
from harness.model.workloads import workload
from harness.results.records import MachineLoad
from harness.results.run_folder import Run

if TYPE_CHECKING:
    from harness.analysis.advice import Advice
    from harness.model.spec import RunSpec
    from harness.results.records import RunManifest, Summary


def slots_text(spec: RunSpec) -> str:
    """"concurrency 4", with several workers "2 workers x concurrency 2", on several hosts "2 hosts (a, b) x 1
    worker x concurrency 2"."""
    if spec.hosts:
        per_host = spec.workers_per_host or 1
        return (f"{len(spec.host_names)} host{'s' if len(spec.host_names) > 1 else ''} ({', '.join(spec.host_names)}) "
                f"x {per_host} worker{'s' if per_host > 1 else ''} x concurrency {spec.concurrency}")
    return (f"{spec.workers} workers x concurrency {spec.concurrency}" if spec.workers > 1
            else f"concurrency {spec.concurrency}")


def _num(value: object, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{fmt}}{unit}"


def _call_args(spec: RunSpec) -> str:
    args = [json.dumps(a) for a in spec.task_args]
    args += [f"{k}={json.dumps(v)}" for k, v in spec.task_kwargs.items()]
    return ", ".join(args)


def _summary(run: Run) -> Summary:
    if run.summary is None:  # a complete run always has one (harness.pipeline)
        raise ResultsError(f"{run.path / 'run.json'}: no summary; `python -m harness summarize {run.path}` makes it")
    return run.summary


def _ms(value: float | None) -> str:
    return _num(value * 1000 if value is not None else None, ".1f")


def _load_table(run: Run, s: Summary, where: bool) -> str:
    """An open-loop load's summary: the rate held or not, latency from the schedule, the submitter's lateness."""
    spec, load = run.spec, s.load
    assert load is not None
    lat = [load.latency_p50_s, load.latency_p90_s, load.latency_p99_s, load.latency_p999_s, load.latency_max_s]
    rows = [
        ("offered / finished", f"{_num(load.offered_rate, '.1f')} / {_num(load.finish_rate, '.1f')} tasks/s",
         "arrivals over the load; finished per second in its second half"),
        ("in the system", f"{_num(load.backlog_growth_per_s, '+.2f')} /s",
         ("SATURATED: " if load.saturated else "held: ") + "growth of queued and running tasks in the second half"
         + (f"; broker queue max {load.queue_depth_max}" if load.queue_depth_max is not None else "")),
        ("latency p50/90/99/99.9/max", " / ".join(_ms(x) for x in lat) + " ms",
         f"scheduled time to finish, {load.latency_tasks} tasks after a {_num(load.warmup_s, 'g')} s warm-up"),
        ("queue wait p50 / p99", f"{_ms(load.wait_p50_s)} / {_ms(load.wait_p99_s)} ms", "scheduled time to start"),
        ("run time p50 / p95", f"{_num(s.run_time_p50_s, '.3f')} / {_num(s.run_time_p95_s, '.3f')} s",
         "start to finish"),
        ("submitter late p50 / p99", f"{_ms(load.submit_late_p50_s)} / {_ms(load.submit_late_p99_s)} ms",
         ("BEHIND: " if load.submitter_behind else "on schedule: ") + f"max {_ms(load.submit_late_max_s)} ms"),
        ("tasks running (mean)", _num(s.mean_tasks_running, ".2f"), f"max {s.max_tasks_running}"),
        ("CPU cores used (mean)", _num(s.mean_cores_used, ".2f"),
         f"by the worker's processes; machine has {s.cores} cores"),
        ("worker memory (peak)", _num(s.pss_peak_mib if s.pss_peak_mib is not None else s.rss_peak_mib, ".0f", " MiB"),
         "PSS, shared pages split" if s.pss_peak_mib is not None else "RSS"),
    ]
    if s.other_cores_used is not None:
        rows.append(("other processes' CPU", _num(s.other_cores_used, ".2f", " cores"),
                     ("DISTURBED: " if trust.is_disturbed(s.other_cores_used, int(s.cores or 1))
                      else "quiet enough; ") + machine_text(run.manifest)))
    head = (f"{run.run_id}: {spec.pool} pool, {spec.task or spec.workload}, {slots_text(spec)}, "
            f"{spec.rate:g} tasks/s for {spec.load_time:g} s ({spec.arrivals}), tasks of {spec.duration:g} s")
    width, vwidth = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    lines = [head, "-" * len(head)]
    lines += [f"  {name:<{width}}  {value:>{vwidth}}  {why}".rstrip() for name, value, why in rows]
    lines += [f"  * {note}" for note in s.notes]
    if where:
        lines.append(f"  results: {run.path}")
    return "\n".join(lines)


def summary_table(run: Run, where: bool = True) -> str:
    """The run's summary for a terminal; `where`: end with the folder's path (not in a report, which is in it)."""
    s, spec = _summary(run), run.spec
    if s.load is not None:
        return _load_table(run, s, where)
    rows = [
        ("makespan", _num(s.makespan_s, ".2f", " s"), "first submit to last finish"),
        ("throughput", _num(s.throughput_per_s, ".2f", " tasks/s"), ""),
        *([("speedup vs one at a time", _num(s.speedup, ".2f", "x"),
            f"ideal for {spec.pool} on this work: {_num(s.ideal_speedup, '.3g', 'x')}"
            + ("" if s.ideal_speedup is not None else
               " (not assumed, for your own task or a custom pool)")),
           ("efficiency", _num(s.efficiency, ".0%"), "speedup / ideal")] if s.per_task is None else
          [("latency p50 / p95", f"{_num(s.latency_p50_s, '.3f')} / {_num(s.latency_p95_s, '.3f')} s",
            "submit to finish: what a caller waits; a mix has no speedup (compare tasks/s on one replay)")]),
        ("tasks running (mean)", _num(s.mean_tasks_running, ".2f"), f"max {s.max_tasks_running}"),
        ("CPU cores used (mean)", _num(s.mean_cores_used, ".2f"),
         f"by the worker's processes; machine has {s.cores} cores"),
        ("queue wait p50 / p95", f"{_num(s.queue_wait_p50_s, '.3f')} / {_num(s.queue_wait_p95_s, '.3f')} s",
         "submit to start"),
        ("run time p50 / p95", f"{_num(s.run_time_p50_s, '.3f')} / {_num(s.run_time_p95_s, '.3f')} s",
         "start to finish"),
    ]
    if s.alone_s is not None:
        inflation = s.work_inflation
        runs = s.alone_runs_s or []
        rows.append(("one task alone", _num(s.alone_s, ".3f", " s"),
                     (f"median of {len(runs)} ({', '.join(f'{x:.3f}' for x in runs)}) "
                      f"{WHEN_ALONE[min(len(runs), 3)]}{' the batch' if len(runs) == 2 else ''}, "
                      if len(runs) > 1 else "measured first, ")
                     + "on the same worker: the speedup's reference"
                     + (f"; work inflation {inflation:.2f}x" if inflation is not None else "")))
    if s.machine_drift is not None or s.steal_cores is not None:
        rows.append(("machine drift / steal", f"{_num(s.machine_drift, '.0%')} / "
                                               f"{_num(s.steal_cores, '.2f', ' cores')}",
                     (f"UNSTEADY: {s.unsteady_cause}" if s.unsteady else
                      f"steady: within {trust.DRIFT_LIMIT:.0%} and {trust.STEAL_LIMIT_CORES:g} cores of steal")))
    if s.task_stretch is not None:
        rows.append(("task time vs alone", _num(s.task_stretch, ".2f", "x"),
                     f"a task's run time beside the others over alone; alone it was "
                     f"{_num(s.alone_cpu_share, '.0%')} CPU"))
    if s.rss_peak_mib is not None:
        rows.append(("worker memory (peak)", _num(s.pss_peak_mib, ".0f", " MiB PSS"),
                     f"summed over the worker's processes, shared pages split; RSS {_num(s.rss_peak_mib, '.0f')}, "
                     f"USS {_num(s.uss_peak_mib, '.0f')} MiB"))
    loop = pool(spec.pool).loop
    if s.gil_wait_mean_s is not None:  # measured for CPU work only
        rows.append((f"{'loop' if loop else 'GIL'} wait per task (mean)", _num(s.gil_wait_mean_s, ".3f", " s"),
                     f"run time minus own CPU; {_num(s.gil_wait_fraction, '.0%')} of run time"))
    if s.loop_lag_max_s is not None and s.loop_lag_p95_s is not None:
        held = (f"; a task held it up to {s.loop_block_max_s * 1000:,.1f} ms" if s.loop_block_max_s is not None
                else "")
        rows.append(("event loop lag p95 / max", f"{s.loop_lag_p95_s * 1000:,.1f} / {s.loop_lag_max_s * 1000:,.0f} ms",
                     f"how late {'the loop' if loop == 'asyncio' else f'{loop} hub'} woke a timer (worst per 0.1 s)"
                     f"{held} (see loop-lag.png)"))
    probe = s.gil_probe
    if probe is not None:
        rows.append(("GIL held per turn (median)", _num(probe.gil_hold_median_s, ".4f", " s"),
                     f"{_num(probe.gil_handoffs_per_s, '.0f')} handovers/s; contention "
                     f"{_num(probe.contention_mean, '.0%')} (see gil.png)"))
    if trust.was_stopped(s.worker_stopped_s, s.makespan_s):
        rows.append(("worker stopped", _num(s.worker_stopped_s, ".1f", " s"),
                     "DISTURBED: SIGSTOP, Ctrl-Z or a debugger; no task ran meanwhile"))
    server = workload(spec.workload).server
    if server and s.service_cores_used is not None:
        rows.append((f"{server}'s CPU", _num(s.service_cores_used, ".2f", " cores"),
                     "the server the tasks waited on, while they ran"))
    if s.other_cores_used is not None:
        rows.append(("other processes' CPU", _num(s.other_cores_used, ".2f", " cores"),
                     ("DISTURBED: " if trust.is_disturbed(s.other_cores_used, int(s.cores or 1))
                      else "quiet enough; ") + machine_text(run.manifest)))
    rows.append(("switch interval seen", ", ".join(f"{x:g}" for x in s.switch_intervals_seen) + " s",
                 "as requested" if s.switch_interval_ok else "NOT as requested"))
    if spec.app:
        what = (f"APP {spec.app}, {spec.tasks} calls" + (f" replayed from {spec.calls}" if spec.calls else "")
                + (" in order" if spec.in_order else f" (seed {spec.seed})" if spec.calls else "")
                + (f", routes {spec.routes}" if spec.routes else ""))
    elif spec.task:
        what = f"{spec.tasks} x {spec.task}({_call_args(spec)})"
    elif spec.cpu_fraction is not None:  # mixed work
        what = f"{spec.tasks} tasks of {spec.duration:g} s, {spec.cpu_fraction:.0%} CPU"
    else:
        what = f"{spec.tasks} tasks of {spec.duration:g} s"
    head = (f"{run.run_id}: {spec.pool} pool, {spec.workload}, {slots_text(spec)}, "
            f"{what}, switch interval {spec.switch_interval:g} s")
    interpreter = run.manifest.settings.worker_interpreter
    if interpreter is not None and interpreter.requested:
        head += (f", worker on {interpreter.implementation} {interpreter.version}"
                 + (f" free-threaded (GIL {spec.gil or 'off by default'})" if interpreter.free_threaded else ""))
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    lines = [head, "-" * len(head)]
    lines += [f"  {name:<{width}}  {value:>{vwidth}}  {why}".rstrip() for name, value, why in rows]
    lines += per_task_lines(s)
    lines += [f"  * {note}" for note in s.notes]
    if where:
        lines.append(f"  results: {run.path}")
    return "\n".join(lines)


PER_TASK_COLUMNS = {"task": "task", "tasks": "tasks", "throughput_per_s": "tasks/s", "latency_p50_s": "p50 (s)",
                    "latency_p95_s": "p95 (s)", "run_time_p50_s": "run p50 (s)", "cpu_share": "own CPU",
                    "off_cpu_share": "off CPU"}


def per_task_lines(s: Summary) -> list[str]:
    """The mix's figures per task name (the user's app): a table under the summary, or nothing."""
    if not s.per_task:
        return []
    from harness.analysis.mix import per_task_frame

    table = per_task_frame(s.per_task)[list(PER_TASK_COLUMNS)].rename(columns=PER_TASK_COLUMNS)
    for column in ("own CPU", "off CPU"):
        table[column] = table[column].map(lambda v: _num(v, ".0%"))
    text = table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}")
    return (["  per task (latency: submit to finish; own CPU and off CPU: shares of its run time; memory is the "
             "mix's, above)"] + [f"    {line}" for line in text.splitlines()])


def split_lines(advice: Advice) -> list[str]:
    """A recommended queue split as the user applies it: the task_routes for their settings, the two workers."""
    split = advice.split
    if not split or not split["recommended"]:
        return []
    routes = [f"        {json.dumps(task)}: {json.dumps(where)}," for task, where in split["task_routes"].items()]
    return ["", "  The split, in your settings (CELERY_TASK_ROUTES with Django's CELERY namespace, else task_routes):",
            "    task_routes = {", *routes, "    }", "  and one worker per queue:",
            *[f"    {command}" for command in split["commands"]]]


def machine_text(manifest: RunManifest) -> str:
    """Load before and after the run, and the busiest other processes: who else used the machine (the lab's
    record of it, harness.lab.machine_load, kept in the run's settings)."""
    load = manifest.settings.machine_load or MachineLoad()
    parts = []
    if load.load_average_before and load.load_average_after:
        parts.append(f"load {load.load_average_before[0]:.2f} before, {load.load_average_after[0]:.2f} after")
    busiest = load.busiest_other_processes
    if busiest:
        parts.append("busiest: " + ", ".join(f"{p.name} ({_num(p.cores, '.2f')})" for p in busiest))
    return "; ".join(parts) or "nothing else recorded"


def advice_text(advice: Advice, folder: object) -> str:
    """The advisor's answer for a terminal: the recommendation, why, then every candidate measured."""
    from harness.analysis.advice import COLUMNS

    table = advice.candidates.rename(columns=COLUMNS)
    lines = [f"Recommendation: {advice.pool} pool at concurrency {advice.concurrency}", f"  {advice.reason}"]
    lines += [f"  * {note}" for note in advice.notes]
    if advice.alone_per_task:  # what the split rests on: each task name's own CPU, one at a time
        from harness.analysis.mix import CPU_BOUND_SHARE

        lines += ["", f"  Each task, one at a time (own CPU at least {CPU_BOUND_SHARE:.0%} of its run time: computes):"]
        lines += [f"    {row['task']}: {_num(row['run_time_p50_s'], '.3f', ' s')} p50, "
                  f"{_num(row['cpu_share'], '.0%')} own CPU" for row in advice.alone_per_task]
    lines += split_lines(advice)
    lines += ["", table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}"), "",
              f"  report: {folder}/report.html"]
    return "\n".join(lines)
