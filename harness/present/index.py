"""results/index.html: every run and sweep in a results folder, newest first, with its trust marks and links.

Written after each run and sweep (and by `make report`); a folder that cannot be read is listed as such,
never a reason to fail.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from harness.analysis.trust import disturbance_cause
from harness.present.console import slots_text
from harness.present.page import page
from harness.results.files import settle_running
from harness.results.records import RunManifest, Status, SweepManifest

COLUMNS = ("when", "kind", "what", "status", "result", "trust", "open")


def _run_row(manifest: RunManifest) -> dict:
    spec, s = manifest.spec, manifest.summary
    what = f"{spec.pool} pool, {spec.task or spec.workload}, {slots_text(spec)}"
    result = (f"{s.speedup:.2f}x on {s.mean_cores_used:.2f} cores"
              if s is not None and isinstance(s.speedup, (int, float)) else "")
    if s is None:
        trust = "not measured"
    elif s.disturbed:
        trust = f"DISTURBED ({disturbance_cause(s)})"
    elif s.unsteady:
        trust = f"UNSTEADY ({s.unsteady_cause})"
    elif s.disturbed is False:
        trust = "quiet"
    else:
        trust = "not measured"
    return {"kind": "run", "what": what, "result": result, "trust": trust,
            "when": manifest.environment.time_utc, "status": manifest.status}


def _sweep_row(manifest: SweepManifest) -> dict:
    exp = manifest.experiment  # the experiment as sweep.json keeps it (Experiment.to_dict)
    done = sum(e.status == Status.COMPLETE for e in manifest.runs)
    marks = ["quick" if manifest.quick else f"{exp.get('repeats')} repeats"]
    return {"kind": "advisor" if manifest.advisor else "sweep",
            "what": f"{exp.get('name')}: {exp.get('question')}",
            "result": f"{done} of {len(manifest.runs)} runs", "trust": ", ".join(marks),
            "when": manifest.started_utc or manifest.environment.time_utc,
            "status": manifest.status}


def _stamp(name: str) -> str:
    """The time in a folder's name (20261123-081751-... or sweep-20261123-081751-...), as ISO text."""
    match = re.search(r"(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)", name)
    return "{}-{}-{}T{}:{}:{}".format(*match.groups()) if match else ""


def _read(path: Path) -> dict:
    """A manifest's row, its file read as the loaders read it but without their checks (an older or damaged
    folder is still listed), and a run whose harness died read as interrupted, not "running"."""
    if path.name == "sweep.json":
        return _sweep_row(SweepManifest.from_dict(settle_running(json.loads(path.read_text()), "sweep")))
    return _run_row(RunManifest.from_dict(settle_running(json.loads(path.read_text()), "run")))


def _row(folder: Path) -> dict | None:
    for name in ("sweep.json", "run.json"):
        path = folder / name
        if path.exists():
            try:
                row = _read(path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                return {"when": "", "kind": "?", "what": folder.name, "status": f"unreadable: {type(exc).__name__}",
                        "result": "", "trust": "", "open": folder.name}
            report = folder / "report.html"
            target = f"{folder.name}/report.html" if report.exists() else f"{folder.name}/"
            return {**row, "when": str(row["when"] or _stamp(folder.name))[:19].replace("T", " "), "open": target}
    return None


def write_index(results_dir: Path) -> Path:
    """index.html in `results_dir`, listing its runs and sweeps (not the runs inside sweeps)."""
    results_dir = Path(results_dir)
    rows = [r for f in sorted(results_dir.iterdir()) if f.is_dir() and not f.is_symlink() for r in [_row(f)] if r]
    rows.sort(key=lambda r: r["when"], reverse=True)
    head = "".join(f"<th class='text'>{c}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='text'><a href='{html.escape(r[c])}'>{html.escape(r[c].rstrip('/').split('/')[0])}</a></td>"
            if c == "open" else f"<td class='text'>{html.escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>"
        for r in rows)
    text = (f"<p>{len(rows)} runs and sweeps, newest first. A DISTURBED run had other processes busy on the "
            "machine: its speedup is not reliable. A quick sweep is a first look.</p>"
            f"<table><tr>{head}</tr>{body}</table>")
    out = results_dir / "index.html"
    out.write_text(page("Results", "", [text]))
    return out
