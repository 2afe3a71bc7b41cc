"""A disk that fills, a folder that cannot be written, a read-only file system: real runs on a small tmpfs.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere these tests are skipped and say why. Each ends in one
line, no traceback, and no run.json left saying "running".
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lab_process import finish, harness, start, wait_for

ROOT = Path(__file__).resolve().parents[2]
RUN = ["bench", "--pool", "threads", "--workload", "cpu", "--concurrency", "2", "--tasks", "8", "--duration", "0.25"]


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 MiB tmpfs mounted at a fresh folder; remount(options) changes it (e.g. "ro")."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)
    try:
        yield mount, remount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _one_run(results: Path) -> Path:
    (folder,) = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()]
    return folder


def _fill(mount: Path) -> None:
    """Take every free byte of the file system."""
    stat = os.statvfs(mount)
    with open(mount / "filler", "wb") as f:
        f.write(bytes(stat.f_bavail * stat.f_frsize))


def test_a_disk_that_fills_during_a_run_ends_it_failed_in_one_line(tmpfs, tmp_path):
    mount, _ = tmpfs
    proc = start([*RUN, "--results-dir", str(mount / "results")], tmp_path)
    wait_for(lambda: list((mount / "results").glob("*/run.json")) if (mount / "results").exists() else None,
             what="the run's folder")
    _fill(mount)  # the disk is full before the run writes its records
    code, _out, err = finish(proc, timeout=90)
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err, err
    assert lines[-1].startswith("error: could not write the run's records in") and "No space left" in lines[-1]
    folder = _one_run(mount / "results")
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"], manifest
    assert not (folder / ".reserve").exists() and not list(folder.glob(".*.tmp"))
    assert not (mount / "results" / "latest").exists()


def test_figures_that_cannot_be_written_end_the_run_failed_in_one_line(tmp_path):
    results = tmp_path / "results"
    proc = start([*RUN, "--results-dir", str(results)], tmp_path)
    folder = wait_for(lambda: next(iter(results.glob("*/run.json")), None) if results.exists() else None,
                      what="the run's folder").parent
    (folder / "timeline.png").mkdir()  # the figure's name taken by a folder: its write fails after measuring
    code, _out, err = finish(proc, timeout=90)
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith(f"error: could not write the summary or figures in {folder}")
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["reason"].startswith("after measuring: "), manifest
    assert (folder / "tasks.csv").exists() and (folder / "samples.csv").exists()  # the records were kept
    (folder / "timeline.png").rmdir()  # room again: summarize draws the figures and completes the run
    done = harness("summarize", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"


def test_results_on_a_read_only_file_system_are_refused_before_anything_starts(tmpfs, tmp_path):
    mount, remount = tmpfs
    (mount / "results").mkdir()
    remount("ro")
    done = harness(*RUN, "--results-dir", str(mount / "results"), cwd=tmp_path)
    # The only line: no "broker: ..." nor "worker: ..." line came before it, so nothing was started.
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: {mount / 'results'}: not writable, so no results could be kept; give --results-dir a folder you "
        "can write"], done.stderr


def test_a_report_into_a_read_only_folder_is_one_line(tmpfs, tmp_path):
    mount, remount = tmpfs
    run = mount / "run"
    shutil.copytree(ROOT / "tests" / "data" / "v1" / "run-threads-cpu-gil", run)
    (run / "report.html").unlink(missing_ok=True)
    remount("ro")
    done = harness("report", str(run), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot write the report there (Read-only file system)" in done.stderr, done.stderr


def test_a_full_disk_under_any_command_is_one_line(tmpfs, tmp_path):
    mount, _ = tmpfs
    run = mount / "run"
    shutil.copytree(ROOT / "tests" / "data" / "v1" / "run-threads-cpu-gil", run)
    for figure in run.glob("*.png"):
        figure.unlink()
    _fill(mount)
    done = harness("summarize", str(run), cwd=tmp_path)  # redraws the figures: no room for them
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "No space left on device" in done.stderr, done.stderr
