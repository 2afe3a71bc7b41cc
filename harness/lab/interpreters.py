"""The worker's interpreter: the harness's own, or another CPython with a worker environment the lab makes once.

A worker environment holds only what a worker needs (Celery with kombu's Redis transport, and
where they install, gevent, eventlet and gilknocker), in `.lab/envs/<name>/`, made on first use and
reused. The project itself is put on the worker's PYTHONPATH: the worker imports `workloads` and
`harness.model`, which need nothing beyond the standard library.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.errors import SpecError
from harness.project import MIN_PYTHON, MIN_PYTHON_TEXT, PROJECT_ROOT

ENVS = PROJECT_ROOT / ".lab" / "envs"


def project_env(base: dict[str, str] | None = None, also: list[str] | None = None) -> dict[str, str]:
    """An environment for a child Python of the lab (worker, calibration): the project importable, then
    the folders in `also` (the current directory, where a custom pool's module is looked for)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), *(also or []), env.get("PYTHONPATH")]))
    return env
# What every worker needs: kombu's Redis transport needs the extra (it imports `packaging`).
CORE = ["celery[redis]>=5.4"]
# What some pools or probes need, installed where the interpreter has wheels for them: gevent has
# none for free-threaded builds, and a pool whose module is missing is refused before a run starts.
OPTIONAL = {"gevent": "gevent>=23", "eventlet": "eventlet>=0.36", "gilknocker": "gilknocker>=0.4",
            "interpreters_backport": "interpreters-pep-734>=0.5",
            # The db and http workloads' drivers (harness.model.drivers), where they have wheels, added when a run
            # first asks for one (ON_DEMAND): a driver still missing is refused before the run starts, naming what
            # to install (harness.lab.preflight.check_driver).
            "psycopg": "psycopg[binary]>=3.1", "psycopg2": "psycopg2-binary>=2.9", "psycogreen": "psycogreen>=1.0",
            "requests": "requests>=2.31", "httpx": "httpx>=0.27", "pycurl": "pycurl>=7.45",
            "aiohttp": "aiohttp>=3.9", "asyncpg": "asyncpg>=0.29",
            # The asyncio pool's bridge from Celery's synchronous tracer to its loop (gevent brings it where it
            # installs; a free-threaded build may have greenlet without gevent).
            "greenlet": "greenlet>=3"}
# Installed from wheels only: built from source they need a compiler and a library's headers (libpq, libcurl), and
# a failed build costs minutes for nothing.
WHEELS_ONLY = {"psycopg", "psycopg2", "pycurl", "aiohttp", "asyncpg", "greenlet"}
# Installed only for a run that needs them (a DRIVER): every other run on the interpreter does without.
ON_DEMAND = {"psycopg", "psycopg2", "psycogreen", "requests", "httpx", "pycurl", "aiohttp", "asyncpg"}
# Optional packages wanted only on some versions: the backport of PEP 734 on 3.13 (3.14 has it, and on
# 3.12 its low-level module crashed the interpreter on import).
ONLY_ON = {"interpreters_backport": ("3.13",)}
# Never installed on a free-threaded build: greenlet has not declared free-threading support, so importing it turns
# the GIL back on, and Celery imports it wherever it is importable (celery.utils.threads), whatever the pool. There
# the pools that need it (gevent, eventlet, asyncio) are refused before a run instead (measured: with greenlet in a
# 3.13.5t worker's environment, threads ran cpu work at 1.01x with the GIL on in every task).
NOT_FREE_THREADED = {"greenlet"}
# What environments made before a package joined OPTIONAL were given (their stamps do not say).
FIRST_OPTIONAL = ("gevent", "eventlet", "gilknocker")
DESCRIBE = ("import json, platform, sys, sysconfig; print(json.dumps({'version': platform.python_version(), "
            "'implementation': platform.python_implementation(), 'executable': sys.executable, "
            "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')), "
            "'gil_enabled': sys._is_gil_enabled() if hasattr(sys, '_is_gil_enabled') else True}))")
SETUP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Interpreter:
    """The Python a run's worker runs on."""

    python: str           # the executable the worker is started with
    requested: str | None  # what the user named (None: the harness's own interpreter)
    version: str
    implementation: str
    free_threaded: bool   # built with --disable-gil (Py_GIL_DISABLED)
    missing: dict[str, str]  # optional packages that could not be installed there, and why

    @property
    def label(self) -> str:
        return f"{self.implementation} {self.version}{' free-threaded' if self.free_threaded else ''}"

    def to_dict(self) -> dict:
        return asdict(self)


def _version_key(folder: str) -> list[tuple[int, int | str]]:
    """Sorts 3.9.18 < 3.13.0 < 3.13.5t (numbers as numbers)."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in folder.replace("-", ".").split(".")]


def resolve(name: str) -> str:
    """A path for an interpreter named by path or by name (python3.13t): PATH first, then the
    interpreters pyenv and uv install (a pyenv shim runs only the active version, so it is passed over)."""
    if os.sep in name:
        return name
    found = shutil.which(name)
    if found and (f"{os.sep}shims{os.sep}" not in found or name in ("python", "python3")):
        return found
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions",
             Path(os.environ.get("UV_PYTHON_INSTALL_DIR", Path.home() / ".local" / "share" / "uv" / "python"))]
    candidates = sorted((c for root in roots for c in root.glob(f"*/bin/{name}") if os.access(c, os.X_OK)),
                        key=lambda c: _version_key(c.parent.parent.name))
    # A free-threaded install also has a plain python3.13: python3.13 means a GIL build, python3.13t not.
    same_build = [c for c in candidates if c.parent.parent.name.endswith("t") == name.endswith("t")]
    chosen = same_build or candidates
    return str(chosen[-1]) if chosen else (found or name)


def describe(python: str, timeout_s: float = 30.0) -> dict:
    """Version, implementation and build of an interpreter, asked of the interpreter itself."""
    try:
        out = subprocess.run([python, "-c", DESCRIBE], capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise SpecError(f"interpreter {python!r} not found; give the path of a CPython {MIN_PYTHON_TEXT} "
                        "or newer") from None
    except PermissionError:
        raise SpecError(f"interpreter {python!r} is not executable") from None
    except subprocess.TimeoutExpired:
        raise SpecError(f"interpreter {python!r} did not answer within {timeout_s:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(f"interpreter {python!r} does not run ({last}); give a CPython {MIN_PYTHON_TEXT} or newer")
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SpecError(f"interpreter {python!r} is not a Python (it did not answer as one)") from None
    if info["implementation"] != "CPython" or minor_version(info["version"]) < MIN_PYTHON:
        raise SpecError(f"interpreter {python!r} is {info['implementation']} {info['version']}; "
                        f"the lab's workers run on CPython {MIN_PYTHON_TEXT} or newer")
    return info


def minor_version(version: str) -> tuple[int, int]:
    """(3, 13) of "3.13.0"."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _first_found(candidates: list[str], wanted: Callable[[dict], bool]) -> str | None:
    """The first of the named interpreters (as `resolve` finds them) that runs and is `wanted`."""
    for candidate in candidates:
        try:
            if wanted(describe(resolve(candidate))):
                return resolve(candidate)
        except SpecError:
            continue
    return None


def find_free_threaded() -> str | None:
    """A free-threaded interpreter on this machine: LAB_FREETHREADED_PYTHON, else python3.14t or python3.13t
    as `resolve` finds them; None when there is none."""
    named = os.environ.get("LAB_FREETHREADED_PYTHON")
    return _first_found([named] if named else ["python3.14t", "python3.13t"], lambda info: info["free_threaded"])


def find_subinterpreter_python() -> str | None:
    """A GIL build of CPython 3.13 or newer for the interpreters pool: LAB_INTERPRETERS_PYTHON, else the
    lab's own when new enough, else python3.14 or python3.13 as `resolve` finds them; None when there is none."""
    named = os.environ.get("LAB_INTERPRETERS_PYTHON")
    if not named and sys.version_info >= (3, 13) and not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return sys.executable
    return _first_found([named] if named else ["python3.14", "python3.13"],
                        lambda info: minor_version(info["version"]) >= (3, 13) and not info["free_threaded"])


def _env_dir(info: dict) -> Path:
    key = hashlib.sha256(os.path.realpath(info["executable"]).encode()).hexdigest()[:8]
    return ENVS / f"cpython-{info['version']}{'t' if info['free_threaded'] else ''}-{key}"


def _pip(python: Path, *packages: str, wheels_only: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           *(["--only-binary=:all:"] if wheels_only else []), *packages],
                          capture_output=True, text=True, timeout=SETUP_TIMEOUT_S)


def _wanted(info: dict, also: Sequence[str] = ()) -> list[str]:
    """The optional packages this interpreter's environment should try to have: those every run may need, and
    `also` of those installed on demand."""
    major, minor_ = minor_version(info["version"])
    minor = f"{major}.{minor_}"
    return [m for m in OPTIONAL if (m not in ON_DEMAND or m in also) and (m not in ONLY_ON or minor in ONLY_ON[m])
            and not (info.get("free_threaded") and m in NOT_FREE_THREADED)]


def _add_optional(python: Path, modules: list[str]) -> dict[str, str]:
    """Install optional packages; returns those that could not be installed, and why."""
    missing = {}
    for module in modules:
        requirement = OPTIONAL[module]
        done = _pip(python, requirement, wheels_only=module in WHEELS_ONLY)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            errors = [line for line in lines if line.startswith("ERROR:")]
            missing[module] = f"pip install {requirement}: {(errors or lines)[-1][:240]}"
    return missing


def _make_env(info: dict, env: Path, log: Callable[[str], None]) -> dict[str, str]:
    """Create the worker environment; returns the optional packages that could not be installed, and why."""
    log(f"creating a worker environment for CPython {info['version']}"
        f"{' free-threaded' if info['free_threaded'] else ''} in {env} (once; about a minute)")
    made = subprocess.run([info["executable"], "-m", "venv", str(env)], capture_output=True, text=True,
                          timeout=SETUP_TIMEOUT_S)
    python = env / "bin" / "python"
    if made.returncode != 0:
        raise SpecError(f"could not create a virtual environment with {info['executable']}: "
                        f"{(made.stderr.strip().splitlines() or ['no output'])[-1]}")
    core = _pip(python, *CORE)
    if core.returncode != 0:
        raise SpecError(f"could not install Celery for the worker on {info['executable']}: "
                        f"{(core.stderr.strip().splitlines() or ['no output'])[-1]}")
    return _add_optional(python, _wanted(info))


def as_is(requested: str) -> Interpreter:
    """The interpreter named, used as it is: the user's own environment with their packages (APP=). The lab adds
    nothing to it; what the worker needs and it lacks is refused in one line (workloads.app_check)."""
    python = resolve(requested)
    info = describe(python)
    return Interpreter(python, requested, info["version"], info["implementation"], info["free_threaded"], {})


def worker_interpreter(requested: str | None, log: Callable[[str], None] = print,
                       also: Sequence[str] = ()) -> Interpreter:
    """The interpreter a run's worker uses; for another interpreter, its worker environment (made once, and given
    the ON_DEMAND packages in `also` the first time a run needs them)."""
    if requested is None:
        return Interpreter(sys.executable, None, platform.python_version(), platform.python_implementation(),
                           bool(sysconfig.get_config_var("Py_GIL_DISABLED")), {})
    info = describe(resolve(requested))
    env = _env_dir(info)
    stamp = env / ".lab-env.json"
    ENVS.mkdir(parents=True, exist_ok=True)
    with open(ENVS / f".{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once make the environment once
        if not stamp.exists():
            missing = _make_env(info, env, log)
            stamp.write_text(json.dumps({"base": info, "missing": missing, "tried": _wanted(info)}, indent=1))
        made = json.loads(stamp.read_text())
        new = [m for m in _wanted(info, also) if m not in made.get("tried", FIRST_OPTIONAL)]
        if new:  # made before these joined OPTIONAL, or asked for by a run for the first time (ON_DEMAND)
            log(f"adding {', '.join(new)} to the worker environment in {env}")
            made["missing"].update(_add_optional(env / "bin" / "python", new))
            made["tried"] = list(made.get("tried", FIRST_OPTIONAL)) + new
            stamp.write_text(json.dumps(made, indent=1))
    missing = json.loads(stamp.read_text())["missing"]
    return Interpreter(str(env / "bin" / "python"), requested, info["version"], info["implementation"],
                       info["free_threaded"], missing)
