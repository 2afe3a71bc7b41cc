"""The user's own task, offline: settings, the check made before a worker starts, what run.json keeps."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.lab.preflight import check_own_task
from harness.model.spec import build_spec
from workloads import own

HERE = Path(__file__).resolve().parents[1] / "data" / "own_tasks"


def spec(**settings):
    return build_spec(task_path=str(HERE), **settings)


def test_the_task_becomes_the_workload_with_its_arguments():
    s = spec(task="user_tasks:spin", args="[5]", kwargs='{"label": "x"}')
    assert (s.workload, s.task_args, s.task_kwargs) == ("task", [5], {"label": "x"})
    assert build_spec(task="user_tasks:spin").args == "[]"  # no ARGS: no arguments


@pytest.mark.parametrize("settings, message", [
    (dict(task="user_tasks"), "TASK as package.module:function"),
    (dict(task="user_tasks:spin", workload="cpu"), "leave WORKLOAD out"),
    (dict(workload="task"), "give TASK=package.module:function"),
    (dict(args="[1]"), "ARGS apply only to your own task"),
    (dict(task="a:b", args="[1,"), "ARGS must be a JSON list"),
    (dict(task="a:b", args='{"n": 1}'), "ARGS must be a JSON list"),
    (dict(task="a:b", kwargs="[1]"), "KWARGS must be a JSON object"),
    (dict(workload="cpu", cpu_fraction=0.5), "CPU fraction applies to the mixed workload only"),
    (dict(workload="mixed", cpu_fraction=1.5), "CPU fraction must be a number from 0 to 1"),
])
def test_bad_settings_are_one_line_each(settings, message):
    with pytest.raises(SpecError, match=message) as err:
        build_spec(**settings)
    assert "\n" not in str(err.value)


def test_the_check_describes_the_task_with_its_source_hash():
    described = check_own_task(spec(task="user_tasks:spin", args="[3]", kwargs='{"label": "a"}'), sys.executable)
    source = HERE / "user_tasks.py"
    assert described["source_file"] == str(source) and described["source_line"] > 1
    assert described["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert described["celery_task"] is False
    # A Celery task object (bind=True): its body runs, with the task as self.
    described = check_own_task(spec(task="user_tasks:bound", args="[3]"), sys.executable)
    assert described["celery_task"] is True and described["qualname"] == "bound"


@pytest.mark.parametrize("settings, message", [
    (dict(task="user_tasks:nope"), "user_tasks has no 'nope'"),
    (dict(task="no_such_module:f"), "cannot import no_such_module"),
    (dict(task="fails_on_import:f"), "RuntimeError: no database configured"),
    (dict(task="user_tasks:NOT_CALLABLE"), "is a int, not a function or a Celery task"),
    (dict(task="user_tasks:spin", args="[1, 2]"), "does not accept ARGS=\\[1, 2\\]"),
    (dict(task="user_tasks:spin", args="[1]", kwargs='{"colour": 1}'), "unexpected keyword argument 'colour'"),
    (dict(task="user_tasks:bound", args="[]"), "missing a required argument: 'n'"),
    (dict(task="user_tasks:spin", task_path="/no/such/dir"), "TASK_PATH /no/such/dir is not a directory"),
])
def test_a_task_that_cannot_run_is_refused_in_one_line(settings, message):
    with pytest.raises(SpecError, match=message) as err:
        check_own_task(build_spec(**{"task_path": str(HERE), **settings}), sys.executable)
    assert "\n" not in str(err.value)


def test_the_worker_loads_the_function_a_celery_task_wraps():
    function = own.load("user_tasks:bound", str(HERE))
    assert function(10) == own.load("user_tasks:spin", str(HERE))(10)
