"""Real NATS clusters for the cluster suite (test_cluster.py): nats-server
nodes on loopback with free ports, their monitoring endpoints, a bare NATS
protocol client to publish with, and server5 processes joined to them.

Everything waits on an event with a deadline: a log line, or what a
node's monitoring port reports (/routez, /connz), polled."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import CHAT5, SERVER5, TIMEOUT, free_port

ROOM_SUBJECT = "chat.room.%s.*"	# what a server5 subscribes to (cluster.c)
POLL = 0.02


def nats_server():
    """The nats-server binary.  make check installs it, so one that is
    missing fails the test: it never skips."""
    path = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/sbin")
    if not path:
        pytest.fail("nats-server is not installed (Debian package nats-server; "
                    "scripts/deps.sh test installs it)", pytrace=False)
    return path


def until(cond, timeout, what):
    """Polls cond until it returns something true; fails after timeout.
    An OSError (a monitoring port busy for a moment) counts as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = cond()
        except OSError as e:
            v, last = None, e
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %s)" % last if last else ""))
        time.sleep(POLL)


def lines_of(proc, stream="err"):
    with proc._lock:
        return list(proc.err_lines if stream == "err" else proc.out_lines)


def first_line(proc, pattern, stream="err"):
    rx = re.compile(pattern)
    for line in lines_of(proc, stream):
        m = rx.search(line)
        if m:
            return m
    return None


def wait_line(proc, pattern, timeout=None, stream="err"):
    """The first line matching pattern anywhere in proc's output; fails,
    showing the output, when it does not come (or proc exits first)."""
    timeout = timeout or TIMEOUT
    deadline = time.monotonic() + timeout
    while True:
        m = first_line(proc, pattern, stream)
        if m:
            return m
        if time.monotonic() > deadline or not proc.alive():
            if not proc.alive():
                proc.wait_exit()	# the last lines are in
                m = first_line(proc, pattern, stream)
                if m:
                    return m
            raise AssertionError("%s: no %s line matching %r within %.1fs (%s)\nstdout: %r\nstderr: %r" % (
                proc.argv, stream, pattern, timeout, "running" if proc.alive() else "exited",
                lines_of(proc, "out")[-20:], lines_of(proc)[-40:]))
        time.sleep(POLL)


# ---------------------------------------------------------------------------
# nats-server nodes
# ---------------------------------------------------------------------------


class Node:
    """One nats-server of a test cluster."""

    def __init__(self, proc, index, client, monitor, route):
        self.proc = proc
        self.index = index
        self.client = client
        self.monitor = monitor
        self.route = route
        self.url = "nats://127.0.0.1:%d" % client
        self.id = None

    def __repr__(self):
        return "node%d(%s)" % (self.index, self.url)

    def get(self, path):
        """A monitoring endpoint's JSON."""
        url = "http://127.0.0.1:%d%s" % (self.monitor, path)
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return json.loads(r.read().decode())

    def alive(self):
        return self.proc.alive()

    def kill(self):
        """SIGKILL: a node that crashes, as a machine that loses power."""
        self.proc.kill()

    def _started(self, routes=True):
        """True once it listens for clients (and routes), False if it exited."""
        lines = lines_of(self.proc)
        if any("Server is ready" in l for l in lines) and (
                not routes or any("Listening for route connections" in l for l in lines)):
            return True
        if not self.proc.alive():
            return False
        return None

    def server5_conns(self, room="main"):
        """The server5 connections on this node that subscribe to room."""
        subject = ROOM_SUBJECT % room
        return [c for c in self.get("/connz?subs=1").get("connections") or []
                if (c.get("name") or "").startswith("server5 ")
                and subject in (c.get("subscriptions_list") or [])]

    def knows_room_of(self, other, room="main"):
        """Whether this node's route to other carries other's interest in room."""
        subject = ROOM_SUBJECT % room
        for r in self.get("/routez?subs=1").get("routes") or []:
            if r.get("remote_id") == other.id and subject in (r.get("subscriptions_list") or []):
                return True
        return False


def wait_started(node, routes=True):
    """True once node serves, False if it exited first (a port taken)."""
    state = until(lambda: {True: "up", False: "exited", None: None}[node._started(routes)],
                  TIMEOUT, "%r to start" % node)
    return state == "up"


def _distinct_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return list(ports)


def _node(procs, index, client, monitor, route=None, routes=(), name="chat"):
    argv = [nats_server(), "-a", "127.0.0.1", "-p", str(client), "-m", str(monitor),
            "-n", "%s-node%d" % (name, index)]
    if route:
        argv += ["--cluster_name", name, "-cluster", "nats://127.0.0.1:%d" % route,
                 "-routes", ",".join("nats://127.0.0.1:%d" % r for r in routes)]
    return Node(procs.start(argv, stdin=subprocess.DEVNULL), index, client, monitor, route)


def start_cluster(procs, n, name="chat"):
    """n nodes routed to each other, started on free ports (again on
    others if a port was taken meanwhile); returns them once every node
    reports a route to every other."""
    for _attempt in range(5):
        ports = _distinct_ports(3 * n)
        routes = [ports[3 * i + 2] for i in range(n)]
        nodes = [_node(procs, i, *ports[3 * i:3 * i + 3], routes=routes, name=name)
                 for i in range(n)]
        if all([wait_started(node) for node in nodes]):
            break
        for node in nodes:
            node.kill()
    else:
        pytest.fail("could not start %d nats-server nodes on free ports" % n)
    for node in nodes:
        node.id = node.get("/varz")["server_id"]
    wait_routes(nodes)
    return nodes


def start_node(procs, client):
    """A node of its own (no cluster) on a given client port."""
    for _attempt in range(5):
        node = _node(procs, 0, client, _distinct_ports(1)[0], name="alone")
        if wait_started(node, routes=False):
            node.id = node.get("/varz")["server_id"]
            return node
        if first_line(node.proc, r"127\.0\.0\.1:%d.*address already in use" % client):
            pytest.fail("port %d was taken meanwhile" % client)
    pytest.fail("could not start a nats-server node")


def wait_routes(nodes, timeout=None):
    """Until every live node has exactly one route to every other live node."""
    live = [n for n in nodes if n.alive()]

    def routed():
        for node in live:
            rz = node.get("/routez")
            remote = sorted(r.get("remote_id") for r in rz.get("routes") or [])
            if rz.get("num_routes") != len(live) - 1 or \
                    remote != sorted(o.id for o in live if o is not node):
                return False
        return True

    until(routed, timeout or TIMEOUT, "routes between %r" % live)


def wait_room(nodes, homes, room="main", timeout=None):
    """Until the room's subscriptions are known everywhere: homes maps a
    node to how many server5 are subscribed there, and every other live
    node's route to it must carry that interest."""
    live = [n for n in nodes if n.alive()]

    def known():
        for home, count in homes.items():
            if len(home.server5_conns(room)) != count:
                return False
            if count and not all(o.knows_room_of(home, room) for o in live if o is not home):
                return False
        return True

    until(known, timeout or TIMEOUT, "room %s known on %r (%r)" % (room, live, homes))


# ---------------------------------------------------------------------------
# A bare NATS client, to publish what no server5 would
# ---------------------------------------------------------------------------


class RawNats:
    """The NATS text protocol over a socket: CONNECT, PUB, PING/PONG."""

    def __init__(self, node):
        self.sock = socket.create_connection(("127.0.0.1", node.client), timeout=TIMEOUT)
        self.buf = b""
        assert self._line().startswith(b"INFO ")
        opts = {"verbose": False, "pedantic": False, "name": "test publisher", "lang": "python",
                "version": "0", "protocol": 1, "headers": True, "echo": True}
        self.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
        self.flush()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("NATS closed the test connection: %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def publish(self, subject, payload):
        self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))

    def flush(self):
        """Until the node has handled everything sent before."""
        self.sock.sendall(b"PING\r\n")
        while True:
            line = self._line()
            if line == b"PONG":
                return
            if line.startswith(b"-ERR"):
                raise AssertionError("NATS: %r" % line)
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------
# server5 and chat5 on the cluster
# ---------------------------------------------------------------------------


def server5(procs, nodes=None, room=None, extra=(), urls=None):
    """A server5 joined to nodes (in that order of preference), or to
    urls; with neither, no --nats at all.  Returns once it listens."""
    args = list(extra)
    if nodes is not None:
        urls = [n.url for n in nodes]
    if urls is not None:
        args += ["--nats", ",".join(urls)]
    if room:
        args += ["--room", room]
    p = procs.start(SERVER5 + args + ["0"])
    try:
        p.port = int(wait_line(p, r"listening on port (\d+)").group(1))
    except AssertionError:
        if any("built without NATS support" in l for l in lines_of(p)):
            pytest.fail("server5 was built without NATS support: install libnats-dev "
                        "(make deps) and build again", pytrace=False)
        raise
    return p


def chat5(procs, name, *servers):
    """A chat5 given one server5 or a list of them (host:port1,host:port2);
    returns once the first has registered its subscription."""
    p = procs.start(CHAT5 + [name, "0", ",".join("127.0.0.1:%d" % s.port for s in servers)])
    p.port = int(wait_line(p, r"listening on port (\d+)").group(1))
    wait_line(servers[0], r"(?<!un)subscribed \S*:%d\b" % p.port)
    p.name = name
    return p


def received(client):
    """What client printed, as (user, message) pairs."""
    return [tuple(l.split(": ", 1)) for l in lines_of(client, "out")]


def by_sender(client):
    got = {}
    for user, message in received(client):
        got.setdefault(user, []).append(message)
    return got


def wait_received(client, expected, timeout=None):
    """Until client printed every line of expected ({sender: [message...]})."""
    def done():
        got = by_sender(client)
        return all(len(got.get(s, [])) >= len(m) for s, m in expected.items())

    try:
        until(done, timeout or TIMEOUT, "%s to receive %d line(s)" % (
            client.name, sum(len(m) for m in expected.values())))
    except AssertionError as e:
        raise AssertionError("%s\ngot: %r\nstderr: %r" % (e, received(client)[-30:], lines_of(client)[-20:]))


def barrier(clients, tag, timeout=None):
    """Every client sends the line tag and waits for every other's: after
    it, whatever an earlier line could still cause (a duplicate, an echo)
    has had the same road to travel, so it would be in."""
    for c in clients:
        c.send(tag)
    for c in clients:
        others = [o.name for o in clients if o is not c]
        until(lambda c=c: all(tag in by_sender(c).get(o, []) for o in others),
              timeout or TIMEOUT, "%s to see %r from %r: got %r" % (c.name, tag, others, received(c)[-20:]))


def assert_exactly(client, expected):
    """client printed exactly expected ({sender: [message...]}): each
    sender's lines once, in order, and nothing else."""
    got = by_sender(client)
    assert got == expected, "%s printed %r, expected %r" % (client.name, got, expected)


def figures(test, **kv):
    """One line of measured figures (pytest -s shows it)."""
    print("\nFIGURES %s | %s" % (test, " | ".join("%s: %s" % kv_ for kv_ in
                                                    ((k, "%.3f" % v if isinstance(v, float) else v)
                                                     for k, v in kv.items()))), flush=True)
