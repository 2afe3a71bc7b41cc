"""Fixtures of every test: the suite's own calibrations, and a guard that nothing is left running (live fixtures:
tests/live/conftest.py)."""
from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile

# The suite's calibrations are its own (harness.lab.calibrate reads LAB_CALIBRATIONS at import, so this comes
# first): a rate the tests cache never sizes a user's runs for the next hour, nor a user's the tests'.
_CALIBRATIONS = tempfile.mkdtemp(prefix="lab-test-calibrations-")
os.environ["LAB_CALIBRATIONS"] = os.path.join(_CALIBRATIONS, "calibrations.json")
atexit.register(shutil.rmtree, _CALIBRATIONS, True)

import psutil  # noqa: E402
import pytest  # noqa: E402
from lab_process import is_broker  # noqa: E402


def lab_processes() -> set[int]:
    """Celery workers and Redis-protocol servers on this machine."""
    found = set()
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "workloads.app" in cmd or is_broker(p.info["name"] or "", cmd):
            found.add(p.info["pid"])
    return found


def lab_tempdirs() -> set[str]:
    tmp = tempfile.gettempdir()
    return set(glob.glob(os.path.join(tmp, "gil-lab-*")))


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """Every test must stop every worker, Redis and temporary directory it started."""
    procs_before, dirs_before = lab_processes(), lab_tempdirs()
    yield
    leftover = psutil.wait_procs([psutil.Process(pid) for pid in lab_processes() - procs_before
                                  if psutil.pid_exists(pid)], timeout=5)[1]
    assert not leftover, f"lab processes left running: {[p.pid for p in leftover]}"
    assert not (lab_tempdirs() - dirs_before), f"temporary directories left: {lab_tempdirs() - dirs_before}"


@pytest.fixture
def workdir(tmp_path):
    # Run from a scratch folder, so results/ lands there; the project is put on PYTHONPATH.
    return tmp_path
