"""One self-contained report.html per run or sweep: question, settings, environment, table, figures, reading.

Drawn from a loaded folder and figures already drawn (harness.pipeline puts them together).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis.advice import COLUMNS as ADVICE_COLUMNS
from harness.analysis.advice import Advice
from harness.analysis.decision import Decision
from harness.present import reading
from harness.present.console import machine_text, slots_text, split_lines, summary_table
from harness.present.page import img, numbers_table, page, settings_table, tidy_path
from harness.results.records import Environment, RunManifest, Status, SweepManifest
from harness.results.run_folder import Run
from harness.results.sweep_folder import Sweep

if TYPE_CHECKING:
    from harness.judge import Judgement


def _environment(env: Environment, manifest: RunManifest | None = None) -> str:
    """The machine and software, as harness.lab.environment recorded them, and for a run who else used the
    machine."""
    load_average = env.load_average
    keep = {"time_utc": env.time_utc, "hostname": env.hostname, "cpu_model": env.cpu_model,
            "cpu_count_logical": env.cpu_count_logical, "cpu_governor": env.cpu_governor,
            "load_average": ", ".join(f"{x:.2f}" for x in load_average) if load_average else None,
            "python": env.python, "git_commit": env.git_commit, "git_dirty": env.git_dirty,
            "packages": ", ".join(f"{k} {v}" for k, v in (env.packages or {}).items() if v)}
    if manifest is not None and manifest.settings.machine_load:
        keep["other processes during the run"] = machine_text(manifest)
    return f"<h2>Environment</h2>{settings_table(keep)}"


def _reading(lines: list[str]) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>What the numbers say</h2><ul class='reading'>{items}</ul>"


def sweep_cores(sweep: Sweep) -> int:
    """The cores the sweep's machine let it use, as its environment recorded them."""
    return sweep.manifest.environment.cores


def _at_rate(rated: dict | None) -> str:
    """The advice at a rate (rate.json): its sentence and what one worker of each setting searched holds."""
    if not rated:
        return ""
    rows = []
    for search in rated["searches"]:
        held = f"{search['capacity']:.3g}" if search.get("capacity") else "none held"
        rows.append(f"<tr><td>{html.escape(str(search['pool']))}</td><td>{search['concurrency']}</td>"
                    f"<td>{'split by queue' if search.get('routes') else ''}</td><td>{held}</td></tr>")
    return (f"<h2>At {rated['rate']:g} tasks/s within {html.escape(rated['slo'])}</h2>"
            f"<p class='reading'>{html.escape(rated['sentence'])}</p>"
            "<table><tr><th>pool</th><th>concurrency</th><th></th><th>one worker holds (tasks/s)</th></tr>"
            + "".join(rows) + "</table>")


def _advice(advice: Advice, rated: dict | None = None) -> str:
    lines = "".join(f"<li>{html.escape(note)}</li>" for note in advice.notes)
    candidates = advice.candidates.rename(columns=ADVICE_COLUMNS)
    table = numbers_table(candidates, list(candidates.columns))
    split = split_lines(advice)
    return (f"<h2>Recommendation: {html.escape(advice.pool)} at concurrency {advice.concurrency}</h2>"
            f"<p class='reading'>{html.escape(advice.reason)}</p><ul>{lines}</ul>"
            + (f"<pre>{html.escape(chr(10).join(line[2:] for line in split[1:]))}</pre>" if split else "")
            + _at_rate(rated) + f"<h3>Every setting measured (median over repeats, fastest first)</h3>{table}")


def _cautions(lines: list[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<div class='caution'><h2>Read this first</h2><ul>{items}</ul></div>"


def _decisions(decisions: list[Decision]) -> str:
    if not decisions:
        return ""
    items = "".join(f"<li>{html.escape(d.sentence)} <span class='trust-{d.trust}'>Trust: {d.trust}</span> "
                    f"({html.escape(d.trust_why)}).</li>"
                    for d in decisions)
    return f"<h2>Decision</h2><ul class='reading'>{items}</ul>"


def _with_interval(table: pd.DataFrame) -> pd.DataFrame:
    """The table with the speedup's bootstrap interval as one readable column."""
    if "speedup_ci_low" not in table:
        return table
    ci = [f"{lo:.2f}-{hi:.2f}" if pd.notna(lo) else "" for lo, hi in zip(table["speedup_ci_low"],
                                                                         table["speedup_ci_high"], strict=False)]
    return table.copy().assign(speedup_95ci=ci)  # copy: one block (pandas warns of a fragmented frame)


def _runs(manifest: SweepManifest) -> str:
    """Every run of the sweep, with links to its folder's trace and figures (relative: the folder can move)."""
    labels = manifest.labels
    rows = []
    for e in manifest.runs:
        run = e.run
        links = (f"<a href='runs/{html.escape(run)}/trace.json'>trace.json</a> · "
                 f"<a href='runs/{html.escape(run)}/parallelism.png'>parallelism</a> · "
                 f"<a href='runs/{html.escape(run)}/timeline.png'>"
                 "timeline</a>") if run and e.status == Status.COMPLETE else ""
        rows.append(f"<tr><td style='text-align:left'>{html.escape(labels[e.cell])}</td><td>{e.repeat + 1}</td>"
                    f"<td>{html.escape(str(e.status))}</td><td style='text-align:left'>{links}</td></tr>")
    return ("<details><summary>Every run, with its zoomable timeline (open one with "
            "<code>make trace RUN=&lt;this folder&gt;/runs/&lt;run-id&gt;</code>)</summary><table><tr><th>cell</th>"
            f"<th>repeat</th><th>status</th><th>files</th></tr>{''.join(rows)}</table></details>")


def sweep_report(sweep: Sweep, table: pd.DataFrame, figures: list[Path], advice: Advice | None = None,
                 judgement: Judgement | None = None, rated: dict | None = None) -> Path:
    """report.html for a sweep folder, from its summary table and figures; returns the report's path."""
    manifest, folder = sweep.manifest, sweep.path
    axes, exp = manifest.axes, manifest.experiment  # the experiment as sweep.json keeps it (Experiment.to_dict)
    cores = sweep_cores(sweep)
    done = sum(e.status == Status.COMPLETE for e in manifest.runs)
    status = (f"<p><b>Status:</b> {manifest.status} — {done} of {len(manifest.runs)} runs complete"
              f"{' (quick settings)' if manifest.quick else ''}.</p>")
    failed = [e for e in manifest.runs if e.status == Status.FAILED]
    if failed:
        status += "<p>Failed runs: " + "; ".join(html.escape(f"cell {e.cell} #{e.repeat + 1}: {e.reason}")
                                                 for e in failed) + "</p>"
    settings = ("<h2>Settings</h2>" + settings_table({"fixed": exp["fixed"], "repeats": exp["repeats"]})
                + settings_table({"axes": {k: ", ".join(map(str, v)) for k, v in exp["axes"].items()}}))
    shown = ["label", "n", "speedup", "speedup_95ci", "disturbed", "unsteady", "vs_solo", "ideal_speedup", "efficiency",
             "throughput_per_s", "latency_p95_s", "makespan_s",
             "mean_tasks_running", "mean_cores_used", "pss_peak_mib", "gil_wait_mean_s", "task_stretch",
             "second_start_delay_s", "rtt_mean_s", "warning"]
    optional = ("gil_wait_mean_s", "rtt_mean_s", "pss_peak_mib", "task_stretch", "vs_solo", "speedup",
                "speedup_95ci", "efficiency")
    table = _with_interval(table)
    cols = [c for c in shown if c in table and (c not in optional or table[c].notna().any())]
    table_html = ("<h2>Results (median over repeats)</h2>" + numbers_table(table, cols)
                  if not table.empty else "<p>No cell completed.</p>")
    table_html += _how_compared(manifest) + _per_task(sweep)
    cautions = _cautions(judgement.cautions) if judgement else ""
    sections = [cautions] + ([_advice(advice, rated)] if advice is not None else []) + [
                status, _reading(reading.sweep_reading(table, axes, cores)), table_html,
                "<h2>Figures</h2>" + "".join(img(p) for p in figures), _runs(manifest), settings,
                _environment(manifest.environment),
                _decisions(judgement.decisions) if judgement else ""]
    out = folder / "report.html"
    out.write_text(page(f"Experiment: {exp['name']}", exp["question"], sections))
    return out


def _per_task(sweep: Sweep) -> str:
    """A sweep of the user's app's mix: each cell's figures per task name (median over repeats)."""
    from harness.analysis.mix import per_task_by_cell

    table = per_task_by_cell([(run.label, run.summary.per_task) for run in sweep.entries() if run.summary is not None])
    if table.empty:
        return ""
    return ("<h2>Per task name (median over repeats)</h2>"
            + numbers_table(table, ["label", "task", "throughput_per_s", "latency_p50_s", "latency_p95_s",
                                    "cpu_share"]))


def _how_compared(manifest: SweepManifest) -> str:
    """How the sweep's numbers survive a machine whose speed drifts: one calibration, the order its runs
    ran in, and what the solo comparison is."""
    parts = []
    if manifest.calibrations:
        parts.append(f"Every cell ran the same work: its fixed work was sized from one rate per workload and "
                     f"interpreter, measured before the first cell ({len(manifest.calibrations)} in all).")
    if manifest.order:
        parts.append(f"Runs ran {html.escape(manifest.order)}.")
    parts.append("Each speedup is against the same task timed alone before and after its own batch (their median); "
                 "<i>tasks/s vs solo nearest in time</i> is the median over a cell's runs of its tasks/s over that of "
                 "the solo run of the same work nearest to it in time (a ratio of runs seconds apart, which the "
                 "machine's drift moves less than a ratio of medians).")
    return "<p>" + " ".join(parts) + "</p>"


def run_report(run: Run, figures: list[Path]) -> Path:
    """report.html for a run folder, from its summary and figures; returns the report's path."""
    s, spec = run.summary, run.spec
    sections = [_reading((s.notes if s is not None else None) or ["Nothing unusual: see the table."]),
                f"<h2>Summary</h2><pre>{html.escape(summary_table(run, where=False))}</pre>",
                "<h2>Figures</h2>" + "".join(img(p) for p in figures)
                + "<p>Zoom into this run: <code>make trace RUN=" + html.escape(str(tidy_path(str(run.path))))
                + "</code> opens its <a href='trace.json'>trace.json</a>.</p>",
                "<h2>Settings</h2>" + settings_table({"spec": {**spec.to_dict(), **run.manifest.spec_extra},
                                                      "settings": run.manifest.settings.to_dict()},
                                                     skip=("settings.machine_load.busiest_other_processes",)),
                _environment(run.manifest.environment, run.manifest)]
    question = (f"How much real parallelism does the {spec.pool} pool give {spec.tasks} {spec.workload} "
                f"tasks at {slots_text(spec)}?")
    out = run.path / "report.html"
    out.write_text(page(f"Run {run.run_id}", question, sections))
    return out
