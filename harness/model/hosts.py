"""HOSTS: a run's workers on several hosts, each reached through the lab's agent of that name (`gil-lab agent`).

The rules a run on several hosts follows, in one place: what an agent may be called, how HOSTS is written, which
worker goes to which host, and what cannot run there (harness.model.spec applies them).
"""
from __future__ import annotations

import re

from harness.errors import SpecError

AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
# More hosts than this in one run is a fleet test, not a lab run (and every host is asked in turn at start and stop).
MAX_HOSTS = 16
# The harness's lease on a run: renewed every second, expiring after LEASE_TTL_S; an agent that has not seen it for
# LEASE_LAPSE_S more stops the run's workers (the harness died). So a dead harness's workers stop within about
# LEASE_TTL_S + LEASE_LAPSE_S, plus the agent's look (every half second) and the stop itself.
LEASE_TTL_S = 5
LEASE_LAPSE_S = 5.0


def check_name(name: str) -> str:
    """An agent's name as HOSTS and `gil-lab agent --name` take it, or a one-line error."""
    if not AGENT_NAME.match(name or ""):
        raise SpecError(f"agent name {name!r}: use 1-31 lower-case letters, digits or '-', starting with a letter "
                        "or digit")
    return name


def parse_hosts(what: str, raw: object) -> str:
    """HOSTS=a,b: agents' names, comma-separated, each once."""
    names = [n.strip() for n in str(raw).split(",")]
    if not names or any(not n for n in names):
        raise SpecError(f"{what} {raw!r}: give agents' names separated by commas, e.g. HOSTS=a,b")
    for name in names:
        check_name(name)
    if len(set(names)) < len(names):
        raise SpecError(f"{what} {raw!r} names a host twice: give WORKERS_PER_HOST for more workers on one host")
    if len(names) > MAX_HOSTS:
        raise SpecError(f"{what} names {len(names)} hosts; at most {MAX_HOSTS} take part in one run")
    return ",".join(names)


def names(hosts: str | None) -> list[str]:
    return hosts.split(",") if hosts else []


def host_of(hosts: str, workers_per_host: int, index: int) -> str:
    """Which host runs worker `index` (1-based): the first WORKERS_PER_HOST on the first host, and so on."""
    return names(hosts)[(index - 1) // workers_per_host]


# Why a workload cannot run on other hosts: the services its tasks call listen on the harness's 127.0.0.1 only.
NOT_ON_HOSTS = ("its tasks call a service of the run's (the echo server, PostgreSQL or the HTTP service), which "
                "listens on the harness's 127.0.0.1 only")


def machine_of(host: str, described: dict) -> str:
    """Which machine a host is: its boot id (network namespaces and containers of one machine share it), else its
    hostname, else the host itself. The one rule for "the same machine"."""
    return str(described.get("boot_id") or described.get("hostname") or host)


def fleet_cores(described: dict[str, dict]) -> tuple[int, int | None]:
    """The cores a run on these hosts could use (logical, physical), each machine counted once: hosts that are one
    machine (network namespaces, containers: the same boot id) share its cores, and its ideal may not count them
    twice."""
    machines: dict[str, tuple[int, int | None]] = {}
    for host, d in described.items():
        machine = machine_of(host, d)
        cores, physical = int(d.get("cores") or 1), d.get("cpu_count_physical")
        seen = machines.get(machine)
        machines[machine] = (max(cores, seen[0]), physical) if seen else (cores, physical)
    logical = sum(c for c, _ in machines.values())
    physical = [p for _, p in machines.values()]
    return logical, (sum(int(p) for p in physical) if physical and all(physical) else None)
