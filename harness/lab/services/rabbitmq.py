"""BROKER=rabbitmq: a private RabbitMQ node started for a run (or a sweep), on 127.0.0.1 only, with a user and
password of its own and no guest, stopped and removed when the run ends.

RabbitMQ runs on Erlang, whose nodes find each other through epmd, a small name server that Erlang starts as a
daemon of its own, outside the process that started it, on port 4369 of every interface. The lab starts epmd itself
instead, in the foreground, on a free port on 127.0.0.1 (ERL_EPMD_PORT, ERL_EPMD_ADDRESS), so that it is stopped
and watched like the node; the node is told not to start one (-start_epmd false). Everything the node writes
(its database, logs, pid file, the Erlang cookie in HOME) lives in a scratch folder (mode 0700); its password is
in its config file there (0600), never on a command line; the folder is removed on stop, and the watchdog kills
the node, epmd and the folder if the harness dies. No plugin is enabled: the management plugin stays off unless
asked for (RabbitBroker(management=True)), and then listens on 127.0.0.1 only.

AMQP_URL= uses the user's own RabbitMQ instead (GivenRabbit), in a vhost the lab makes and deletes.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psutil

from harness.errors import BrokerError
from harness.lab.services.base import ServerProcess, ServerService, free_port, new_password, redact

HOW_TO_GET = ("install RabbitMQ's server (apt-get install rabbitmq-server, or brew install rabbitmq), from which the "
              "lab starts a private node, or point AMQP_URL at one (e.g. RABBITMQ_PASSWORD=<a password> docker "
              "compose up -d rabbitmq, then AMQP_URL=amqp://lab:<it>@127.0.0.1:5672/)")
# The node's start script, where the packages put it: Debian's (the one under /usr/lib, not /usr/sbin's wrapper,
# which switches to the rabbitmq user), then Homebrew's.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/opt/homebrew/opt/rabbitmq/sbin/rabbitmq-server",
                  "/usr/local/opt/rabbitmq/sbin/rabbitmq-server")
EPMD_PLACES = ("/usr/lib/erlang/erts-*/bin/epmd", "/usr/lib/erlang/bin/epmd", "/opt/homebrew/opt/erlang/bin/epmd",
               "/usr/local/opt/erlang/bin/epmd")
USER = "lab"


def _first(places: tuple[str, ...], name: str) -> str | None:
    for pattern in places:
        for path in sorted(glob.glob(pattern), reverse=True):
            if os.access(path, os.X_OK):
                return path
    return shutil.which(name)


def find_rabbitmq() -> tuple[str, str] | None:
    """The node's start script and epmd; None where either is missing."""
    server, epmd = _first(SERVER_SCRIPTS, "rabbitmq-server"), _first(EPMD_PLACES, "epmd")
    return (server, epmd) if server and epmd else None


def check_available() -> None:
    """Before anything starts: AMQP_URL's broker answers and takes its user, or a RabbitMQ to start; one line
    otherwise, saying how to get one."""
    if os.environ.get("AMQP_URL"):
        GivenRabbit(os.environ["AMQP_URL"]).check()
        return
    if find_rabbitmq() is None:
        raise BrokerError(f"BROKER=rabbitmq: no RabbitMQ server found (rabbitmq-server and Erlang's epmd): "
                          f"{HOW_TO_GET}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class RabbitBroker(ServerService):
    """A private RabbitMQ node: `with RabbitBroker() as broker:` then broker.url (amqp://lab:...@127.0.0.1:port//)."""

    name = "RabbitMQ"
    error = BrokerError
    start_timeout_s = 60.0  # a node's start is seconds (Erlang, its database); measured in BENCHMARKS.md
    private = True

    def __init__(self, management: bool = False) -> None:
        self.management = management  # the management plugin (its HTTP API), on loopback only, when asked for
        self.api_url: str | None = None
        self.url: str | None = None
        self.port: int | None = None
        self._server: ServerProcess | None = None
        self._epmd: ServerProcess | None = None
        self._password = ""
        self.version: str | None = None  # RabbitMQ's, as the node says when a connection opens
        self._beam: int | None = None  # the Erlang VM's pid (the start script's child)

    def __enter__(self) -> RabbitBroker:
        super().__enter__()
        return self

    @property
    def redacted_url(self) -> str:
        return redact(self.url or "")

    def start(self) -> None:
        found = find_rabbitmq()
        if found is None:
            raise BrokerError(f"no RabbitMQ server found (rabbitmq-server and Erlang's epmd): {HOW_TO_GET}")
        script, epmd = found
        self._password, self.port = new_password(), free_port()
        epmd_port, dist_port = free_port(), free_port()
        self._epmd = ServerProcess("epmd")
        self._epmd.start([epmd, "-port", str(epmd_port), "-address", "127.0.0.1"],
                         env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"})
        for _ in range(100):  # epmd answers within milliseconds; the node must find it there
            if _port_open(epmd_port) or self._epmd.exited() is not None:
                break
            time.sleep(0.02)
        if not _port_open(epmd_port):
            raise BrokerError(f"epmd did not start: {self._epmd.exited() or 'no answer'}")
        self._server = ServerProcess("rabbitmq")
        folder = self._server.folder
        for sub in ("mnesia", "log"):
            (folder / sub).mkdir(mode=0o700)
        api_port = free_port() if self.management else None
        self._server.private_file("rabbitmq.conf", "\n".join([
            f"listeners.tcp.1 = 127.0.0.1:{self.port}",
            f"default_user = {USER}",
            f"default_pass = {self._password}",
            "default_vhost = /",
            "log.console = true", "log.console.level = warning", "log.file = false",
            *(["management.tcp.ip = 127.0.0.1", f"management.tcp.port = {api_port}"] if api_port else []),
            "", ]))
        self._server.private_file("enabled_plugins", "[rabbitmq_management].\n" if api_port else "[].\n")
        if api_port:
            self.api_url = f"http://127.0.0.1:{api_port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(folder),  # the Erlang cookie goes there
            "RABBITMQ_NODENAME": f"gillab{secrets.token_hex(4)}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"), "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(epmd_port),
            # Erlang distribution on loopback only, and no epmd of the node's own (the lab's is running).
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
        }
        self._server.start([script], env=env)
        self.url = f"amqp://{USER}:{self._password}@127.0.0.1:{self.port}//"

    def ready(self) -> bool:
        import amqp

        assert self.port is not None
        if not _port_open(self.port):
            return False
        if self.api_url and not _port_open(int(self.api_url.rsplit(":", 1)[1])):
            return False  # the management plugin starts after the AMQP listener
        try:
            connection = amqp.Connection(host=f"127.0.0.1:{self.port}", userid=USER, password=self._password,
                                         connect_timeout=2)
            connection.connect()
            self.version = f"RabbitMQ {connection.server_properties.get('version', '?')}"
            connection.close()
            assert self.pid is not None
            self._beam = next((p.pid for p in psutil.Process(self.pid).children(recursive=True)
                               if p.name() == "beam.smp"), self.pid)
            return True
        except Exception:  # noqa: BLE001 - not answering yet, however it says so
            return False

    def trouble(self) -> str | None:
        """Why the node cannot carry tasks now, for a run waiting on them (harness.lab.collect): gone, or stopped
        (SIGSTOP, a debugger: it keeps its sockets open and answers nothing); None while it runs."""
        gone = self.exited()
        if gone is not None:
            return f"the RabbitMQ node exited ({gone})"
        if self._beam is None:
            return None
        try:
            status = psutil.Process(self._beam).status()
        except psutil.NoSuchProcess:
            return "the RabbitMQ node's Erlang VM is gone"
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP):
            return "the RabbitMQ node is stopped (SIGSTOP or a debugger) and answers nothing"
        if status == psutil.STATUS_ZOMBIE:
            return "the RabbitMQ node's Erlang VM is gone"
        return None

    def stop(self) -> None:
        super().stop()  # the node: SIGTERM (Erlang stops in order), SIGKILL of its tree after the grace
        if self._epmd is not None:
            self._epmd.stop(grace_s=2.0, sig=signal.SIGTERM)
            self._epmd = None


class GivenRabbit:
    """AMQP_URL: the user's own RabbitMQ. The lab works only in a vhost of its own, made for the run through the
    broker's management API (RABBITMQ_API_URL, by default http://<the AMQP host>:15672, with the AMQP_URL's user,
    who must be an administrator) and deleted with everything in it when the run ends. A vhost left by a harness
    that was killed is named after its host and pid (gil-lab-<host>-<pid>-<token>): the next run on that host
    deletes those whose process is gone."""

    name = "RabbitMQ (AMQP_URL)"
    private = False
    pid: int | None = None
    VHOST_PREFIX = "gil-lab-"

    def __init__(self, url: str, api_url: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "pyamqp") or not parts.hostname:
            raise BrokerError(f"AMQP_URL {redact(url)!r}: the lab takes amqp://user:password@host:port/ (a RabbitMQ "
                              "user allowed to create vhosts); unset it to use a private RabbitMQ")
        self._given = url
        self._user, self._password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        self._netloc = parts.netloc
        self.api_url = (api_url or os.environ.get("RABBITMQ_API_URL") or f"http://{parts.hostname}:15672").rstrip("/")
        self.vhost = f"{self.VHOST_PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.url: str | None = None
        self.version: str | None = None

    @property
    def redacted_url(self) -> str:
        return redact(self.url or self._given)

    def _api(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        try:
            answer = requests.request(method, f"{self.api_url}/api/{path}", json=body, timeout=10,
                                      auth=(self._user, self._password))
        except requests.RequestException as exc:
            raise BrokerError(f"RabbitMQ's management API at {self.api_url} is not reachable "
                              f"({type(exc).__name__}); the lab makes its vhost there: enable the management "
                              "plugin, or give RABBITMQ_API_URL") from None
        if answer.status_code in (401, 403):
            raise BrokerError(f"AMQP_URL {redact(self._given)}: RabbitMQ refused user {self._user!r} at "
                              f"{self.api_url} (HTTP {answer.status_code}); the lab needs a user that may create "
                              "vhosts (tag administrator)")
        if answer.status_code >= 400 and not (method == "DELETE" and answer.status_code == 404):
            raise BrokerError(f"RabbitMQ's management API: {method} {path} answered HTTP {answer.status_code}")
        return answer.json() if answer.content and answer.headers.get("content-type", "").startswith(
            "application/json") else None

    def check(self) -> None:
        """Before anything starts: the API answers and takes the user (nothing is made)."""
        overview = self._api("GET", "overview") or {}
        self.version = f"RabbitMQ {overview.get('rabbitmq_version', '?')}"

    def __enter__(self) -> GivenRabbit:
        self.check()
        self._forget_orphans()
        self._api("PUT", f"vhosts/{quote(self.vhost, safe='')}", {"description": "gil-lab run, deleted at its end"})
        try:
            self._api("PUT", f"permissions/{quote(self.vhost, safe='')}/{quote(self._user, safe='')}",
                      {"configure": ".*", "write": ".*", "read": ".*"})
            self.url = urlunsplit(("amqp", self._netloc, "/" + quote(self.vhost, safe=""), "", ""))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._api("DELETE", f"vhosts/{quote(self.vhost, safe='')}")
        except BrokerError:
            pass  # the broker is gone: there is nothing to delete on it from here

    def _forget_orphans(self) -> None:
        """Vhosts of this host's runs whose harness is gone (killed before it could delete them)."""
        mine = f"{self.VHOST_PREFIX}{socket.gethostname()}-"
        for vhost in self._api("GET", "vhosts") or []:
            name = str(vhost.get("name", ""))
            pid = name[len(mine):].split("-")[0] if name.startswith(mine) else ""
            if pid.isdigit() and not psutil.pid_exists(int(pid)):
                self._api("DELETE", f"vhosts/{quote(name, safe='')}")

    def trouble(self) -> str | None:
        return None  # not the lab's process to watch: a broker that stops answering fails the sends in one line


TaskBroker = RabbitBroker | GivenRabbit


def rabbit_broker() -> TaskBroker:
    """BROKER=rabbitmq's broker for a run or a sweep: AMQP_URL's (in a vhost of the lab's), or a private node."""
    given = os.environ.get("AMQP_URL")
    return GivenRabbit(given) if given else RabbitBroker()
