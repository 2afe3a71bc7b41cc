"""One self-contained report.html per run or sweep: question, settings, environment, table, figures, reading.

Drawn from a loaded folder and figures already drawn (harness.pipeline puts them together).
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from harness.analysis.advice import COLUMNS as ADVICE_COLUMNS
from harness.analysis.advice import Advice
from harness.present import reading
from harness.analysis.decision import Decision
from harness.present.console import machine_text, slots_text, summary_table
from harness.results.run_folder import Run
from harness.results.sweep_folder import Sweep

if TYPE_CHECKING:
    from harness.pipeline import Judgement

CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.8em}table{border-collapse:collapse;font-size:.9em;margin:1em 0}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th{background:#f3f3f3}img{max-width:100%;margin:1em 0}
.reading li{margin:.4em 0;font-size:1.1em}.caution{border-left:6px solid #d95f02;background:#fff4e8;
padding:.2em 1em;margin:1em 0}.trust-low{color:#b00020;font-weight:bold}.trust-medium{color:#8a6d00;font-weight:bold}
.trust-high{color:#1b7e3c;font-weight:bold}details{margin:1em 0}code{background:#f3f3f3;padding:0 .2em}"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _page(title: str, question: str, sections: list[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p><b>Question:</b> {html.escape(question)}</p>{''.join(sections)}</body></html>")


def _environment(env: dict, manifest: dict | None = None) -> str:
    keep = {k: env.get(k) for k in ("time_utc", "hostname", "cpu_model", "cpu_count_logical", "cpu_governor",
                                    "load_average", "python", "git_commit", "git_dirty")}
    keep["packages"] = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    if manifest is not None and (manifest.get("settings") or {}).get("machine_load"):
        keep["other processes during the run"] = machine_text(manifest)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                   for k, v in keep.items())
    return f"<h2>Environment</h2><table>{rows}</table>"


def _reading(lines: list[str]) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return f"<h2>What the numbers say</h2><ul class='reading'>{items}</ul>"


def sweep_cores(sweep: Sweep) -> int:
    """The cores the sweep's machine let it use, as its environment recorded them."""
    env = sweep.manifest["environment"]
    return int(env.get("cpu_affinity") or env.get("cpu_count_logical") or 1)


def _advice(advice: "Advice") -> str:
    lines = "".join(f"<li>{html.escape(note)}</li>" for note in advice.notes)
    table = advice.candidates.rename(columns=ADVICE_COLUMNS).to_html(
        index=False, float_format=lambda v: f"{v:.3g}", na_rep="", border=0)
    return (f"<h2>Recommendation: {html.escape(advice.pool)} at concurrency {advice.concurrency}</h2>"
            f"<p class='reading'>{html.escape(advice.reason)}</p><ul>{lines}</ul>"
            f"<h3>Every setting measured (median over repeats, fastest first)</h3>{table}")


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
                                                                         table["speedup_ci_high"])]
    return table.assign(speedup_95ci=ci)


def sweep_report(sweep: Sweep, table: pd.DataFrame, figures: list[Path], advice: "Advice | None" = None,
                 judgement: "Judgement | None" = None) -> Path:
    """report.html for a sweep folder, from its summary table and figures; returns the report's path."""
    manifest, folder = sweep.manifest, sweep.path
    axes, exp = manifest["axes"], manifest["experiment"]
    cores = sweep_cores(sweep)
    done = sum(e["status"] == "complete" for e in manifest["runs"])
    status = (f"<p><b>Status:</b> {manifest['status']} — {done} of {len(manifest['runs'])} runs complete"
              f"{' (quick settings)' if manifest.get('quick') else ''}.</p>")
    failed = [e for e in manifest["runs"] if e["status"] == "failed"]
    if failed:
        status += "<p>Failed runs: " + "; ".join(html.escape(f"cell {e['cell']} #{e['repeat'] + 1}: {e['reason']}")
                                                 for e in failed) + "</p>"
    settings = f"<h2>Settings</h2><pre>{html.escape(json.dumps({'fixed': exp['fixed'], 'axes': exp['axes'], 'repeats': exp['repeats']}, indent=1))}</pre>"
    shown = ["label", "n", "speedup", "speedup_95ci", "disturbed", "ideal_speedup", "efficiency", "makespan_s", "mean_tasks_running",
             "mean_cores_used", "pss_peak_mib", "gil_wait_mean_s", "task_stretch", "second_start_delay_s",
             "rtt_mean_s", "warning"]
    optional = ("gil_wait_mean_s", "rtt_mean_s", "pss_peak_mib", "task_stretch")
    table = _with_interval(table)
    cols = [c for c in shown if c in table and (c not in optional or table[c].notna().any())]
    table_html = ("<h2>Results (median over repeats)</h2>" +
                  table[cols].to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="", border=0)
                  if not table.empty else "<p>No cell completed.</p>")
    cautions = _cautions(judgement.cautions) if judgement else ""
    sections = [cautions] + ([_advice(advice)] if advice is not None else []) + [
                status, _reading(reading.sweep_reading(table, axes, cores)), table_html,
                "<h2>Figures</h2>" + "".join(_img(p) for p in figures), settings, _environment(manifest["environment"]),
                _decisions(judgement.decisions) if judgement else ""]
    out = folder / "report.html"
    out.write_text(_page(f"Experiment: {exp['name']}", exp["question"], sections))
    return out


def run_report(run: Run, figures: list[Path]) -> Path:
    """report.html for a run folder, from its summary and figures; returns the report's path."""
    s, spec = run.summary, run.spec
    sections = [_reading(s.get("notes") or ["Nothing unusual: see the table."]),
                f"<h2>Summary</h2><pre>{html.escape(summary_table(run))}</pre>",
                "<h2>Figures</h2>" + "".join(_img(p) for p in figures),
                f"<h2>Settings</h2><pre>{html.escape(json.dumps({'spec': spec, 'settings': run.manifest['settings']}, indent=1, default=str))}</pre>",
                _environment(run.manifest["environment"], run.manifest)]
    question = (f"How much real parallelism does the {spec['pool']} pool give {spec['tasks']} {spec['workload']} "
                f"tasks at {slots_text(spec)}?")
    out = run.path / "report.html"
    out.write_text(_page(f"Run {run.run_id}", question, sections))
    return out
