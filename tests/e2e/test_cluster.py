"""Several server5, one room, through a real NATS cluster (issue 12).

Every test starts real nats-server nodes on loopback (free ports, routed
to each other, waited for on /routez), server5 processes joined to them
with --nats, and chat5 clients; it waits until the room's subscriptions
are known on every node (/connz, /routez) before the first line.

"Exactly" is checked after a barrier: every client sends a marker and
waits for everybody else's, so an echo or a duplicate of an earlier line
would have arrived by then.

Missing nats-server, or a server5 built without NATS support, fails these
tests: make check installs both.  Failover times are printed as FIGURES
lines (pytest -s)."""

import json
import re
import signal
import socket
import time

import pytest

from conftest import CHAT5, SERVER5, TIMEOUT, connect, free_port, need_tool
from relay_helpers import closing, ctl_obj, loop, wire  # noqa: F401 (closing is a fixture)
from nats_helpers import (RawNats, assert_exactly, barrier, by_sender, chat5, figures,
                          lines_of, nats_server, received, server5, start_cluster, start_node,
                          wait_line, wait_received, wait_room)

SLOW = max(TIMEOUT * 3, 30)	# 5,000 lines, or a failover, on a busy machine


@pytest.fixture(autouse=True)
def _nats_installed():
    nats_server()


def sent(*clients, n=3, what="line"):
    """Each client sends n lines; returns {name: [message...]}."""
    out = {}
    for i in range(n):
        for c in clients:
            msg = "%s %s %d" % (c.name, what, i)
            c.send(msg)
            out.setdefault(c.name, []).append(msg)
    return out


def expected_for(client, lines, group=(), tag=None):
    """What client must print: every other sender's lines, plus the
    barrier's tag from every other member of group."""
    exp = {name: list(msgs) for name, msgs in lines.items() if name != client.name}
    for o in group:
        if o is not client and tag:
            exp.setdefault(o.name, []).append(tag)
    return exp


def two_servers(procs, nodes):
    a = server5(procs, [nodes[0]])
    b = server5(procs, [nodes[1]])
    wait_line(a, r"NATS: connected to %s" % nodes[0].url)
    wait_line(b, r"NATS: connected to %s" % nodes[1].url)
    return a, b


# ---------------------------------------------------------------------------
# Two server5 on two nodes
# ---------------------------------------------------------------------------


def test_two_servers_one_room_everyone_gets_every_other_line_once(procs):
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    a1, a2 = chat5(procs, "a1", a), chat5(procs, "a2", a)
    b1, b2 = chat5(procs, "b1", b), chat5(procs, "b2", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    clients = [a1, a2, b1, b2]

    lines = sent(*clients)
    for c in clients:
        wait_received(c, expected_for(c, lines))
    barrier(clients, "end")
    for c in clients:
        assert_exactly(c, expected_for(c, lines, clients, "end"))
    for s in (a, b):
        assert not [l for l in lines_of(s) if "NATS: skipped" in l or "not published" in l]


def test_origin_in_the_subject_keeps_a_line_from_coming_back(procs):
    """Beyond no-echo: a message whose subject names a server5's origin is
    never delivered by that server5; the others deliver it.  What is not
    one chat object is skipped with a log line, not relayed."""
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    a1, b1 = chat5(procs, "a1", a), chat5(procs, "b1", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    origins = {c["name"].split()[1] for n in nodes for c in n.server5_conns()}
    (origin_a,) = {c["name"].split()[1] for c in nodes[0].server5_conns()}
    assert len(origins) == 2

    pub = RawNats(nodes[1])
    pub.publish("chat.room.main.%s" % origin_a, b'{"seq": 0, "user": "x", "message": "as if from a"}\n')
    pub.publish("chat.room.main.bot", b'{"seq": 0, "user": "bot", "message": "from a bot"}\n')
    pub.publish("chat.room.main.bot", b'not json\n')
    pub.publish("chat.room.main.bot", b'{"operation": "subscribe", "client": "127.0.0.1:1"}\n')
    pub.publish("chat.room.main.bot", b'{"seq": 1, "user": "bot", "message": "one"}'
                b'{"seq": 2, "user": "bot", "message": "two"}\n')
    pub.publish("chat.room.other.bot", b'{"seq": 0, "user": "bot", "message": "another room"}\n')
    pub.publish("chat.room.main.bot", b'{"seq": 3, "user": "bot", "message": "last"}\n')
    pub.flush()
    pub.close()
    for c in (a1, b1):
        wait_received(c, {"bot": ["from a bot", "last"]})
    barrier([a1, b1], "end")
    assert_exactly(a1, {"bot": ["from a bot", "last"], "b1": ["end"]})
    assert_exactly(b1, {"x": ["as if from a"], "bot": ["from a bot", "last"], "a1": ["end"]})
    for s in (a, b):
        wait_line(s, r"NATS: skipped a message from another server: not one JSON object")


def test_5000_piped_lines_reach_the_other_servers_clients_complete_and_in_order(procs, tmp_path):
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    a1 = chat5(procs, "a1", a)
    b1, b2 = chat5(procs, "b1", b), chat5(procs, "b2", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})

    n = 5000
    expected = ["piper: line %04d of a piped file" % i for i in range(n)]
    path = tmp_path / "lines.txt"
    path.write_text("".join(l.split(": ", 1)[1] + "\n" for l in expected))
    start = time.monotonic()
    with open(path, "rb") as f:
        piper = procs.start(chat5_argv("piper", a), stdin=f)
    for c in (b1, b2, a1):
        got = c.stdout_lines(n, timeout=SLOW)
        assert got == expected, "%s: %d lines, first difference at %r" % (
            c.name, len(got), next(((i, g, e) for i, (g, e) in enumerate(zip(got, expected)) if g != e),
                                   "(length)"))
    elapsed = time.monotonic() - start
    assert piper.wait_exit(SLOW) == 0
    barrier([a1, b1, b2], "end")
    for c in (a1, b1, b2):
        assert lines_of(c, "out")[:n] == expected
        assert sorted(received(c)[n:]) == sorted((o.name, "end") for o in (a1, b1, b2) if o is not c)
    assert not [l for l in lines_of(b) if "dropped" in l]
    figures("cluster-5000-lines", lines=n, seconds=elapsed, lines_per_s="%.0f" % (n / elapsed))


def chat5_argv(name, *servers):
    return CHAT5 + [name, "0", ",".join("127.0.0.1:%d" % s.port for s in servers)]


# ---------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------


def test_nats_node_killed_server5_reconnects_to_the_other_and_lines_cross_again(procs):
    nodes = start_cluster(procs, 2)
    a = server5(procs, [nodes[0]])
    b = server5(procs, [nodes[1], nodes[0]])	# both URLs, node 1 first
    wait_line(b, r"NATS: connected to %s" % nodes[1].url)
    a1 = chat5(procs, "a1", a)
    b1, b2 = chat5(procs, "b1", b), chat5(procs, "b2", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    clients = [a1, b1, b2]
    before = sent(*clients, n=2, what="before")
    for c in clients:
        wait_received(c, expected_for(c, before))

    t0 = time.monotonic()
    nodes[1].kill()
    wait_line(b, r"NATS: lost %s; reconnecting" % nodes[1].url, SLOW)
    t_lost = time.monotonic() - t0
    # B's own clients chat on whatever NATS does; this line is also held
    # in the reconnect buffer (B knows it is disconnected) for a1.
    b1.send("during the outage")
    wait_received(b2, {"b1": before["b1"] + ["during the outage"]})
    wait_line(b, r"NATS: reconnected to %s" % nodes[0].url, SLOW)
    t_reconnected = time.monotonic() - t0
    wait_room(nodes, {nodes[0]: 2}, timeout=SLOW)
    t_known = time.monotonic() - t0
    a1.send("after")
    wait_received(b1, {"a1": before["a1"] + ["after"]}, SLOW)
    t_cross = time.monotonic() - t0
    wait_received(a1, {"b1": before["b1"] + ["during the outage"]}, SLOW)

    after = sent(*clients, n=2, what="later")
    for c in clients:
        wait_received(c, expected_for(c, after))
    barrier(clients, "end")
    lines = {c.name: before[c.name] + after[c.name] for c in clients}
    lines["b1"].insert(2, "during the outage")
    lines["a1"].insert(2, "after")
    for c in clients:
        assert_exactly(c, expected_for(c, lines, clients, "end"))
    assert a.alive() and b.alive()
    figures("cluster-nats-node-killed", lost_seen_s=t_lost, reconnected_s=t_reconnected,
            room_known_s=t_known, first_line_across_s=t_cross)


def test_server5_killed_its_chat5_fails_over_to_the_other_and_keeps_chatting(procs):
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    alice = chat5(procs, "alice", a, b)	# host:port1,host:port2
    bob, carol = chat5(procs, "bob", b), chat5(procs, "carol", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    clients = [alice, bob, carol]
    before = sent(*clients, n=2, what="before")
    for c in clients:
        wait_received(c, expected_for(c, before))

    t0 = time.monotonic()
    a.kill()
    wait_line(alice, r"lost connection to server 127\.0\.0\.1:%d" % a.port, SLOW)
    t_lost = time.monotonic() - t0
    # Typed while it fails over: queued, sent to b once subscribed there.
    alice.send("typed during the failover")
    # bob and carol, on the other server, lose nothing meanwhile.
    bob.send("bob while a is down")
    wait_received(carol, {"bob": before["bob"] + ["bob while a is down"]})
    wait_line(alice, r"alice subscribed again to 127\.0\.0\.1:%d" % b.port, SLOW)
    t_subscribed = time.monotonic() - t0
    wait_line(b, r"(?<!un)subscribed 127\.0\.0\.1:%d\b" % alice.port)
    for c in (bob, carol):
        wait_received(c, {"alice": before["alice"] + ["typed during the failover"]}, SLOW)
    t_first = time.monotonic() - t0

    after = sent(*clients, n=2, what="after")
    for c in clients:
        wait_received(c, expected_for(c, after))
    barrier(clients, "end")
    lines = {c.name: before[c.name] + after[c.name] for c in clients}
    lines["alice"].insert(2, "typed during the failover")
    lines["bob"].insert(2, "bob while a is down")
    for c in (bob, carol):
        assert_exactly(c, expected_for(c, lines, clients, "end"))
    # alice may have missed what bob said while it had no server.
    got = by_sender(alice)
    assert got["carol"] == lines["carol"] + ["end"]
    assert [m for m in got["bob"] if m != "bob while a is down"] == \
        [m for m in lines["bob"] if m != "bob while a is down"] + ["end"]
    assert "alice" not in got
    figures("cluster-server5-killed", chat5_saw_loss_s=t_lost, chat5_subscribed_elsewhere_s=t_subscribed,
            first_line_after_s=t_first)


def test_server5_starts_before_any_nats_node_and_joins_when_one_comes(procs):
    """RetryOnFailedConnect: no node up yet is not an error; local clients
    chat meanwhile, and the server joins the room when the node comes."""
    port = free_port()
    url = "nats://127.0.0.1:%d" % port
    a = server5(procs, urls=[url])
    wait_line(a, r"NATS: no server of '%s' answers yet" % url)
    a1, a2 = chat5(procs, "a1", a), chat5(procs, "a2", a)
    a1.send("while alone")
    wait_received(a2, {"a1": ["while alone"]})

    node = start_node(procs, port)
    wait_line(a, r"NATS: connected to %s" % url, SLOW)
    b = server5(procs, [node])
    b1 = chat5(procs, "b1", b)
    wait_room([node], {node: 2})
    a1.send("hello b")
    wait_received(b1, {"a1": ["hello b"]})
    b1.send("hello a")
    for c in (a1, a2):
        wait_received(c, {"b1": ["hello a"]})
    barrier([a1, a2, b1], "end")
    lines = {"a1": ["while alone", "hello b"], "b1": ["hello a"]}
    assert_exactly(a2, expected_for(a2, lines, [a1, a2, b1], "end"))
    lines["a1"].remove("while alone")	# b1 was not there yet
    assert_exactly(b1, expected_for(b1, lines, [a1, a2, b1], "end"))


def server5_argv(args):
    return SERVER5 + list(args) + ["0"]


# ---------------------------------------------------------------------------
# Three of them, and one outside
# ---------------------------------------------------------------------------


def test_three_servers_on_three_nodes_messages_from_all_at_once(procs):
    nodes = start_cluster(procs, 3)
    servers = [server5(procs, [n]) for n in nodes]
    for s, n in zip(servers, nodes):
        wait_line(s, r"NATS: connected to %s" % n.url)
    clients = [chat5(procs, "c%d%s" % (i, x), s) for i, s in enumerate(servers) for x in "ab"]
    wait_room(nodes, {n: 1 for n in nodes})

    lines = sent(*clients, n=40, what="all at once")
    for c in clients:
        wait_received(c, expected_for(c, lines), SLOW)
    barrier(clients, "end", SLOW)
    for c in clients:
        assert_exactly(c, expected_for(c, lines, clients, "end"))


def test_server5_without_nats_is_unaffected(procs):
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    plain = server5(procs, None)
    a1, b1 = chat5(procs, "a1", a), chat5(procs, "b1", b)
    p1, p2 = chat5(procs, "p1", plain), chat5(procs, "p2", plain)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    # Only the two cluster members are NATS clients.
    assert sum(len(n.get("/connz").get("connections") or []) for n in nodes) == 2

    inside, outside = [a1, b1], [p1, p2]
    lines_in = sent(*inside)
    lines_out = sent(*outside)
    for c in inside:
        wait_received(c, expected_for(c, lines_in))
    for c in outside:
        wait_received(c, expected_for(c, lines_out))
    barrier(inside, "end in")
    barrier(outside, "end out")
    for c in inside:
        assert_exactly(c, expected_for(c, lines_in, inside, "end in"))
    for c in outside:
        assert_exactly(c, expected_for(c, lines_out, outside, "end out"))
    assert not [l for l in lines_of(plain) if "NATS" in l]


def test_a_server_that_falls_behind_counts_what_nats_drops_and_delivers_the_rest(procs, closing):
    """A flood from another server while the only local subscriber does not
    read: the fan-out waits, NATS's pending list fills to its limits and
    drops past them, and server5 logs the count.  Everything not dropped
    is delivered in order: delivered + dropped = published."""
    (node,) = start_cluster(procs, 1)
    b = server5(procs, [node], extra=["--stall-timeout", "600", "--queue-limit", "10"])
    lis = closing(socket.socket())
    lis.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lis.bind(("127.0.0.1", 0))
    lis.listen(4)
    lis.settimeout(TIMEOUT)
    ctl = closing(connect(b.port))
    ctl.sendall(wire(ctl_obj(loop(lis.getsockname()[1]))))
    sub = closing(lis.accept()[0])
    wait_room([node], {node: 1})

    n, size = 3000, 30000	# 90 MB: past the 64 MB pending limit
    pub = RawNats(node)
    for i in range(n):
        pub.publish("chat.room.main.flood",
                    wire({"seq": i, "user": "flood", "message": "%06d %s" % (i, "x" * size)}))
    pub.flush()
    pub.close()
    wait_line(b, r"NATS: \d+ message\(s\) from other servers dropped", SLOW)

    def dropped():
        return sum(int(m.group(1)) for m in (re.search(r"NATS: (\d+) message\(s\) from other servers dropped", l)
                                             for l in lines_of(b)) if m)

    seqs, pending = [], b""
    sub.settimeout(0.2)
    deadline = time.monotonic() + SLOW
    while len(seqs) + dropped() < n:
        assert time.monotonic() < deadline, "%d delivered + %d dropped of %d" % (len(seqs), dropped(), n)
        try:
            chunk = sub.recv(1 << 20)
        except socket.timeout:
            continue
        assert chunk, "the server closed the subscriber's connection"
        *done, pending = (pending + chunk).split(b"\n")
        seqs.extend(json.loads(d)["seq"] for d in done)
    assert len(seqs) + dropped() == n
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert 0 < dropped() < n
    figures("cluster-slow-consumer", published=n, delivered=len(seqs), dropped=dropped())


@pytest.mark.parametrize("args, why", [
    (["--nats", ""], "empty URL"),
    (["--nats", "nats://127.0.0.1:1,,nats://127.0.0.1:2"], "empty URL"),
    (["--nats", "nats://127.0.0.1:port"], "bad --nats"),
    (["--nats", "nats://127.0.0.1:1", "--room", "a.b"], "bad --room"),
    (["--nats", "nats://127.0.0.1:1", "--room", "x" * 65], "bad --room"),
])
def test_bad_cluster_arguments_exit_2(procs, args, why):
    p = procs.start(server5_argv(args))
    assert p.wait_exit() == 2
    assert any(why in l for l in lines_of(p)), lines_of(p)


def test_sigterm_with_nats_exits_0_and_closes_the_connection(procs):
    nodes = start_cluster(procs, 2)
    a, b = two_servers(procs, nodes)
    a1, b1 = chat5(procs, "a1", a), chat5(procs, "b1", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1})
    a1.send("hello")
    wait_received(b1, {"a1": ["hello"]})
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    assert a.wait_exit() == 0
    stop_s = time.monotonic() - t0
    assert wait_line(a, r"NATS: connection closed")
    assert not [l for l in lines_of(a) if "NATS: lost" in l]
    wait_room(nodes, {nodes[0]: 0, nodes[1]: 1})
    figures("cluster-sigterm", exit_s=stop_s)


# ---------------------------------------------------------------------------
# Under valgrind (deselected by make check's -m "not valgrind")
# ---------------------------------------------------------------------------


def memcheck(tmp_path, name):
    return ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect,possible",
            "--log-file=%s" % (tmp_path / ("%s.vg" % name))]


def assert_clean(tmp_path, name, proc):
    """Exit 0, no error, no leak, and no thread left (a thread still
    running at exit shows up as a possibly lost stack)."""
    rc = proc.wait_exit(VG_SLOW)
    log = (tmp_path / ("%s.vg" % name)).read_text()
    assert rc == 0, "%s exited %d:\n%s\n%r" % (name, rc, log, lines_of(proc))
    assert not re.search(r"(definitely|indirectly|possibly) lost: [1-9]", log), log
    assert "ERROR SUMMARY" not in log or "ERROR SUMMARY: 0 errors" in log, log


VG_SLOW = max(TIMEOUT, 60)


@pytest.mark.valgrind
def test_valgrind_member_reconnects_and_shuts_down_clean(procs, tmp_path):
    need_tool("valgrind")
    nodes = start_cluster(procs, 2)
    a = procs.start(memcheck(tmp_path, "a") + server5_argv(["--nats", "%s,%s" % (nodes[0].url, nodes[1].url)]))
    a.port = int(wait_line(a, r"listening on port (\d+)", VG_SLOW).group(1))
    wait_line(a, r"NATS: connected to %s" % nodes[0].url)
    b = server5(procs, [nodes[1]])
    a1, b1 = chat5(procs, "a1", a), chat5(procs, "b1", b)
    wait_room(nodes, {nodes[0]: 1, nodes[1]: 1}, timeout=VG_SLOW)
    a1.send("hello b")
    wait_received(b1, {"a1": ["hello b"]}, VG_SLOW)
    b1.send("hello a")
    wait_received(a1, {"b1": ["hello a"]}, VG_SLOW)
    nodes[0].kill()
    wait_line(a, r"NATS: reconnected to %s" % nodes[1].url, VG_SLOW)
    wait_room(nodes, {nodes[1]: 2}, timeout=VG_SLOW)
    a1.send("again")
    wait_received(b1, {"a1": ["hello b", "again"]}, VG_SLOW)
    b1.send("again a")
    wait_received(a1, {"b1": ["hello a", "again a"]}, VG_SLOW)
    a.signal(signal.SIGTERM)
    assert_clean(tmp_path, "a", a)


@pytest.mark.valgrind
def test_valgrind_member_that_never_reached_nats_shuts_down_clean(procs, tmp_path):
    need_tool("valgrind")
    url = "nats://127.0.0.1:%d" % free_port()
    a = procs.start(memcheck(tmp_path, "alone") + server5_argv(["--nats", url]))
    a.port = int(wait_line(a, r"listening on port (\d+)", VG_SLOW).group(1))
    a1, a2 = chat5(procs, "a1", a), chat5(procs, "a2", a)
    a1.send("local")
    wait_received(a2, {"a1": ["local"]}, VG_SLOW)
    a.signal(signal.SIGTERM)
    assert_clean(tmp_path, "alone", a)
