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

COLUMNS = ("when", "kind", "what", "status", "result", "trust", "open")


def _run_row(folder: Path, manifest: dict) -> dict:
    spec, s = manifest.get("spec") or {}, manifest.get("summary") or {}
    if not spec:  # a run that failed before its settings were stored
        return {"kind": "run", "what": folder.name, "result": "", "trust": ""}
    what = f"{spec.get('pool')} pool, {spec.get('task') or spec.get('workload')}, {slots_text(spec)}"
    result = (f"{s['speedup']:.2f}x on {s.get('mean_cores_used', float('nan')):.2f} cores"
              if isinstance(s.get("speedup"), (int, float)) else "")
    if s.get("disturbed"):
        trust = f"DISTURBED ({disturbance_cause(s)})"
    elif s.get("unsteady"):
        trust = f"UNSTEADY ({s.get('unsteady_cause')})"
    elif s.get("disturbed") is False:
        trust = "quiet"
    else:
        trust = "not measured"
    return {"kind": "run", "what": what, "result": result, "trust": trust}


def _sweep_row(folder: Path, manifest: dict) -> dict:
    exp = manifest.get("experiment") or {}
    runs = manifest.get("runs") or []
    done = sum(e.get("status") == "complete" for e in runs)
    marks = ["quick" if manifest.get("quick") else f"{exp.get('repeats')} repeats"]
    return {"kind": "advisor" if manifest.get("advisor") else "sweep",
            "what": f"{exp.get('name')}: {exp.get('question')}",
            "result": f"{done} of {len(runs)} runs", "trust": ", ".join(marks)}


def _stamp(name: str) -> str:
    """The time in a folder's name (20261123-081751-... or sweep-20261123-081751-...), as ISO text."""
    match = re.search(r"(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)", name)
    return "{}-{}-{}T{}:{}:{}".format(*match.groups()) if match else ""


def _row(folder: Path) -> dict | None:
    for name, kind in (("sweep.json", _sweep_row), ("run.json", _run_row)):
        path = folder / name
        if path.exists():
            try:
                # Read as the loaders read it, without their checks: a run whose harness died is not "running".
                manifest = settle_running(json.loads(path.read_text()), "run" if name == "run.json" else "sweep")
                row = kind(folder, manifest)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                return {"when": "", "kind": "?", "what": folder.name, "status": f"unreadable: {type(exc).__name__}",
                        "result": "", "trust": "", "open": folder.name}
            when = (manifest.get("started_utc") or (manifest.get("environment") or {}).get("time_utc")
                    or _stamp(folder.name))
            report = folder / "report.html"
            target = f"{folder.name}/report.html" if report.exists() else f"{folder.name}/"
            return {**row, "when": str(when)[:19].replace("T", " "), "status": manifest.get("status", "?"),
                    "open": target}
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
