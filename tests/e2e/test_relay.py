"""End-to-end tests of the relay: server5 and chat5 (issue 3).

Every test starts the real programs on port 0 (conftest.py) and waits on
events: a line on stderr or stdout, bytes arriving on a test socket, a
connection being accepted or closed.  Nothing sleeps for a fixed time; the
only sleeps are the short pauses of polling loops that have a deadline.

Tests that name an address other than loopback (10.1.2.3, 1.2.3.4) run the
server inside a network namespace of its own, where those addresses are
put on the loopback interface: a server that tried to reach them would be
seen connecting to a trap socket there, and no packet can leave the
machine.  Those tests are skipped where namespaces cannot be made.
"""

import ctypes
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import CHAT5, SERVER5, TIMEOUT, connect, free_port, need_tool
from relay_helpers import (  # noqa: F401 (closing is a fixture)
    _lines, chat_obj, closing, count_lines, ctl_obj, dump_proc, evicted_rx, find_line, loop,
    send_quietly, subscribed_rx, unsubscribed_rx, wait_count, wait_eof, wait_line, wait_until, wire,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def pystyle(obj):
    """An object as a Python client of the assignment sends it: no newline."""
    return json.dumps(obj).encode("utf-8")


def complete_objects(data):
    """The complete JSON objects at the start of data (a partial one at the
    end is left out)."""
    text = data.decode("utf-8", "replace")
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except ValueError:
            return out
        out.append(obj)


class SockReader:
    """Reads a connected socket in a thread, recording bytes and EOF."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        self.sock.settimeout(None)
        while True:
            try:
                b = self.sock.recv(65536)
            except OSError:
                b = b""
            with self._lock:
                if not b:
                    self.eof = True
                    return
                self.buf.extend(b)

    def data(self):
        with self._lock:
            return bytes(self.buf)

    def objects(self):
        return complete_objects(self.data())

    def wait_objects(self, n, timeout=None):
        wait_until(lambda: len(self.objects()) >= n, timeout, "%d objects" % n,
                   lambda: "got %r" % self.data()[:2000])
        return self.objects()


class Trap:
    """A listening socket on a given address that counts connections."""

    def __init__(self, host, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.count = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            c.close()

    def close(self):
        self._stop = True
        self.sock.close()


class StalledPeer:
    """A subscriber's listening socket that accepts the server's connection
    but never reads from it (tiny receive buffer)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self._stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


class MultiSink:
    """Many listening sockets served by one selector thread: each records
    the connections it accepted and the bytes they sent."""

    def __init__(self, n):
        self.sel = selectors.DefaultSelector()
        self.ports = []
        self.bufs = {}
        self.accepted = {}
        self._socks = []
        self._lock = threading.Lock()
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            s.listen(8)
            s.setblocking(False)
            port = s.getsockname()[1]
            self.ports.append(port)
            self.bufs[port] = bytearray()
            self.accepted[port] = 0
            self._socks.append(s)
            self.sel.register(s, selectors.EVENT_READ, ("listen", port))
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            for key, _ in self.sel.select(0.1):
                kind, port = key.data
                if kind == "listen":
                    try:
                        c, _ = key.fileobj.accept()
                    except (BlockingIOError, OSError):
                        continue
                    c.setblocking(False)
                    self._socks.append(c)
                    with self._lock:
                        self.accepted[port] += 1
                    self.sel.register(c, selectors.EVENT_READ, ("conn", port))
                else:
                    try:
                        b = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        b = b""
                    if not b:
                        self.sel.unregister(key.fileobj)
                        continue
                    with self._lock:
                        self.bufs[port].extend(b)

    def data(self, port):
        with self._lock:
            return bytes(self.bufs[port])

    def newlines(self, port):
        with self._lock:
            return self.bufs[port].count(b"\n")

    def close(self):
        self._stop = True
        self._t.join(timeout=TIMEOUT)
        for s in self._socks:
            s.close()


def subscribe_by_hand(srv, listen_port, closing, client=None, conn=None, newline=True):
    """Connects to srv (or uses conn), subscribes naming listen_port, waits
    for the server's log line; returns the subscribing connection."""
    c = conn or closing(connect(srv.port))
    obj = ctl_obj(client or loop(listen_port))
    c.sendall(wire(obj) if newline else pystyle(obj))
    wait_line(srv, subscribed_rx(listen_port))
    return c


def run(argv, timeout=None, stdin=subprocess.DEVNULL):
    return subprocess.run(argv, stdin=stdin, capture_output=True, timeout=timeout or TIMEOUT)


# ---------------------------------------------------------------------------
# One server, three chat5 clients
# ---------------------------------------------------------------------------


def test_three_clients_each_message_reaches_the_other_two_only(procs, closing):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    bob = procs.chat5("bob", srv.port, server=srv)
    carol = procs.chat5("carol", srv.port, server=srv)

    alice.send("hello from alice")
    bob.wait_stdout(r"^alice: hello from alice$")
    carol.wait_stdout(r"^alice: hello from alice$")
    bob.send("bob here, héllo ✓")
    alice.wait_stdout(r"^bob: bob here, héllo ✓$")
    carol.wait_stdout(r"^bob: bob here, héllo ✓$")
    carol.send("carol says \"hi\" \\o/")
    alice.wait_stdout(r'^carol: carol says "hi" \\o/$')
    bob.wait_stdout(r'^carol: carol says "hi" \\o/$')
    alice.send("")  # blank lines are not sent
    alice.send("alice again")
    bob.wait_stdout(r"^alice: alice again$")
    carol.wait_stdout(r"^alice: alice again$")

    # A last message from a connection that never subscribed reaches all
    # three; anything echoed back to a sender would have been queued to it
    # before this one, so it would show up before it.
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "zed", "the end")))
    for p in (alice, bob, carol):
        p.wait_stdout(r"^zed: the end$")

    assert alice.stdout_lines(3) == [
        "bob: bob here, héllo ✓", 'carol: carol says "hi" \\o/', "zed: the end"]
    assert bob.stdout_lines(4) == [
        "alice: hello from alice", 'carol: carol says "hi" \\o/', "alice: alice again", "zed: the end"]
    assert carol.stdout_lines(4) == [
        "alice: hello from alice", "bob: bob here, héllo ✓", "alice: alice again", "zed: the end"]

    for p in (alice, bob, carol):
        p.send("exit")
    for p in (alice, bob, carol):
        assert p.wait_exit() == 0
        wait_line(srv, unsubscribed_rx(p.port))
    # Nobody is subscribed any more: nothing printed anywhere after this.
    assert srv.alive()


def test_printf_pipe_delivers_before_exit(procs):
    """`printf 'hi\\nexit\\n' | chat5 ...` delivers hi to the others."""
    srv = procs.server()
    bob = procs.chat5("bob", srv.port, server=srv)
    r, w = os.pipe()
    os.write(w, b"hi\nexit\n")
    os.close(w)
    try:
        alice = procs.start(CHAT5 + ["alice", "0", loop(srv.port)], stdin=r)
    finally:
        os.close(r)
    assert alice.wait_exit() == 0
    bob.wait_stdout(r"^alice: hi$")
    assert bob.stdout_lines(1) == ["alice: hi"]


# ---------------------------------------------------------------------------
# chat5 against a fake server
# ---------------------------------------------------------------------------


def _fake_server_conn(fs):
    fs.wait(lambda: fs.connections() >= 1, what="chat5 connecting")
    with fs._lock:
        return fs.conns[0][0]


def _wait_bytes(fs, expect):
    fs.wait(lambda: len(fs.data()) >= len(expect), what="%r" % expect)
    assert fs.data() == expect


@pytest.mark.parametrize("how", ["eof", "exit", "sigterm", "sigint"])
def test_chat5_sends_exact_objects_to_fake_server(procs, fake_peer, how):
    fs = fake_peer()
    alice = procs.chat5("alice", fs.port)
    sub = ('{"operation": "subscribe", "client": "127.0.0.1:%d"}\n' % alice.port).encode()
    _wait_bytes(fs, sub)
    assert re.search(r"subscribed to 127\.0\.0\.1:%d as 127\.0\.0\.1:%d\b" % (fs.port, alice.port),
                     "\n".join(alice.err_lines)), alice.err_lines

    alice.send("hi")
    expect = sub + b'{"seq": 0, "user": "alice", "message": "hi"}\n'
    _wait_bytes(fs, expect)
    alice.send("")
    alice.send('second, with "quotes", a \\ and é/ü ✓')
    expect += '{"seq": 1, "user": "alice", "message": "second, with \\"quotes\\", a \\\\ and é/ü ✓"}\n'.encode()
    _wait_bytes(fs, expect)
    alice.send("third")
    expect += b'{"seq": 2, "user": "alice", "message": "third"}\n'
    _wait_bytes(fs, expect)

    if how == "eof":
        alice.close_stdin()
    elif how == "exit":
        alice.send("exit")
    elif how == "sigterm":
        alice.signal(signal.SIGTERM)
    else:
        alice.signal(signal.SIGINT)
    expect += ('{"operation": "unsubscribe", "client": "127.0.0.1:%d"}\n' % alice.port).encode()
    fs.wait(fs.all_closed, what="chat5 closing its server connection")
    assert fs.data() == expect
    assert fs.connections() == 1
    _fake_server_conn(fs).close()
    assert alice.wait_exit() == 0
    assert alice.stdout_lines(0) == []


def test_chat5_prints_messages_written_back_on_server_connection(procs, fake_peer, closing):
    fs = fake_peer()
    alice = procs.chat5("alice", fs.port)
    sub = ('{"operation": "subscribe", "client": "127.0.0.1:%d"}\n' % alice.port).encode()
    _wait_bytes(fs, sub)
    back = _fake_server_conn(fs)

    back.sendall(b'{"seq": 0, "user": "bob", "message": "yo"}\n')
    alice.wait_stdout(r"^bob: yo$")
    # Python-style: no newline, objects back to back, split in odd places.
    back.sendall(b'{"seq": 1, "user": "bob", "message": "no newline"}{"seq": 2, "us')
    alice.wait_stdout(r"^bob: no newline$")
    back.sendall(b'er": "carol", "message": "tab\\there \\u00e9 \\u001b[2J"}')
    alice.wait_stdout(r"^carol: tab\\there é \\x1b\[2J$")
    # And a message on its listening port, as the relay normally sends.
    d = closing(connect(alice.port))
    d.sendall(wire(chat_obj(0, "dave", "direct")))
    alice.wait_stdout(r"^dave: direct$")
    assert alice.stdout_lines(4) == [
        "bob: yo", "bob: no newline", "carol: tab\\there é \\x1b[2J", "dave: direct"]

    alice.close_stdin()
    fs.wait(fs.all_closed, what="chat5 closing")
    back.close()
    assert alice.wait_exit() == 0


# ---------------------------------------------------------------------------
# A fake subscriber
# ---------------------------------------------------------------------------


def test_fake_subscriber_gets_every_relayed_object(procs, fake_peer, closing):
    srv = procs.server()
    fp = fake_peer()
    c = subscribe_by_hand(srv, fp.port, closing)
    alice = procs.chat5("alice", srv.port, server=srv)

    alice.send("hello")
    expected = [chat_obj(0, "alice", "hello")]
    assert fp.wait_objects(1) == expected

    r = closing(connect(srv.port))  # never subscribes
    raw_msgs = [
        chat_obj(7, "raw", "from raw"),
        chat_obj(123456789012, "rawé ✓", 'quotes " backslash \\ slash / tab \t nl \n'),
        chat_obj(8, "raw", ""),
    ]
    r.sendall(b"".join(wire(m) for m in raw_msgs))
    expected += raw_msgs
    assert fp.wait_objects(len(expected)) == expected
    alice.wait_stdout(r"^raw: from raw$")

    # The subscribing connection itself sends a message: everyone but the
    # subscriber it registered gets it.
    c.sendall(wire(chat_obj(0, "hand", "mine")))
    alice.wait_stdout(r"^hand: mine$")
    # Sentinel from the raw connection: an echo of "mine" would come first.
    r.sendall(wire(chat_obj(9, "raw", "sentinel")))
    expected.append(chat_obj(9, "raw", "sentinel"))
    alice.wait_stdout(r"^raw: sentinel$")
    assert fp.wait_objects(len(expected)) == expected
    # Each relayed object is written in the canonical form, one per line, on
    # one connection.
    assert fp.data() == b"".join(wire(m) for m in expected)
    assert fp.connections() == 1
    assert alice.stdout_lines(5) == [
        "raw: from raw",
        "rawé ✓: quotes \" backslash \\ slash / tab \\t nl \\n",
        "raw: ",
        "hand: mine",
        "raw: sentinel",
    ]


def test_resubscribe_same_address_keeps_the_subscription(procs, fake_peer, closing):
    """Subscribing again (a chat5 whose server connection came back) keeps
    the subscription, its queue and its live delivery connection."""
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    c2 = closing(connect(srv.port))
    c2.sendall(wire(ctl_obj(loop(fp.port))))
    wait_line(srv, r"subscribed 127\.0\.0\.1:%d\b.* again" % fp.port)
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "raw", "once")))
    witness = fake_peer()
    subscribe_by_hand(srv, witness.port, closing)
    r.sendall(wire(chat_obj(1, "raw", "twice")))
    witness.wait_objects(1)
    assert fp.wait_objects(2) == [chat_obj(0, "raw", "once"), chat_obj(1, "raw", "twice")]
    assert fp.connections() == 1


# ---------------------------------------------------------------------------
# Unsubscribe
# ---------------------------------------------------------------------------


def test_unsubscribe_stops_deliveries_after_queued_ones(procs, fake_peer, closing):
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    fp2 = fake_peer()
    c2 = subscribe_by_hand(srv, fp2.port, closing)
    witness = fake_peer()
    subscribe_by_hand(srv, witness.port, closing)

    # Twenty big messages, then an unsubscribe for fp, in one write on a
    # connection of the same peer address: the messages are queued to fp
    # before the unsubscribe is read, and must still reach it.
    r = closing(connect(srv.port))
    body = "y" * 30000
    msgs = [chat_obj(i, "raw", "%02d %s" % (i, body)) for i in range(20)]
    r.sendall(b"".join(wire(m) for m in msgs) + wire(ctl_obj(loop(fp.port), "unsubscribe")))
    wait_line(srv, unsubscribed_rx(fp.port))
    fp.wait(lambda: fp.connections() == 1 and fp.all_closed(), timeout=TIMEOUT,
            what="fp's delivery connection closed after the queued messages")
    assert fp.objects() == msgs

    # The usual way: unsubscribe over the connection that subscribed.
    m20 = chat_obj(20, "raw", "before fp2 leaves")
    r.sendall(wire(m20))
    fp2.wait_objects(21)
    c2.sendall(wire(ctl_obj(loop(fp2.port), "unsubscribe")))
    wait_line(srv, unsubscribed_rx(fp2.port))
    m21 = chat_obj(21, "raw", "after both left")
    r.sendall(wire(m21))
    assert witness.wait_objects(22) == msgs + [m20, m21]
    fp2.wait(fp2.all_closed, what="fp2's delivery connection closed")
    assert fp.objects() == msgs
    assert fp2.objects() == msgs + [m20]
    assert fp.connections() == 1 and fp2.connections() == 1
    assert count_lines(srv, unsubscribed_rx(fp.port)) == 1
    assert count_lines(srv, unsubscribed_rx(fp2.port)) == 1


# ---------------------------------------------------------------------------
# Eviction
# ---------------------------------------------------------------------------


def test_killed_client_is_evicted_others_keep_receiving(procs):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    bob = procs.chat5("bob", srv.port, server=srv)
    carol = procs.chat5("carol", srv.port, server=srv)

    carol.signal(signal.SIGKILL)
    carol.wait_exit()
    sent = []
    # The eviction may only be noticed once a write to carol fails.
    for i in range(30):
        alice.send("m%d" % i)
        sent.append("alice: m%d" % i)
        bob.wait_stdout(r"^alice: m%d$" % i)
        if find_line(srv, evicted_rx(carol.port)) is not None:
            break
    wait_line(srv, evicted_rx(carol.port))
    alice.send("after")
    bob.wait_stdout(r"^alice: after$")
    bob.send("bob too")
    alice.wait_stdout(r"^bob: bob too$")
    assert bob.stdout_lines(len(sent) + 1) == sent + ["alice: after"]
    assert alice.stdout_lines(1) == ["bob: bob too"]
    assert count_lines(srv, evicted_rx(carol.port)) == 1
    assert count_lines(srv, r"evicted") == 1


def test_subscriber_that_never_reads_is_evicted_without_stalling_others(procs, fake_peer, closing):
    srv = procs.server("--queue-limit", "100")
    stalled = closing(StalledPeer())
    subscribe_by_hand(srv, stalled.port, closing)
    fast = fake_peer()
    subscribe_by_hand(srv, fast.port, closing)
    bob = procs.chat5("bob", srv.port, server=srv)

    r = closing(connect(srv.port))
    body = "x" * 8192
    sent, batch = 0, 25
    evicted_after = None
    while sent < 4000:
        r.sendall(b"".join(wire(chat_obj(i, "flood", "%05d %s" % (i, body)))
                           for i in range(sent, sent + batch)))
        sent += batch
        # Everyone else keeps up, batch after batch.
        fast.wait(lambda: fast.data().count(b"\n") >= sent, what="%d messages at the fast subscriber" % sent)
        bob.stdout_lines(sent)
        if find_line(srv, evicted_rx(stalled.port)) is not None:
            evicted_after = sent
            break
    assert evicted_after is not None, "never evicted after %d messages of 8 KiB: %r" % (sent, srv.err_lines)
    # A few more after the eviction.
    r.sendall(b"".join(wire(chat_obj(i, "flood", "%05d %s" % (i, body))) for i in range(sent, sent + 10)))
    sent += 10
    expected = [chat_obj(i, "flood", "%05d %s" % (i, body)) for i in range(sent)]
    fast.wait(lambda: fast.data().count(b"\n") >= sent, what="all messages at the fast subscriber")
    assert fast.objects() == expected
    assert bob.stdout_lines(sent) == ["flood: %05d %s" % (i, body) for i in range(sent)]
    assert count_lines(srv, evicted_rx(stalled.port)) == 1
    assert count_lines(srv, r"evicted") == 1

    # What the stalled subscriber got is an in-order prefix, then the
    # server closed the connection.
    assert len(stalled.conns) == 1
    got = wait_eof(stalled.conns[0])
    seqs = [o["seq"] for o in complete_objects(got)]
    assert seqs == list(range(len(seqs)))
    assert len(seqs) < sent


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

BAD_INPUTS = [
    b"this is not json\n",
    b'{"operation": 5}\n',
    b'{"operation": "subscribe", "client": 7}\n',
    b'{"operation": "unsubscribe"}\n',
    b'{"operation": "frobnicate", "client": "127.0.0.1:5000"}\n',
    b'{"seq": "1", "user": "mallory", "message": "seq is a string"}\n',
    b'{"seq": -1, "user": "mallory", "message": "negative seq"}\n',
    b'{"seq": 1.5, "user": "mallory", "message": "fractional seq"}\n',
    b'{"seq": 1, "user": 5, "message": "user is a number"}\n',
    b'{"seq": 1, "user": "mallory"}\n',
    b'{"seq": 1, "user": "mallory", "message": null}\n',
    b"[1, 2, 3]\n",
    b'"just a string"\n',
    b"42\n",
    b'{"seq": 1, "user": "mallory", "message": "bad utf-8 \xff\xfe"}\n',
]


def test_bad_input_is_logged_and_skipped_connection_stays(procs, fake_peer, closing):
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    bob = procs.chat5("bob", srv.port, server=srv)

    b = closing(connect(srv.port))
    baddr = re.escape(loop(b.getsockname()[1]))
    good = []
    for k, item in enumerate(BAD_INPUTS):
        before = count_lines(srv, baddr)
        m = chat_obj(k, "good", "after bad %d" % k)
        good.append(m)
        b.sendall(item + wire(m))
        assert fp.wait_objects(k + 1) == good, item
        bob.wait_stdout(r"^good: after bad %d$" % k)
        # One log line naming the connection, for the bad object.
        wait_until(lambda: count_lines(srv, baddr) > before, what="a log line naming %s for %r" % (baddr, item),
                   dump=dump_proc(srv))
    assert fp.objects() == good
    assert bob.stdout_lines(len(good)) == ["good: after bad %d" % k for k in range(len(good))]
    assert find_line(srv, r"(?<!un)subscribed 127\.0\.0\.1:7\b") is None
    assert srv.alive()


@pytest.mark.parametrize("what", ["1MiB-line", "deep-nesting"])
def test_oversized_object_closes_only_that_connection(procs, fake_peer, closing, what):
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    bob = procs.chat5("bob", srv.port, server=srv)

    b = closing(connect(srv.port))
    baddr = re.escape(loop(b.getsockname()[1]))
    if what == "1MiB-line":
        payload = b'{"seq": 0, "user": "big", "message": "' + b"x" * (1 << 20) + b'"}\n'
    else:
        payload = b'{"seq": 0, "user": "deep", "message": "x", "n": ' + b"[" * 20 + b"]" * 20 + b"}\n"
    send_quietly(b, payload)
    wait_eof(b)
    wait_line(srv, baddr)

    # Nothing of it was relayed; everyone else goes on.
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "raw", "still relaying")))
    assert fp.wait_objects(1) == [chat_obj(0, "raw", "still relaying")]
    bob.wait_stdout(r"^raw: still relaying$")
    assert bob.stdout_lines(1) == ["raw: still relaying"]
    bob.send("bob still sends")
    assert fp.wait_objects(2)[1] == chat_obj(0, "bob", "bob still sends")
    assert srv.alive()


def test_third_party_subscribe_is_rewritten_to_peer_ip(procs, fake_peer, closing):
    """Loopback variant, safe everywhere: 127.0.0.2 plays the third party
    and a trap listens there on the same port."""
    srv = procs.server()
    fp = fake_peer()
    trap = closing(Trap("127.0.0.2", fp.port))
    c = closing(connect(srv.port))
    c.sendall(wire(ctl_obj("127.0.0.2:%d" % fp.port)))
    wait_line(srv, r"instead")
    wait_line(srv, subscribed_rx(fp.port))
    assert find_line(srv, r"(?<!un)subscribed 127\.0\.0\.2:") is None
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "raw", "to the peer's own address")))
    assert fp.wait_objects(1) == [chat_obj(0, "raw", "to the peer's own address")]
    assert trap.count == 0


MALFORMED_CLIENTS = ["nonsense", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:abc", "127.0.0.1:", ""]


def test_malformed_client_is_refused_server_keeps_relaying(procs, fake_peer, closing):
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    b = closing(connect(srv.port))
    good = []
    for k, client in enumerate(MALFORMED_CLIENTS):
        before = count_lines(srv, r"refused")
        b.sendall(wire(ctl_obj(client)))
        m = chat_obj(k, "good", "after %r" % client)
        good.append(m)
        b.sendall(wire(m))
        # b never subscribed, so fp gets its messages.
        assert fp.wait_objects(k + 1) == good
        wait_until(lambda: count_lines(srv, r"refused") > before, what="a refused line for %r" % client,
                   dump=dump_proc(srv))
    assert count_lines(srv, r"(?<!un)subscribed") == 1
    assert fp.connections() == 1


@pytest.mark.parametrize("limit", ["per-ip", "total"])
def test_subscriber_limits_refuse_with_a_log_line(procs, fake_peer, closing, limit):
    opts = ["--max-per-ip", "2", "--max-clients", "10"] if limit == "per-ip" else \
        ["--max-per-ip", "10", "--max-clients", "2"]
    srv = procs.server(*opts)
    fps = [fake_peer() for _ in range(3)]
    c = closing(connect(srv.port))
    subscribe_by_hand(srv, fps[0].port, closing, conn=c)
    subscribe_by_hand(srv, fps[1].port, closing, conn=c)
    c.sendall(wire(ctl_obj(loop(fps[2].port))))
    wait_line(srv, r"refused.*127\.0\.0\.1:%d\b" % fps[2].port)
    # A resubscription of a listed address keeps it: not over the limit.
    c.sendall(wire(ctl_obj(loop(fps[1].port))))
    wait_line(srv, r"subscribed 127\.0\.0\.1:%d\b.* again" % fps[1].port)
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "raw", "within limits")))
    assert fps[0].wait_objects(1) == [chat_obj(0, "raw", "within limits")]
    assert fps[1].wait_objects(1) == [chat_obj(0, "raw", "within limits")]
    # Once one leaves, there is room again.
    c.sendall(wire(ctl_obj(loop(fps[0].port), "unsubscribe")))
    wait_line(srv, unsubscribed_rx(fps[0].port))
    subscribe_by_hand(srv, fps[2].port, closing, conn=c)
    r.sendall(wire(chat_obj(1, "raw", "room again")))
    assert fps[2].wait_objects(1) == [chat_obj(1, "raw", "room again")]
    assert fps[1].wait_objects(2)[1] == chat_obj(1, "raw", "room again")
    assert fps[0].objects() == [chat_obj(0, "raw", "within limits")]


def test_connection_limit_refuses_with_a_log_line(procs, fake_peer, closing):
    srv = procs.server("--max-conns", "3")
    fp = fake_peer()
    c = subscribe_by_hand(srv, fp.port, closing)
    others = [closing(connect(srv.port)) for _ in range(2)]
    # Each accepted connection works, so all three are counted by now.
    for k, o in enumerate(others):
        o.sendall(wire(chat_obj(k, "raw", "conn %d" % k)))
        fp.wait_objects(k + 1)
    extra = closing(connect(srv.port))
    wait_eof(extra)
    wait_line(srv, r"refused")
    # The ones already in keep working; a closed one makes room.
    others[0].sendall(wire(chat_obj(2, "raw", "still in")))
    fp.wait_objects(3)
    others[1].close()
    def try_new():
        s = connect(srv.port)
        send_quietly(s, wire(chat_obj(3, "raw", "room again")))
        ok = False
        try:
            fp.wait_objects(4, timeout=0.5)
            ok = True
        except AssertionError:
            pass
        s.close()
        return ok
    wait_until(try_new, what="a new connection accepted after one closed")
    assert fp.objects()[:4] == [chat_obj(0, "raw", "conn 0"), chat_obj(1, "raw", "conn 1"),
                                chat_obj(2, "raw", "still in"), chat_obj(3, "raw", "room again")]
    assert c.fileno() >= 0


# --- inside a network namespace ------------------------------------------

CLONE_NEWNET = 0x40000000
_NETNS_SCRIPT = ('ip link set lo up && ip addr add 10.1.2.3/32 dev lo && '
                 'ip addr add 1.2.3.4/32 dev lo && exec "$@"')
_netns_ok = None


def netns_usable():
    global _netns_ok
    if _netns_ok is None:
        try:
            p = run(["unshare", "--net", "--", "sh", "-c", _NETNS_SCRIPT, "sh", "true"])
            _netns_ok = p.returncode == 0 and hasattr(ctypes.CDLL(None), "setns")
        except (OSError, subprocess.SubprocessError):
            _netns_ok = False
    return _netns_ok


def server_in_netns(procs, *opts):
    """server5 alone in a new network namespace whose loopback also holds
    10.1.2.3 and 1.2.3.4."""
    need_tool("ip", "iproute2")
    if not netns_usable():
        pytest.skip("this kernel or sandbox does not allow a network namespace (unshare --net)")
    p = procs.start(["unshare", "--net", "--", "sh", "-c", _NETNS_SCRIPT, "sh"] + SERVER5 + list(opts) + ["0"])
    p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
    return p


def in_netns(pid, fn, *args):
    """Calls fn in a thread that joined pid's network namespace, so the
    sockets fn makes live there."""
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}

    def body():
        try:
            fd = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            finally:
                os.close(fd)
            out["v"] = fn(*args)
        except BaseException as e:  # handed to the caller
            out["e"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]


def test_third_party_subscribe_never_reaches_third_party(procs, fake_peer, closing):
    srv = server_in_netns(procs)
    pid = srv.pid
    fp = in_netns(pid, fake_peer)
    trap = closing(in_netns(pid, Trap, "10.1.2.3", fp.port))
    c = closing(in_netns(pid, connect, srv.port))
    c.sendall(wire(ctl_obj("10.1.2.3:%d" % fp.port)))
    wait_line(srv, r"instead")
    wait_line(srv, subscribed_rx(fp.port))
    assert find_line(srv, r"(?<!un)subscribed 10\.1\.2\.3:") is None
    r = closing(in_netns(pid, connect, srv.port))
    msgs = [chat_obj(i, "raw", "delivery %d" % i) for i in range(3)]
    r.sendall(b"".join(wire(m) for m in msgs))
    assert fp.wait_objects(3) == msgs
    assert trap.count == 0, "the server connected to 10.1.2.3"
    assert fp.connections() == 1


def test_malformed_third_party_clients_refused_in_netns(procs, fake_peer, closing):
    srv = server_in_netns(procs)
    pid = srv.pid
    fp = in_netns(pid, fake_peer)
    subscribe_by_hand(srv, fp.port, closing, conn=closing(in_netns(pid, connect, srv.port)))
    traps = [closing(in_netns(pid, Trap, h, 99999 % 65536)) for h in ("1.2.3.4", "127.0.0.1")]
    b = closing(in_netns(pid, connect, srv.port))
    good = []
    for k, client in enumerate(["nonsense", "1.2.3.4:0", "1.2.3.4:99999", "1.2.3.4"]):
        before = count_lines(srv, r"refused")
        m = chat_obj(k, "good", "after %s" % client)
        good.append(m)
        b.sendall(wire(ctl_obj(client)) + wire(m))
        assert fp.wait_objects(k + 1) == good
        wait_until(lambda: count_lines(srv, r"refused") > before, what="a refused line for %r" % client,
                   dump=dump_proc(srv))
    assert count_lines(srv, r"(?<!un)subscribed") == 1
    assert all(t.count == 0 for t in traps)


# ---------------------------------------------------------------------------
# Python-style peers
# ---------------------------------------------------------------------------


def test_python_style_client_fresh_connection_per_message(procs):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    bob = procs.chat5("bob", srv.port, server=srv)

    def send_one(m):
        s = connect(srv.port)
        s.sendall(pystyle(m))
        s.close()

    # One at a time, each seen before the next is sent.
    for i in range(5):
        send_one(chat_obj(i, "py", "message %d é" % i))
        alice.wait_stdout(r"^py: message %d é$" % i)
        bob.wait_stdout(r"^py: message %d é$" % i)
    # Then a burst: separate connections carry no order, but none is lost.
    for i in range(5, 25):
        send_one(chat_obj(i, "py", "message %d é" % i))
    want = ["py: message %d é" % i for i in range(25)]
    for p in (alice, bob):
        lines = p.stdout_lines(25)
        assert lines[:5] == want[:5]
        assert sorted(lines) == sorted(want)
        assert len(lines) == 25
    assert count_lines(srv, r"evicted|refused") == 0


def test_python_style_subscriber_without_listener_gets_deliveries_on_its_connection(procs, closing):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    port = free_port()  # nothing listens there
    s = closing(connect(srv.port))
    s.sendall(pystyle(ctl_obj(loop(port))))
    wait_line(srv, subscribed_rx(port))
    reader = SockReader(s)

    alice.send("one")
    alice.send("two")
    r = closing(connect(srv.port))
    r.sendall(pystyle(chat_obj(5, "py", "three")))
    r.close()
    want = [chat_obj(0, "alice", "one"), chat_obj(1, "alice", "two"), chat_obj(5, "py", "three")]
    got = reader.wait_objects(3, timeout=15)
    assert [o for o in got if o["user"] == "alice"] == want[:2]
    assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, want))
    # The server said it is delivering over the subscribing connection: a
    # line naming the address besides the "subscribed" one.
    addr = re.escape(loop(port))
    wait_count(srv, addr, 2)
    assert find_line(srv, r"evicted.*" + addr) is None
    # Its own messages are not echoed back to it.
    s.sendall(pystyle(chat_obj(0, "pysub", "from the subscriber")))
    alice.wait_stdout(r"^pysub: from the subscriber$")
    alice.send("four")
    got = reader.wait_objects(4)
    assert got[3] == chat_obj(2, "alice", "four")
    assert len(got) == 4


# ---------------------------------------------------------------------------
# Server restart under a running chat5
# ---------------------------------------------------------------------------


def test_server_restart_chat5_resubscribes_and_delivers_typed_meanwhile(procs, fake_peer, closing):
    srv = procs.server()
    port = srv.port
    alice = procs.chat5("alice", port, server=srv)
    bob = procs.chat5("bob", port, server=srv)
    alice.send("before")
    bob.wait_stdout(r"^alice: before$")

    outages = 0
    for attempt in range(3):
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit() == 0
        outages += 1
        wait_count(alice, r"lost connection", outages)
        wait_count(bob, r"lost connection", outages)
        typed = "typed while down %d" % attempt
        alice.send(typed)

        srv = procs.server(port=port)
        fp = fake_peer()
        subscribe_by_hand(srv, fp.port, closing)
        i_fp = wait_line(srv, subscribed_rx(fp.port))
        i_alice = wait_line(srv, subscribed_rx(alice.port), timeout=30)
        if i_fp < i_alice:
            break
        # alice came back before the test's subscriber could: the message
        # may rightly have gone to nobody.  Take the server down again.
    else:
        pytest.fail("alice always resubscribed before the test could: %r" % srv.err_lines)

    assert fp.wait_objects(1, timeout=15) == [chat_obj(1 + attempt, "alice", typed)]
    i_bob = wait_line(srv, subscribed_rx(bob.port), timeout=30)
    if i_bob < i_alice:
        bob.wait_stdout(r"^alice: %s$" % typed)

    # Everything works as before the restart.
    alice.send("after")
    bob.wait_stdout(r"^alice: after$")
    bob.send("bob after")
    alice.wait_stdout(r"^bob: bob after$")
    assert fp.wait_objects(3, timeout=15)[1:] == [chat_obj(2 + attempt, "alice", "after"),
                                                  chat_obj(0, "bob", "bob after")]
    assert count_lines(alice, r"lost connection") == outages
    assert count_lines(bob, r"lost connection") == outages
    alice.close_stdin()
    bob.close_stdin()
    assert alice.wait_exit() == 0
    assert bob.wait_exit() == 0


# ---------------------------------------------------------------------------
# Many subscribers
# ---------------------------------------------------------------------------


def test_200_subscribers_100_messages_each(procs, closing):
    n_subs, n_msgs = 200, 100
    srv = procs.server("--max-clients", "1000", "--max-per-ip", "1000", "--max-conns", "1000")
    sinks = closing(MultiSink(n_subs))
    for port in sinks.ports:
        c = closing(connect(srv.port))
        c.sendall(wire(ctl_obj(loop(port))))
    for port in sinks.ports:
        wait_line(srv, subscribed_rx(port))
    alice = procs.chat5("alice", srv.port, server=srv)
    alice.p.stdin.write(b"".join(b"message %d\n" % i for i in range(n_msgs)))
    alice.p.stdin.flush()
    want = b"".join(wire(chat_obj(i, "alice", "message %d" % i)) for i in range(n_msgs))
    wait_until(lambda: all(sinks.newlines(p) >= n_msgs for p in sinks.ports), timeout=60,
               what="%d messages at each of %d subscribers" % (n_msgs, n_subs),
               dump=lambda: "counts: %r\n%s" % (sorted(sinks.newlines(p) for p in sinks.ports)[:10],
                                                dump_proc(srv)()))
    bad = [p for p in sinks.ports if sinks.data(p) != want]
    assert not bad, "%d subscribers got something else, e.g. %r" % (len(bad), sinks.data(bad[0])[:500])
    assert all(sinks.accepted[p] == 1 for p in sinks.ports)
    assert count_lines(srv, r"evicted|refused") == 0
    alice.close_stdin()
    assert alice.wait_exit() == 0


# ---------------------------------------------------------------------------
# Command lines, exit statuses, signals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    [],
    ["notaport"],
    ["70000"],
    ["0", "1"],
    ["--bogus", "0"],
    ["--queue-limit"],
    ["--queue-limit", "abc", "0"],
    ["--max-clients", "-5", "0"],
    ["127.0.0.1:notaport"],
])
def test_server_bad_args_exit_2(args):
    p = run(SERVER5 + args)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert re.search(r"(?m)^usage:", err), err
    assert p.stdout == b""


def test_server_help_and_version():
    p = run(SERVER5 + ["--help"])
    assert p.returncode == 0
    assert b"usage:" in p.stdout
    p = run(SERVER5 + ["-h"])
    assert p.returncode == 0 and b"usage:" in p.stdout
    p = run(SERVER5 + ["--version"])
    assert p.returncode == 0
    assert re.match(rb"^server5 \d+\.\d+\.\d+\n$", p.stdout), p.stdout


def test_server_port_in_use_exit_1(procs):
    srv = procs.server()
    p = run(SERVER5 + [str(srv.port)])
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert err.startswith("server5: ") and str(srv.port) in err and "in use" in err.lower(), err


def test_chat5_no_server_exit_1():
    port = free_port()
    p = run(CHAT5 + ["alice", "0", loop(port)])
    err = p.stderr.decode()
    assert p.returncode == 1, err
    lines = [l for l in err.splitlines() if l]
    assert lines and all(l.startswith("chat5: ") for l in lines), err
    assert str(port) in err, err
    assert p.stdout == b""


def test_chat5_port_in_use_exit_1(procs):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    p = run(CHAT5 + ["bob", str(alice.port), loop(srv.port)])
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "in use" in err.lower(), err


@pytest.mark.parametrize("args", [
    [],
    ["alice"],
    ["alice", "0"],
    ["alice", "0", "127.0.0.1:1", "extra"],
    ["alice", "notaport", "127.0.0.1:1"],
    ["alice", "70000", "127.0.0.1:1"],
    ["", "0", "127.0.0.1:1"],
    ["a" * 65, "0", "127.0.0.1:1"],
    ["a\tb", "0", "127.0.0.1:1"],
    ["alice", "0", "nonsense"],
    ["alice", "0", "127.0.0.1:0"],
    ["alice", "0", "127.0.0.1:99999"],
    ["--bogus", "alice", "0", "127.0.0.1:1"],
])
def test_chat5_bad_args_exit_2(args):
    p = run(CHAT5 + args)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert re.search(r"(?m)^usage:", err), err
    assert p.stdout == b""


def test_chat5_help_and_version():
    p = run(CHAT5 + ["--help"])
    assert p.returncode == 0 and b"usage:" in p.stdout
    p = run(CHAT5 + ["--version"])
    assert p.returncode == 0
    assert re.match(rb"^chat5 \d+\.\d+\.\d+\n$", p.stdout), p.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_signal_exits_0(procs, fake_peer, closing, sig):
    srv = procs.server()
    fp = fake_peer()
    subscribe_by_hand(srv, fp.port, closing)
    alice = procs.chat5("alice", srv.port, server=srv)
    alice.send("before the end")
    assert fp.wait_objects(1) == [chat_obj(0, "alice", "before the end")]
    srv.signal(sig)
    assert srv.wait_exit() == 0
    fp.wait(fp.all_closed, what="the server closing its delivery connection")
    alice.wait_stderr(r"lost connection")
    assert alice.alive()
