"""End-to-end tests for `chat`, the peer-to-peer program (question 1).

Every test starts the real program (the CHAT environment variable, default
the binary at the top of the tree) on port 0 or on a port it was handed,
and waits for events: a line on stdout or stderr, bytes or a connection at
a test socket, the process ending.  Nothing sleeps for a fixed time.

Layout:
  - the assignment's three-user example, seq numbers, the wire format
  - lazy connections, exit / end of input / signals, the graders' pipe
  - late, unreachable and restarted peers, the bounded queue
  - hostile input on a raw socket (framing, garbage, limits, escapes)
  - listen failure, command line, IPv6, stdout hygiene
"""

import json
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import CHAT, TIMEOUT, FakePeer, connect, free_port, split_json

# Exit after "exit"/EOF/signal must be quick when every peer is reachable
# or plainly refused (the contract allows "a few seconds" of delivery).
FAST_EXIT = 3.0


# ---------------------------------------------------------------------------
# helpers


def line_rx(text):
    """A regex matching exactly one whole stdout line."""
    return "^" + re.escape(text) + "$"


def expect_line(p, text, timeout=None):
    """Waits for the stdout line `text` (after the lines already seen)."""
    p.wait_stdout(line_rx(text), timeout)


def peer(port, host="127.0.0.1"):
    return "%s:%d" % (host, port)


def chat_msg(seq, user, message):
    return {"seq": seq, "user": user, "message": message}


def wire(seq, user, message):
    """The exact bytes chat must send: json.dumps default spacing, keys in
    order, raw UTF-8, "/" not escaped, one trailing newline."""
    return (json.dumps(chat_msg(seq, user, message), ensure_ascii=False) + "\n").encode("utf-8")


def raw_obj(seq, user, message):
    return json.dumps(chat_msg(seq, user, message)).encode()


def distinct_free_ports(n):
    ports = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def wait_until(cond, what, timeout=None):
    deadline = time.monotonic() + (timeout or TIMEOUT)
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def wait_eof(sock, timeout=None):
    """Waits until the other side closed sock (EOF or reset)."""
    deadline = time.monotonic() + (timeout or TIMEOUT)
    sock.settimeout(0.2)
    while True:
        try:
            b = sock.recv(65536)
            if not b:
                return
        except (ConnectionResetError, BrokenPipeError):
            return
        except socket.timeout:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("connection still open after %ss" % (timeout or TIMEOUT))


def wait_err_anywhere(p, pattern, timeout=None):
    """Waits for a stderr line matching pattern, wherever it is (lines from
    different threads come in no fixed order)."""
    rx = re.compile(pattern)

    def found():
        with p._lock:
            return any(rx.search(l) for l in p.err_lines)
    try:
        wait_until(found, "stderr %r" % pattern, timeout)
    except AssertionError:
        raise AssertionError("no stderr line matching %r: %r" % (pattern, p.err_lines))


def timed_exit(p, timeout=None):
    """Waits for p to end; returns (status, seconds it took)."""
    t0 = time.monotonic()
    rc = p.wait_exit(timeout)
    return rc, time.monotonic() - t0


def assert_refused(port, host="127.0.0.1"):
    with pytest.raises(ConnectionRefusedError):
        s = connect(port, host)
        s.close()


def assert_stderr_prefixed(p, allow_usage=False):
    for line in p.err_lines:
        if allow_usage and line.startswith("usage:"):
            continue
        assert line.startswith("chat: "), "stderr line without 'chat: ' prefix: %r" % line


def assert_safe_stdout(p):
    """No raw control character, C1 control or undecodable byte on stdout."""
    for line in p.out_lines:
        for ch in line:
            o = ord(ch)
            assert not (o < 0x20 or 0x7F <= o <= 0x9F or ch == "\ufffd"), (
                "raw control/invalid byte %r on stdout line %r" % (ch, line))


def ready(p):
    """For programs started through procs.start: waits for the ready line."""
    p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
    return p


def log_about(sock):
    """A regex matching a stderr line naming the remote end of sock (chat
    sees our local port)."""
    return r":%d\b" % sock.getsockname()[1]


def synced(p, sockets, who):
    """Opens a connection to p and proves it is being read: a message on it
    is printed (`WHO: hello`).  Then moves p's stderr cursor past every line
    so far, so a later log_about() wait cannot match an informational line
    about the connection being accepted."""
    s = sockets(p.port)
    s.sendall(raw_obj(1000, who, "hello") + b"\n")
    expect_line(p, who + ": hello")
    with p._lock:
        p._err_seen = len(p.err_lines)
    return s


def run_chat(args, input=b"", timeout=10):
    return subprocess.run(CHAT + list(args), input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


class ChunkPeer(FakePeer):
    """A FakePeer that also keeps every recv() chunk, to see how chat
    splits its writes (loopback keeps one small send in one chunk)."""

    def __init__(self, **kw):
        self.chunks = []
        super().__init__(**kw)

    def handle(self, entry):
        c = entry[0]
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                b = b""
            if not b:
                with self._lock:
                    entry[2] = True
                return
            with self._lock:
                entry[1].extend(b)
                self.chunks.append(bytes(b))


class PortFakePeer(FakePeer):
    """A FakePeer listening on a given port (a peer that shows up late)."""

    def __init__(self, port, host="127.0.0.1", family=socket.AF_INET):
        super().__init__(host=host, family=family, port=port)

    def conn_data(self, i):
        with self._lock:
            return bytes(self.conns[i][1])


@pytest.fixture
def late_peer():
    made = []

    def make(port, **kw):
        f = PortFakePeer(port, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture
def chunk_peer():
    made = []

    def make(**kw):
        f = ChunkPeer(**kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture
def sockets():
    """Raw client sockets closed at the end of the test."""
    made = []

    def make(port, host="127.0.0.1"):
        s = connect(port, host)
        made.append(s)
        return s

    yield make
    for s in made:
        try:
            s.close()
        except OSError:
            pass


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# the assignment's example


def test_three_users_who_receives_what(procs):
    """user1 peers 2,3; user2 peers 1,3; user3 (own port) peers only 1."""
    p1, p2 = distinct_free_ports(2)
    u3 = procs.chat("user3", peers=[peer(p1)])
    u1 = procs.chat("user1", port=p1, peers=[peer(p2), peer(u3.port)])
    u2 = procs.chat("user2", port=p2, peers=[peer(p1), peer(u3.port)])
    assert (u1.port, u2.port) == (p1, p2)

    for rnd in ("first", "second"):
        u1.send("%s from 1" % rnd)
        expect_line(u2, "user1: %s from 1" % rnd)
        expect_line(u3, "user1: %s from 1" % rnd)
        u2.send("%s from 2" % rnd)
        expect_line(u1, "user2: %s from 2" % rnd)
        expect_line(u3, "user2: %s from 2" % rnd)
        u3.send("%s from 3" % rnd)
        expect_line(u1, "user3: %s from 3" % rnd)

    # Stop user3 first, then user1 (which could wrongly relay user3's
    # words to user2), then user2: after that every delivery is over.
    for u in (u3, u1, u2):
        u.send("exit")
        assert u.wait_exit() == 0

    assert u1.out_lines == ["user2: first from 2", "user3: first from 3",
                            "user2: second from 2", "user3: second from 3"]
    assert u2.out_lines == ["user1: first from 1", "user1: second from 1"]
    assert u3.out_lines == ["user1: first from 1", "user2: first from 2",
                            "user1: second from 1", "user2: second from 2"]
    for u in (u1, u2, u3):
        assert_stderr_prefixed(u)


def test_seq_per_sender_same_to_every_peer(procs, fake_peer):
    """seq 0,1,2 per typed line, the same seq on every peer; blank lines
    are not messages; a trailing \\r is stripped."""
    f1, f2 = fake_peer(), fake_peer()
    bob = procs.chat("bob")
    alice = procs.chat("alice", peers=[peer(f1.port), peer(bob.port), peer(f2.port)])
    # Typed all at once: nothing waits between lines.
    for line in ("m0", "", "m1\r", "m2"):
        alice.send(line)
    want = [chat_msg(0, "alice", "m0"), chat_msg(1, "alice", "m1"), chat_msg(2, "alice", "m2")]
    for f in (f1, f2):
        f.wait_objects(3)
    expect_line(bob, "alice: m0")
    expect_line(bob, "alice: m1")
    expect_line(bob, "alice: m2")
    alice.send("exit")
    assert alice.wait_exit() == 0
    for f in (f1, f2):
        f.wait(f.all_closed, what="EOF")
        assert f.objects() == want
        assert f.connections() == 1
    assert bob.out_lines == ["alice: m0", "alice: m1", "alice: m2"]

    # Another sender counts from 0 on its own.
    bob_f = fake_peer()
    carol = procs.chat("carol", peers=[peer(bob_f.port)])
    carol.send("c0")
    carol.send("c1")
    assert bob_f.wait_objects(2) == [chat_msg(0, "carol", "c0"), chat_msg(1, "carol", "c1")]


# ---------------------------------------------------------------------------
# wire format


def test_wire_bytes_exact(procs, chunk_peer):
    f = chunk_peer()
    alice = procs.chat("alice", peers=[peer(f.port)])
    alice.send("hello")
    first = b'{"seq": 0, "user": "alice", "message": "hello"}\n'
    f.wait(lambda: len(f.data()) >= len(first), what="first object")
    assert f.data() == first

    # Keys in order, json.dumps spacing, raw UTF-8, quotes and backslashes
    # escaped, "/" not escaped.  One chunk per object (one send each).
    texts = ['caf\u00e9 na\u00efve \u65e5\u672c \U0001F600', 'she said "hi"',
             "back\\slash and a/slash", "</script>", "x" * 3000]
    expected = first
    for i, t in enumerate(texts, start=1):
        alice.send(t)
        expected += wire(i, "alice", t)
        f.wait(lambda: len(f.data()) >= len(expected), what="object %d" % i)
        assert f.data() == expected
    with f._lock:
        chunks = list(f.chunks)
    for c in chunks:
        assert c.endswith(b"\n"), "an object was split across writes: %r" % chunks
        split_json(c)  # whole objects only
    assert f.connections() == 1


def test_wire_name_and_tab_encoded_as_json(procs, fake_peer):
    f = fake_peer()
    z = procs.chat("zo\u00eb", peers=[peer(f.port)])
    z.send("a\tb")
    objs = f.wait_objects(1)
    assert objs == [chat_msg(0, "zo\u00eb", "a\tb")]
    assert f.data() == wire(0, "zo\u00eb", "a\tb")


UTF8_TEXTS = [
    "caf\u00e9 na\u00efve \u00e0 la cr\u00e8me",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u65e5\u672c\u8a9e \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F468\u200d\U0001F469\u200d\U0001F467",
    'double "quotes" and \'single\'',
    "back\\slash \\n \\u0041 \\\\",
    "a/slash http://example.com/x?y=1&z=2 </script>",
    "{\"seq\": 99, \"user\": \"mallory\", \"message\": \"fake\"}",
]


def test_utf8_round_trip_between_two_chats(procs):
    bob = procs.chat("bob")
    alice = procs.chat("\u00e1lice \U0001F431", peers=[peer(bob.port)])
    for t in UTF8_TEXTS:
        alice.send(t)
    for t in UTF8_TEXTS:
        expect_line(bob, "\u00e1lice \U0001F431: " + t)
    alice.close_stdin()
    assert alice.wait_exit() == 0
    assert bob.out_lines == ["\u00e1lice \U0001F431: " + t for t in UTF8_TEXTS]


# ---------------------------------------------------------------------------
# lazy connections


def test_lazy_connection_then_reused(procs, fake_peer):
    f = fake_peer()
    dead = free_port()
    alice = procs.chat("alice", peers=[peer(f.port), peer(dead)])
    # Prove alice is fully up: bob messages her and she prints it.
    bob = procs.chat("bob", peers=[peer(alice.port)])
    bob.send("are you there")
    expect_line(alice, "bob: are you there")
    assert f.connections() == 0, "chat connected before the first message"
    assert not any("cannot reach" in l for l in alice.err_lines), \
        "chat tried an unreachable peer before the first message"

    alice.send("one")
    assert f.wait_objects(1) == [chat_msg(0, "alice", "one")]
    assert f.connections() == 1
    alice.send("two")
    alice.send("three")
    objs = f.wait_objects(3)
    assert [o["message"] for o in objs] == ["one", "two", "three"]
    assert f.connections() == 1, "chat opened a new connection per message"
    with f._lock:
        assert not f.conns[0][2], "connection closed while chat runs"


# ---------------------------------------------------------------------------
# exit, end of input, signals


@pytest.mark.parametrize("how", ["exit", "exit_crlf", "eof"])
def test_exit_and_eof_close_everything(procs, fake_peer, sockets, how):
    f = fake_peer()
    alice = procs.chat("alice", peers=[peer(f.port)])
    inbound = sockets(alice.port)
    inbound.sendall(raw_obj(0, "bob", "hi alice") + b"\n")
    expect_line(alice, "bob: hi alice")

    alice.send("first")
    f.wait_objects(1)
    # Typed just before leaving: must still be delivered.
    alice.send("last words")
    if how == "exit":
        alice.send("exit")
    elif how == "exit_crlf":
        alice.send("exit\r")
    else:
        alice.close_stdin()
    rc, took = timed_exit(alice)
    assert rc == 0
    assert took < FAST_EXIT, "exit took %.1fs" % took
    f.wait(f.all_closed, what="EOF on chat's connection")
    assert f.objects() == [chat_msg(0, "alice", "first"), chat_msg(1, "alice", "last words")]
    wait_eof(inbound)
    assert_refused(alice.port)
    assert alice.out_lines == ["bob: hi alice"]
    assert_stderr_prefixed(alice)


def test_exit_is_only_the_exact_line(procs, fake_peer):
    f = fake_peer()
    alice = procs.chat("alice", peers=[peer(f.port)])
    for line in ("exit ", " exit", "EXIT", "exit now"):
        alice.send(line)
    objs = f.wait_objects(4)
    assert [o["message"] for o in objs] == ["exit ", " exit", "EXIT", "exit now"]
    assert alice.alive()
    alice.send("exit")
    assert alice.wait_exit() == 0
    assert len(f.objects()) == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "after_message"])
def test_signal_exits_zero(procs, fake_peer, sockets, sig, busy):
    f = fake_peer()
    alice = procs.chat("alice", peers=[peer(f.port)])
    inbound = sockets(alice.port)
    inbound.sendall(raw_obj(0, "bob", "ping") + b"\n")
    expect_line(alice, "bob: ping")
    if busy:
        alice.send("hello")
        f.wait_objects(1)
    alice.signal(sig)
    rc, took = timed_exit(alice)
    assert rc == 0
    assert took < FAST_EXIT, "exit took %.1fs" % took
    f.wait(f.all_closed, what="EOF on chat's connection")
    wait_eof(inbound)
    assert_refused(alice.port)
    assert alice.out_lines == ["bob: ping"]


# ---------------------------------------------------------------------------
# the graders' pipe


@pytest.mark.parametrize("stdin", [b"hello\nexit\n", b"hello\n", b"hello\r\nexit\r\n"],
                         ids=["hello_exit", "hello_eof", "crlf"])
def test_piped_printf_delivers(procs, stdin):
    """printf 'hello\\nexit\\n' | ./chat user1 0 127.0.0.1:P"""
    user2 = procs.chat("user2")
    r = run_chat(["user1", "0", peer(user2.port)], input=stdin, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""
    expect_line(user2, "user1: hello")


def test_piped_lines_after_exit_are_not_sent(procs, sockets):
    user2 = procs.chat("user2")
    r = run_chat(["user1", "0", peer(user2.port)], input=b"hello\nexit\nafter\n", timeout=10)
    assert r.returncode == 0, r.stderr
    expect_line(user2, "user1: hello")
    s = sockets(user2.port)
    s.sendall(raw_obj(0, "marker", "end") + b"\n")
    expect_line(user2, "marker: end")
    assert "user1: after" not in user2.out_lines


def test_piped_last_line_without_newline(procs):
    user2 = procs.chat("user2")
    r = run_chat(["user1", "0", peer(user2.port)], input=b"one\ntwo", timeout=10)
    assert r.returncode == 0, r.stderr
    expect_line(user2, "user1: one")
    expect_line(user2, "user1: two")


def test_piped_through_shell_printf(procs):
    """The literal grader command line, through /bin/sh."""
    user2 = procs.chat("user2")
    cmd = "printf 'hello\\nexit\\n' | %s user1 0 127.0.0.1:%d" % (
        " ".join("'%s'" % a for a in CHAT), user2.port)
    r = subprocess.run(["sh", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    expect_line(user2, "user1: hello")


# ---------------------------------------------------------------------------
# late, unreachable and restarted peers


def test_late_real_peer_gets_queued_messages_in_order(procs):
    port = free_port()
    alice = procs.chat("alice", peers=[peer(port)])
    alice.send("one")
    alice.wait_stderr(r"cannot reach peer 127\.0\.0\.1:%d\b" % port)
    alice.send("two")
    alice.send("three")
    bob = procs.chat("bob", port=port)
    # No new message: the background retry must deliver them.
    expect_line(bob, "alice: one")
    expect_line(bob, "alice: two")
    expect_line(bob, "alice: three")
    alice.send("four")
    expect_line(bob, "alice: four")
    alice.send("exit")
    assert alice.wait_exit() == 0
    assert bob.out_lines == ["alice: one", "alice: two", "alice: three", "alice: four"]
    warnings = [l for l in alice.err_lines if "cannot reach peer" in l]
    assert len(warnings) == 1, alice.err_lines
    assert not any("never delivered" in l for l in alice.err_lines)


def test_late_fake_peer_gets_queued_messages_with_seq(procs, late_peer, fake_peer):
    port = free_port()
    ok = fake_peer()
    alice = procs.chat("alice", peers=[peer(port), peer(ok.port)])
    alice.send("m0")
    alice.wait_stderr(r"^chat: cannot reach peer 127\.0\.0\.1:%d: .*; will retry$" % port)
    alice.send("m1")
    alice.send("m2")
    # The reachable peer is not held up by the missing one.
    assert ok.wait_objects(3) == [chat_msg(i, "alice", "m%d" % i) for i in range(3)]
    f = late_peer(port)
    objs = f.wait_objects(3)
    assert objs == [chat_msg(i, "alice", "m%d" % i) for i in range(3)]
    assert f.data() == b"".join(wire(i, "alice", "m%d" % i) for i in range(3))
    assert f.connections() == 1
    assert len([l for l in alice.err_lines if "cannot reach peer" in l]) == 1


def test_unreachable_peer_at_exit(procs, fake_peer):
    dead = free_port()
    f = fake_peer()
    alice = procs.chat("alice", peers=[peer(dead), peer(f.port)])
    alice.send("x")
    alice.wait_stderr(r"cannot reach peer 127\.0\.0\.1:%d\b" % dead)
    alice.send("y")
    f.wait_objects(2)
    alice.send("exit")
    rc, took = timed_exit(alice)
    assert rc == 1, "a message never delivered makes the exit status 1"
    assert took < FAST_EXIT, "exit took %.1fs with an unreachable peer" % took
    lost = [l for l in alice.err_lines if "never delivered" in l]
    assert len(lost) == 1, alice.err_lines
    assert re.search(r"^chat: peer 127\.0\.0\.1:%d: 2 message\(s\) never delivered$" % dead,
                     lost[0]), lost[0]
    f.wait(f.all_closed, what="EOF")
    assert [o["message"] for o in f.objects()] == ["x", "y"]
    assert alice.out_lines == []


def test_queue_bounded_drops_oldest(procs, late_peer):
    """1000-message queue: typing 1005 lines for an absent peer keeps the
    newest 1000 and says so; they arrive in order when the peer appears."""
    port = free_port()
    alice = procs.chat("alice", peers=[peer(port)])
    alice.p.stdin.write(b"".join(b"q%d\n" % i for i in range(1005)))
    alice.p.stdin.flush()
    wait_err_anywhere(alice, r"cannot reach peer")
    wait_err_anywhere(alice, r"(?i)drop|discard|overflow|full")
    f = late_peer(port)
    alice.send("q1005")  # a new message retries at once
    objs = f.wait_objects(1000)
    f.wait(lambda: len(f.objects()) >= 1000 and f.objects()[-1]["seq"] == 1005,
           what="last message")
    objs = f.objects()
    seqs = [o["seq"] for o in objs]
    # The newest are kept, in order, the oldest dropped; exactly 1000 kept
    # (a message the sender holds in hand while retrying may add one).
    assert seqs == list(range(seqs[0], 1006)), seqs[:5]
    assert 1000 <= len(seqs) <= 1001, len(seqs)
    assert all(o["message"] == "q%d" % o["seq"] for o in objs)
    assert len([l for l in alice.err_lines if "cannot reach peer" in l]) == 1


@pytest.mark.parametrize("stop", ["exit", "kill"])
def test_restarted_peer_gets_next_message(procs, stop):
    bob = procs.chat("bob")
    alice = procs.chat("alice", peers=[peer(bob.port)])
    alice.send("one")
    expect_line(bob, "alice: one")
    if stop == "exit":
        bob.send("exit")
        assert bob.wait_exit() == 0
    else:
        bob.p.kill()
        bob.wait_exit()
    bob2 = procs.chat("bob", port=bob.port)
    alice.send("two")
    expect_line(bob2, "alice: two")
    alice.send("three")
    expect_line(bob2, "alice: three")
    assert bob2.out_lines == ["alice: two", "alice: three"]


def test_peer_closing_connection_gets_next_message(procs, fake_peer):
    """The peer drops alice's connection (as a restarted peer would): the
    next message goes out on a fresh connection and is not lost."""
    f = fake_peer()
    alice = procs.chat("alice", peers=[peer(f.port)])
    alice.send("one")
    f.wait_objects(1)
    with f._lock:
        c = f.conns[0][0]
    c.shutdown(socket.SHUT_RDWR)
    f.wait(f.all_closed, what="our close")
    alice.send("two")

    def second():
        with f._lock:
            return bytes(f.conns[1][1]) if len(f.conns) > 1 else b""

    f.wait(lambda: second().endswith(b"\n"), what="an object on a second connection")
    assert split_json(second()) == [chat_msg(1, "alice", "two")]
    assert f.objects() == [chat_msg(0, "alice", "one"), chat_msg(1, "alice", "two")]


# ---------------------------------------------------------------------------
# hostile input on a raw socket


def test_two_objects_without_separator(procs, sockets):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    s.sendall(raw_obj(0, "x", "a") + raw_obj(1, "x", "b"))
    expect_line(alice, "x: a")
    expect_line(alice, "x: b")
    # Separated by assorted whitespace, several in one send.
    s.sendall(b"  \r\n\t" + raw_obj(2, "x", "c") + b"\n\n " + raw_obj(3, "x", "d") + b"\r\n")
    expect_line(alice, "x: c")
    expect_line(alice, "x: d")
    assert alice.out_lines == ["x: a", "x: b", "x: c", "x: d"]


def test_python_style_peer_no_newline_then_close(procs, sockets):
    """A student's peer: json.dumps(msg) per send, no newline, then close."""
    alice = procs.chat("alice")
    s = sockets(alice.port)
    for i in range(3):
        s.sendall(raw_obj(i, "py", "m%d" % i))
        expect_line(alice, "py: m%d" % i)
    s2 = sockets(alice.port)
    s2.sendall(raw_obj(0, "py2", "bye"))
    s2.close()
    expect_line(alice, "py2: bye")


SPLIT_OBJ = ('{"seq": 7, "user": "sp", "message": "caf\u00e9 \U0001F600 end"}').encode()


@pytest.mark.parametrize("cut", [1, 10, 30, SPLIT_OBJ.index("\u00e9".encode()) + 1,
                                 SPLIT_OBJ.index("\U0001F600".encode()) + 2, len(SPLIT_OBJ) - 1],
                         ids=["after_brace", "in_key", "in_user", "inside_e_acute",
                              "inside_emoji", "before_last_brace"])
def test_object_split_across_two_sends(procs, sockets, cut):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    s.sendall(SPLIT_OBJ[:cut])
    # Let chat read the first part: a message on another connection is
    # printed meanwhile, and the half object is not.
    other = sockets(alice.port)
    other.sendall(raw_obj(0, "other", "sync") + b"\n")
    expect_line(alice, "other: sync")
    assert alice.out_lines == ["other: sync"]
    s.sendall(SPLIT_OBJ[cut:] + b"\n")
    expect_line(alice, "sp: caf\u00e9 \U0001F600 end")
    s.sendall(raw_obj(8, "sp", "after") + b"\n")
    expect_line(alice, "sp: after")


def test_object_split_byte_by_byte(procs, sockets):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(SPLIT_OBJ)):
        s.send(SPLIT_OBJ[i:i + 1])
    expect_line(alice, "sp: caf\u00e9 \U0001F600 end")


@pytest.mark.parametrize("garbage", [
    b"this is not json",
    b'{"seq": 0, "user" 12}',
    b"\x00\x01\xff\xfe binary",
    b"}}} ]]",
    b"nonsense",
], ids=["text", "malformed_object", "binary", "closers", "bad_literal"])
def test_garbage_then_newline_then_valid(procs, sockets, garbage):
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    s.sendall(garbage + b"\n" + raw_obj(0, "x", "ok") + b"\n")
    expect_line(alice, "x: ok")
    alice.wait_stderr(log_about(s))
    # The connection stays.
    s.sendall(raw_obj(1, "x", "still here") + b"\n")
    expect_line(alice, "x: still here")
    assert alice.out_lines == ["x: hello", "x: ok", "x: still here"]
    assert_safe_stdout(alice)


def test_garbage_without_newline_is_dropped(procs, sockets):
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    s.sendall(b"garbage with no newline")
    alice.wait_stderr(log_about(s))
    s.sendall(raw_obj(0, "x", "ok") + b"\n")
    expect_line(alice, "x: ok")


def test_one_mib_garbage_line_is_skipped(procs, sockets):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    s.sendall(b"z" * (1 << 20) + b"\n" + raw_obj(0, "x", "after big garbage") + b"\n")
    expect_line(alice, "x: after big garbage")
    assert alice.out_lines == ["x: after big garbage"]


def _send_in_background(s, data):
    def run():
        try:
            s.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_one_mib_object_closes_connection(procs, sockets):
    alice = procs.chat("alice")
    good = sockets(alice.port)
    good.sendall(raw_obj(0, "good", "before") + b"\n")
    expect_line(alice, "good: before")
    bad = synced(alice, sockets, "bad")
    big = b'{"seq": 0, "user": "big", "message": "' + b"a" * (1 << 20) + b'"}\n'
    t = _send_in_background(bad, big)
    alice.wait_stderr(log_about(bad))
    wait_eof(bad)
    t.join(TIMEOUT)
    assert alice.alive()
    good.sendall(raw_obj(1, "good", "after") + b"\n")
    expect_line(alice, "good: after")
    fresh = sockets(alice.port)
    fresh.sendall(raw_obj(0, "fresh", "hello") + b"\n")
    expect_line(alice, "fresh: hello")
    assert alice.out_lines == ["good: before", "bad: hello", "good: after", "fresh: hello"]


def test_object_just_over_64k_closes_connection(procs, sockets):
    alice = procs.chat("alice")
    bad = synced(alice, sockets, "bad")
    obj = b'{"seq": 0, "user": "big", "message": "' + b"a" * 65536 + b'"}\n'
    t = _send_in_background(bad, obj)
    alice.wait_stderr(log_about(bad))
    wait_eof(bad)
    t.join(TIMEOUT)
    assert alice.out_lines == ["bad: hello"]


def test_large_but_allowed_object_is_printed(procs, sockets):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    text = "b" * 60000
    s.sendall(raw_obj(0, "x", text) + b"\n")
    expect_line(alice, "x: " + text)


@pytest.mark.parametrize("nest", [b"[" * 100, b'{"a": ' * 50, b'{"seq": 0, "user": "x", "message": ' + b"[" * 30],
                         ids=["arrays", "objects", "inside_message"])
def test_deep_nesting_closes_connection(procs, sockets, nest):
    alice = procs.chat("alice")
    other = sockets(alice.port)
    bad = synced(alice, sockets, "bad")
    bad.sendall(nest)
    alice.wait_stderr(log_about(bad))
    wait_eof(bad)
    assert alice.alive()
    other.sendall(raw_obj(0, "other", "still printing") + b"\n")
    expect_line(alice, "other: still printing")


def test_shallow_nesting_is_only_skipped(procs, sockets):
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    s.sendall(b'{"seq": 0, "user": "x", "message": [[1]]}\n')
    alice.wait_stderr(log_about(s))
    s.sendall(raw_obj(1, "x", "stays") + b"\n")
    expect_line(alice, "x: stays")
    assert alice.out_lines == ["x: hello", "x: stays"]


ESCAPE_CASES = [
    (b'{"seq": 0, "user": "x", "message": "\\u001b[31mred\\u001b[0m"}', "x: \\x1b[31mred\\x1b[0m"),
    (b'{"seq": 1, "user": "x", "message": "\\u001b[31mraw"}', "x: \\x1b[31mraw"),
    (b'{"seq": 2, "user": "x", "message": "two\\nlines"}', "x: two\\nlines"),
    (b'{"seq": 3, "user": "x", "message": "tab\\there\\rcr"}', "x: tab\\there\\rcr"),
    (b'{"seq": 4, "user": "x", "message": "bell\\u0007del\\u007f"}', "x: bell\\x07del\\x7f"),
    (b'{"seq": 5, "user": "\\u001b]0;owned\\u0007", "message": "m"}', "\\x1b]0;owned\\x07: m"),
]


def test_escape_sequences_are_shown_harmlessly(procs, sockets):
    alice = procs.chat("alice")
    s = sockets(alice.port)
    for data, shown in ESCAPE_CASES:
        s.sendall(data + b"\n")
        expect_line(alice, shown)
    # C1 controls (CSI U+009B) must not reach the terminal raw either.
    s.sendall(b'{"seq": 6, "user": "x", "message": "c1 \\u009b31m end"}\n')
    m = alice.wait_stdout(r"^x: c1 .*31m end$")
    assert "\u009b" not in m.group(0)
    assert alice.out_lines == [shown for _, shown in ESCAPE_CASES] + [m.group(0)]
    assert_safe_stdout(alice)


def test_raw_stdout_bytes_have_no_escape(tmp_path, sockets):
    """Checks the bytes chat writes, below any decoding by the harness."""
    out_path = tmp_path / "stdout"
    with open(out_path, "wb") as out:
        p = subprocess.Popen(CHAT + ["alice", "0"], stdin=subprocess.PIPE, stdout=out,
                             stderr=subprocess.PIPE)
    try:
        lines = []
        t = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, b"")),
                             daemon=True)
        t.start()
        wait_until(lambda: any(b"listening on port" in l for l in lines), "ready line")
        port = int(re.search(rb"listening on port (\d+)",
                             [l for l in lines if b"listening on port" in l][0]).group(1))
        s = sockets(port)
        # Raw control bytes in a string are not JSON (test_strict_json_...);
        # escaped ones are, and are shown escaped.
        s.sendall(b'{"seq": 0, "user": "x\\u001b[1m", "message": "\\u001b[2J\\u001b[31m'
                  b'\\u009b\\u0007 \xc2\x9b end"}\n')
        wait_until(lambda: out_path.read_bytes().endswith(b"end\n"), "the message on stdout")
        raw = out_path.read_bytes()
        assert raw.startswith(b"x\\x1b[1m: \\x1b[2J\\x1b[31m"), raw
        assert raw.count(b"\n") == 1, raw
        for bad in (b"\x1b", b"\x07", b"\x9b"):
            assert bad not in raw, raw
        p.stdin.close()
        assert p.wait(TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_invalid_utf8_never_printed(procs, sockets):
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    s.sendall(b'{"seq": 0, "user": "x", "message": "bad \xff\xfe \xc3"}\n')
    alice.wait_stderr(log_about(s))
    s.sendall(b'{"seq": 1, "user": "\xe9vil", "message": "m"}\n')
    alice.wait_stderr(log_about(s))
    s.sendall(raw_obj(2, "x", "good") + b"\n")
    expect_line(alice, "x: good")
    assert alice.out_lines == ["x: hello", "x: good"]
    assert_safe_stdout(alice)


NOT_CHAT = [
    ('{"seq": 0, "user": "x"}', "missing_message"),
    ('{"user": "x", "message": "m"}', "missing_seq"),
    ('{"seq": 0, "message": "m"}', "missing_user"),
    ('{"seq": "0", "user": "x", "message": "m"}', "seq_string"),
    ('{"seq": -1, "user": "x", "message": "m"}', "negative_seq"),
    ('{"seq": 0, "user": 5, "message": "m"}', "user_number"),
    ('{"seq": 0, "user": "x", "message": null}', "message_null"),
    ('{"seq": 0, "user": "x", "message": ["m"]}', "message_array"),
    ('[{"seq": 0, "user": "x", "message": "m"}]', "array"),
    ('"just a string"', "string"),
    ("42", "number"),
    ("null", "null"),
    ("{}", "empty_object"),
    ('{"operation": "subscribe", "client": "127.0.0.1:5001"}', "subscribe"),
]


@pytest.mark.parametrize("value", [v for v, _ in NOT_CHAT], ids=[i for _, i in NOT_CHAT])
def test_json_that_is_not_a_chat_message_is_skipped(procs, sockets, value):
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    s.sendall(value.encode() + b"\n")
    alice.wait_stderr(log_about(s))
    s.sendall(raw_obj(0, "x", "next") + b"\n")
    expect_line(alice, "x: next")
    assert alice.out_lines == ["x: hello", "x: next"]


def test_all_non_chat_values_on_one_connection(procs, sockets):
    """A log line per skipped value (the first few at least: a flood limit
    per connection is fine), and the connection survives them all."""
    alice = procs.chat("alice")
    s = synced(alice, sockets, "x")
    for i, (value, _) in enumerate(NOT_CHAT):
        s.sendall(value.encode() + b"\n")
        if i < 5:
            alice.wait_stderr(log_about(s))
    s.sendall(raw_obj(0, "x", "survived") + b"\n")
    expect_line(alice, "x: survived")
    assert alice.out_lines == ["x: hello", "x: survived"]


def test_many_concurrent_senders_lines_not_mixed(procs, sockets):
    alice = procs.chat("alice")
    n_conns, n_msgs = 6, 150
    socks = [sockets(alice.port) for _ in range(n_conns)]

    def blast(i, s):
        data = b"".join(raw_obj(k, "s%d" % i, "%d %s" % (k, "y" * 700)) for k in range(n_msgs))
        s.sendall(data)

    threads = [threading.Thread(target=blast, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    lines = alice.stdout_lines(n_conns * n_msgs)
    assert len(lines) == n_conns * n_msgs
    last = {}
    for l in lines:
        m = re.match(r"^s(\d): (\d+) (y+)$", l)
        assert m and len(m.group(3)) == 700, "mangled line %r" % l[:100]
        who, k = m.group(1), int(m.group(2))
        assert k == last.get(who, -1) + 1, "out of order from s%s" % who
        last[who] = k


# ---------------------------------------------------------------------------
# listening


@pytest.mark.parametrize("occupant", ["chat", "ipv4_socket"])
def test_port_in_use(procs, occupant):
    holder = None
    if occupant == "chat":
        first = procs.chat("first")
        port = first.port
    else:
        holder = socket.socket()
        holder.bind(("0.0.0.0", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
    try:
        second = procs.chat("second", port=port, wait=False)
        assert second.wait_exit() == 1
        assert "chat: cannot listen on port %d: Address already in use" % port in second.err_lines, \
            second.err_lines
        assert second.out_lines == []
        assert not any("listening on" in l for l in second.err_lines)
    finally:
        if holder:
            holder.close()


def test_ready_line_names_user_and_port(procs):
    port = free_port()
    alice = procs.chat("alice", port=port)
    assert alice.port == port
    assert "chat: alice listening on port %d" % port in alice.err_lines
    alice.close_stdin()
    assert alice.wait_exit() == 0


# ---------------------------------------------------------------------------
# command line


BAD_ARGS = [
    ([], "no_args"),
    (["alice"], "no_port"),
    (["alice", "70000"], "port_70000"),
    (["alice", "65536"], "port_65536"),
    (["alice", "abc"], "port_abc"),
    (["alice", "-1"], "port_negative"),
    (["alice", ""], "port_empty"),
    (["alice", "50x"], "port_trailing_junk"),
    (["", "0"], "empty_name"),
    (["a\x01b", "0"], "name_ctrl_01"),
    (["a\x1b[31mb", "0"], "name_esc"),
    (["a\nb", "0"], "name_newline"),
    (["a\tb", "0"], "name_tab"),
    (["x" * 65, "0"], "name_65_bytes"),
    (["\u00e9" * 33, "0"], "name_66_utf8_bytes"),
    (["alice", "0", "127.0.0.1"], "peer_no_port"),
    (["alice", "0", "[::1"], "peer_unclosed_bracket"),
    (["alice", "0", "[::1]"], "peer_v6_no_port"),
    (["alice", "0", "host:0"], "peer_port_0"),
    (["alice", "0", "127.0.0.1:0"], "peer_ip_port_0"),
    (["alice", "0", "127.0.0.1:70000"], "peer_port_70000"),
    (["alice", "0", "127.0.0.1:abc"], "peer_port_abc"),
    (["alice", "0", "127.0.0.1:"], "peer_port_empty"),
    (["alice", "0", "127.0.0.1:5002", "bogus"], "second_peer_bad"),
    (["--bogus", "alice", "0"], "unknown_option"),
]


@pytest.mark.parametrize("args", [a for a, _ in BAD_ARGS], ids=[i for _, i in BAD_ARGS])
def test_bad_arguments_exit_2_with_usage(args):
    r = run_chat(args, timeout=5)
    err = r.stderr.decode("utf-8", "replace").splitlines()
    assert r.returncode == 2, (r.returncode, err)
    assert any(l.startswith("usage:") for l in err), err
    if args:
        assert any(l.startswith("chat: ") for l in err), "no one-line reason: %r" % err
    assert not any("listening" in l for l in err), err
    assert r.stdout == b""


@pytest.mark.parametrize("name", ["x" * 64, "\u00e9" * 32, "\u00e1lice \U0001F431", "a b"],
                         ids=["64_ascii", "64_utf8_bytes", "emoji", "space"])
def test_valid_names_accepted(procs, name):
    p = procs.chat(name)
    p.close_stdin()
    assert p.wait_exit() == 0


@pytest.mark.parametrize("opt", ["--help", "-h"])
def test_help(opt):
    r = run_chat([opt], timeout=5)
    assert r.returncode == 0
    out = r.stdout.decode().splitlines()
    assert any(l.startswith("usage:") for l in out), out


def test_version():
    r = run_chat(["--version"], timeout=5)
    assert r.returncode == 0
    assert re.match(r"^chat \d+\.\d+(\.\d+)?\b", r.stdout.decode()), r.stdout


# ---------------------------------------------------------------------------
# addresses


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_peer(procs, fake_peer):
    f = fake_peer(host="::1", family=socket.AF_INET6)
    bob = procs.chat("bob")
    alice = procs.chat("alice", peers=["[::1]:%d" % f.port, "[::1]:%d" % bob.port])
    alice.send("over v6")
    assert f.wait_objects(1) == [chat_msg(0, "alice", "over v6")]
    expect_line(bob, "alice: over v6")


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_listens_dual_stack(procs, sockets):
    alice = procs.chat("alice")
    s6 = sockets(alice.port, host="::1")
    s6.sendall(raw_obj(0, "v6", "hi") + b"\n")
    expect_line(alice, "v6: hi")
    s4 = sockets(alice.port, host="127.0.0.1")
    s4.sendall(raw_obj(0, "v4", "hi") + b"\n")
    expect_line(alice, "v4: hi")


def test_localhost_peer(procs, fake_peer):
    f = fake_peer()
    alice = procs.chat("alice", peers=["localhost:%d" % f.port])
    alice.send("by name")
    assert f.wait_objects(1) == [chat_msg(0, "alice", "by name")]


# ---------------------------------------------------------------------------
# stdout hygiene


@pytest.mark.parametrize("opts", [[], ["-v"]], ids=["default", "verbose"])
def test_stdout_carries_only_messages(procs, fake_peer, sockets, opts):
    """A session full of diagnostics: stdout has exactly the chat lines."""
    dead = free_port()
    f = fake_peer()
    alice = ready(procs.start(CHAT + opts + ["alice", "0", peer(dead), peer(f.port)]))
    s = sockets(alice.port)
    s.sendall(b"garbage\n" + b'{"seq": -1, "user": "x", "message": "m"}\n'
              + raw_obj(0, "bob", "one") + b"\n")
    expect_line(alice, "bob: one")
    alice.send("typed")
    f.wait_objects(1)
    big = sockets(alice.port)
    _send_in_background(big, b'{"seq": 0, "user": "big", "message": "' + b"a" * 100000 + b'"}')
    wait_eof(big)
    s.sendall(b"[" * 40)
    wait_eof(s)
    s2 = sockets(alice.port)
    s2.sendall(raw_obj(1, "bob", "two") + b"\n")
    expect_line(alice, "bob: two")
    alice.send("exit")
    assert alice.wait_exit() == 1, "the dead peer never got 'typed'"
    assert alice.out_lines == ["bob: one", "bob: two"]
    assert_stderr_prefixed(alice)
    assert any("never delivered" in l for l in alice.err_lines)
