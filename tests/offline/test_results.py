"""Stored result folders, offline: loading and upgrading version 1, summarize, report, compare, console, figures.

The folders in tests/data/v1 were written by the lab at schema version 1 (a threads cpu run with the
GIL probe, a prefork io_net run, a 2-cell sweep with 2 repeats); their figures were left out.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis.compare import summary_changes
from harness.analysis.summary import ANALYSIS_VERSION
from harness.errors import ResultsError, UsageError
from harness.pipeline import compare, report, summarize
from harness.present.console import summary_table
from harness.results import RunFolder, is_sweep, load, load_run, load_sweep
from harness.results.records import RunManifest
from harness.results.run_folder import GIL_PROBE_COST_KEYS, SCHEMA_VERSION
from harness.results.sweep_folder import SWEEP_SCHEMA_VERSION
from workloads.protocol import RECORD_FIELDS

DATA = Path(__file__).resolve().parents[1] / "data" / "v1"
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def stored(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


def test_a_version_1_run_loads_upgraded_without_being_rewritten():
    before = (DATA / "run-threads-cpu-gil" / "run.json").read_text()
    run = load_run(DATA / "run-threads-cpu-gil")
    assert stored(DATA / "run-threads-cpu-gil")["schema_version"] == 1
    assert run.manifest.schema_version == SCHEMA_VERSION == 3
    assert run.manifest.settings.reference_tasks == 0 and run.reference.empty
    assert run.manifest.analysis_version == 1
    probe = run.summary.gil_probe
    assert run.manifest.settings.gil_probe_cost == {k: getattr(probe, k) for k in GIL_PROBE_COST_KEYS}
    assert load_run(DATA / "run-prefork-io_net").manifest.settings.gil_probe_cost is None
    assert (DATA / "run-threads-cpu-gil" / "run.json").read_text() == before  # reading never writes
    assert set(RECORD_FIELDS) <= set(run.tasks.columns)


def test_a_version_1_sweep_loads_upgraded_and_is_told_from_a_run():
    sweep = load_sweep(DATA / "sweep-tiny")
    assert sweep.manifest.schema_version == SWEEP_SCHEMA_VERSION == 2
    assert sweep.manifest.analysis_version == 1
    assert len(sweep.run_paths) == 4 and len(sweep.summary) == 2
    assert is_sweep(DATA / "sweep-tiny") and not is_sweep(DATA / "run-prefork-io_net")
    assert type(load(DATA / "sweep-tiny")).__name__ == "Sweep"
    assert type(load(DATA / "run-prefork-io_net")).__name__ == "Run"


@pytest.mark.parametrize("name", ["run-threads-cpu-gil", "run-prefork-io_net"])
def test_summarize_reproduces_the_summary_the_run_stored(v1, name):
    # A version 1 folder has no reference task: analysis 2 falls back to version 1's serial rule, so
    # every value it stored comes back, and what analysis 2 adds is None without a reference.
    # Analysis 3 counts GIL holds only while two tasks ran at once (those values change) and adds
    # memory, latency and task-versus-alone figures (new values, not changes).
    path = v1 / name
    old = stored(path)["summary"]
    summarize(path, log=lambda _line: None)
    new = stored(path)
    added_in_3 = {"latency_p95_s", "alone_cpu_share", "task_stretch"} | {
        f"{c}_{s}_mib" for c in ("rss", "uss", "pss") for s in ("peak", "mean")}
    added_in_3 |= {"other_cores_used", "disturbed"}  # analysis 4: None where the lab's processes were not sampled
    # analysis 6: whether the tasks could contend, and the machine's speed (nothing to say without a reference)
    added_in_3 |= {"shares_nothing", "unsteady_cause", "batch_started_t"}
    added_in_3 |= {"latency_p50_s"}  # analysis 7 (per_task stays None: no mix of calls)
    assert [c for c in summary_changes(old, new["summary"])
            if not c.startswith("gil_probe.gil_") and c not in added_in_3] == []
    # v1 samples have RSS (no USS or PSS): the tree's peak is there
    assert 40 < new["summary"]["rss_peak_mib"] < 2000 and new["summary"]["uss_peak_mib"] is None
    if "gil_probe" in old:
        probe = new["summary"]["gil_probe"]
        assert 0 < probe["gil_contended_s"] < old["makespan_s"]
        assert probe["gil_hold_median_s"] == pytest.approx(old["gil_probe"]["gil_hold_median_s"], rel=0.25)
    assert new["summary"]["work_inflation"] is None and new["summary"]["alone_s"] is None
    assert new["summary"]["machine_drift"] is None and new["summary"]["unsteady"] is None  # not measured then
    assert new["summary"]["other_cores_used"] is None and new["summary"]["disturbed"] is None
    assert new["summary"]["speedup"] == pytest.approx(old["speedup"], rel=1e-9)
    assert new["schema_version"] == SCHEMA_VERSION and new["analysis_version"] == ANALYSIS_VERSION
    for figure in ("timeline.png", "parallelism.png") + (("gil.png",) if "gil" in name else ()):
        assert (path / figure).read_bytes().startswith(PNG), figure
        assert figure in new["files"]


def test_summarize_recomputes_from_the_raw_records(v1):
    # Double every task's own CPU in tasks.csv: a summary copied from run.json would not notice.
    path = v1 / "run-threads-cpu-gil"
    tasks = pd.read_csv(path / "tasks.csv")
    tasks["cpu_s"] *= 2
    tasks.to_csv(path / "tasks.csv", index=False)
    old = stored(path)["summary"]
    lines = []
    summarize(path, log=lines.append)
    new = stored(path)["summary"]
    assert new["serial_s"] == pytest.approx(2 * old["serial_s"], rel=1e-6)
    assert {"speedup", "serial_s", "task_cpu_s"} <= set(summary_changes(old, new))
    assert "values changed" in lines[0] and " 0 values changed" not in lines[0]


def test_summarize_twice_changes_nothing(v1):
    path = v1 / "run-threads-cpu-gil"
    summarize(path, log=lambda _line: None)
    lines = []
    summarize(path, log=lines.append)
    assert f"analysis version {ANALYSIS_VERSION} (was {ANALYSIS_VERSION}); 0 values changed" in lines[0]


def test_summarize_a_sweep_reproduces_its_summary_csv_and_draws_its_report(v1):
    committed = pd.read_csv(DATA / "sweep-tiny" / "summary.csv")
    (v1 / "sweep-tiny" / "summary.csv").unlink()
    page = summarize(v1 / "sweep-tiny", log=lambda _line: None)
    again = pd.read_csv(v1 / "sweep-tiny" / "summary.csv")
    assert set(committed.columns) <= set(again.columns)
    numbers = committed.select_dtypes("number").columns
    pd.testing.assert_frame_equal(again[numbers], committed[numbers], rtol=1e-5)
    assert page.name == "report.html" and "data:image/png;base64," in page.read_text()
    assert json.loads((v1 / "sweep-tiny" / "sweep.json").read_text())["analysis_version"] == ANALYSIS_VERSION


def test_summarize_refuses_a_run_that_did_not_record_every_task(v1):
    path = v1 / "run-prefork-io_net"
    manifest = stored(path)
    manifest.update(status="failed", reason="worker died", partial={"tasks_submitted": 4, "tasks_recorded": 1})
    (path / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="did not record all its tasks"):
        summarize(path, log=lambda _line: None)


def test_a_run_report_draws_missing_figures_and_holds_no_secret(v1):
    path = v1 / "run-prefork-io_net"
    page = report(path)
    text = page.read_text()
    assert "How much real parallelism does the prefork pool give 4 io_net tasks" in text
    assert text.count("data:image/png;base64,") == 2 and (path / "timeline.png").exists()
    assert "***@127.0.0.1" in text  # the broker URL as stored: its password redacted


def test_compare_runs_and_sweeps_and_refuse_a_mix():
    same = compare(DATA / "sweep-tiny", DATA / "sweep-tiny")
    assert (same["verdict"] == "no significant difference").all() and len(same) == 8
    runs = compare(DATA / "run-threads-cpu-gil", DATA / "run-prefork-io_net")
    assert runs["metric"].tolist() == ["run_s", "queue_wait_s", "latency_s"]
    with pytest.raises(UsageError, match="compare two runs or two sweeps, not a sweep with a run"):
        compare(DATA / "sweep-tiny", DATA / "run-prefork-io_net")


def test_console_table_of_a_stored_run():
    text = summary_table(load_run(DATA / "run-threads-cpu-gil"))
    assert "speedup vs one at a time" in text and "GIL held per turn (median)" in text
    assert "the GIL took the difference" in text


def test_summary_changes_names_what_moved_and_ignores_the_last_bits():
    old = {"a": 1.0, "b": 2.0, "n": 3, "s": "x", "g": {"h": 0.5}, "nan": float("nan")}
    assert summary_changes(old, {**old, "a": 1.0 + 1e-12}) == []
    assert summary_changes(old, {**old, "b": 2.1, "g": {"h": 0.7}, "s": "y"}) == ["b", "g.h", "s"]
    assert summary_changes(old, {k: v for k, v in old.items() if k != "n"}) == ["n"]


def test_a_newer_or_missing_schema_version_is_refused(v1):
    path = v1 / "run-prefork-io_net"
    manifest = stored(path)
    (path / "run.json").write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(ResultsError, match="schema_version 99 is newer than this lab reads"):
        load_run(path)
    (path / "run.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "schema_version"}))
    with pytest.raises(ResultsError, match="no schema_version"):
        load_run(path)
    sweep = json.loads((v1 / "sweep-tiny" / "sweep.json").read_text())
    (v1 / "sweep-tiny" / "sweep.json").write_text(json.dumps({**sweep, "schema_version": 3}))
    with pytest.raises(ResultsError, match="newer than this lab reads"):
        load_sweep(v1 / "sweep-tiny")


def test_summarize_from_the_command_line(v1, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "harness", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    out = cli("summarize", str(v1 / "run-threads-cpu-gil"))
    assert out.returncode == 0, out.stderr
    assert f"summary recomputed by analysis version {ANALYSIS_VERSION} (was 1); " in out.stdout
    assert "gil_probe.gil_hold_median_s" in out.stdout
    bad = cli("summarize", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "run.json: missing" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def _folder(tmp_path, manifest):
    folder = RunFolder(tmp_path, "r1")
    folder.write_manifest(RunManifest.from_dict(manifest))
    folder.write_frame("tasks.csv", pd.DataFrame({"task_id": ["a"]}))
    folder.write_frame("samples.csv", pd.DataFrame({"t": [0.0]}))
    return folder


def test_loader_reads_a_complete_folder_and_refuses_an_incomplete_one(tmp_path):
    folder = _folder(tmp_path, {"status": "complete", "spec": {}})
    assert load_run(folder.path).tasks["task_id"].tolist() == ["a"]
    folder.write_manifest(RunManifest.from_dict({"status": "failed", "reason": "worker died", "spec": {}}))
    with pytest.raises(ResultsError, match="run is failed, not complete: worker died"):
        load_run(folder.path)
    assert load_run(folder.path, allow_incomplete=True).status == "failed"


def test_loader_refuses_a_newer_schema_and_names_bad_files(tmp_path):
    folder = _folder(tmp_path, {"status": "complete", "spec": {}})
    manifest = json.loads(folder.file("run.json").read_text())
    folder.file("run.json").write_text(json.dumps({**manifest, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ResultsError, match="newer than this lab reads"):
        load_run(folder.path)
    folder.file("run.json").write_text("{not json")
    with pytest.raises(ResultsError, match="run.json: not valid JSON"):
        load_run(folder.path)
    folder.file("run.json").write_text(json.dumps(manifest))
    folder.file("tasks.csv").unlink()
    with pytest.raises(ResultsError, match="tasks.csv: missing"):
        load_run(folder.path)


def test_a_run_folder_is_never_reused(tmp_path):
    RunFolder(tmp_path, "same")
    with pytest.raises(FileExistsError):
        RunFolder(tmp_path, "same")


def test_loader_names_a_truncated_tasks_file(tmp_path):
    folder = RunFolder(tmp_path, "r1")
    folder.write_manifest(RunManifest.from_dict({"status": "complete", "spec": {"tasks": 3, "background_tasks": 0}}))
    folder.write_frame("tasks.csv", pd.DataFrame({"task_id": ["a", "b", "c"]}))
    folder.write_frame("samples.csv", pd.DataFrame({"t": [0.0]}))
    assert len(load_run(folder.path).tasks) == 3
    lines = folder.file("tasks.csv").read_text().splitlines()
    folder.file("tasks.csv").write_text("\n".join(lines[:2]) + "\n")  # cut short
    with pytest.raises(ResultsError, match=r"tasks.csv: 1 rows, but the run recorded 3 tasks"):
        load_run(folder.path)
    folder.file("tasks.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ResultsError, match="tasks.csv"):
        load_run(folder.path)
