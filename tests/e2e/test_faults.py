"""Fault injection against the real binaries (issue 4, "Faults and hostile
peers").

Every test sets a program up, takes its figures (threads, RSS, open file
descriptors, read from /proc), injects one fault, and then checks that:

  - the program is still running and serving: a fresh subscriber on a
    fresh connection gets a fresh message (or, for `chat`, a peer gets a
    fresh line);
  - every message the protocol could deliver was delivered, in order;
  - threads and descriptors come back to exactly where they were (waited
    for with a bounded poll, since finished threads are reaped
    asynchronously) and RSS comes back near where it was.

The figures are printed (see them with `pytest -s`) as lines starting with
"FIGURES", and docs/RELIABILITY.md records them.

Nothing sleeps for a fixed time: tests wait for events (a log line, bytes
or EOF on a test socket, a count in /proc) with deadlines.  The only timed
pauses are in polling loops and, by necessity, the trickle of
test_half_object_trickled_slowly, whose fault *is* a slow sender.

The helpers that test_relay.py also has are copied here rather than
imported (importing a test module would collect its tests twice).
"""

import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections import namedtuple

import pytest

from conftest import CHAT, CHAT5, SERVER5, TIMEOUT, connect
from relay_helpers import (  # noqa: F401 (closing is a fixture)
    _lines, chat_obj, closing, count_lines, ctl_obj, dump_proc, evicted_rx, find_line, loop,
    send_quietly, subscribed_rx, unsubscribed_rx, wait_count, wait_eof, wait_line, wait_until, wire,
)

# ---------------------------------------------------------------------------
# Programs, with output pumps that keep up with 100,000 lines
# ---------------------------------------------------------------------------


class Proc:
    """A running program whose stdout and stderr are collected as lines.

    Like conftest.Proc, but the pumps read in large chunks (conftest's
    readline on an unbuffered pipe reads one byte per system call, which
    cannot keep up with a flood)."""

    def __init__(self, argv, stdin=subprocess.PIPE):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.pid = self.p.pid
        self.out_lines = []
        self.err_lines = []
        self._out_seen = 0
        self._err_seen = 0
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = None

    def _pump(self, stream, lines):
        fd = stream.fileno()
        rest = b""
        while True:
            try:
                b = os.read(fd, 1 << 16)
            except OSError:
                b = b""
            if not b:
                break
            parts = (rest + b).split(b"\n")
            rest = parts.pop()
            if parts:
                decoded = [x.decode("utf-8", "replace") for x in parts]
                with self._lock:
                    lines.extend(decoded)
        if rest:
            with self._lock:
                lines.append(rest.decode("utf-8", "replace"))
        stream.close()

    def _wait_for(self, lines, seen_attr, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while True:
            with self._lock:
                start = getattr(self, seen_attr)
                for i in range(start, len(lines)):
                    m = rx.search(lines[i])
                    if m:
                        setattr(self, seen_attr, i + 1)
                        return m
            if time.monotonic() > deadline:
                raise AssertionError("%s: no line matching %r within %ss\nstdout: %r\nstderr: %r"
                                     % (self.argv[0], pattern, timeout or TIMEOUT,
                                        self.out_lines[-20:], self.err_lines[-40:]))
            time.sleep(0.01)

    def wait_stderr(self, pattern, timeout=None):
        return self._wait_for(self.err_lines, "_err_seen", pattern, timeout)

    def wait_stdout(self, pattern, timeout=None):
        return self._wait_for(self.out_lines, "_out_seen", pattern, timeout)

    def nout(self):
        with self._lock:
            return len(self.out_lines)

    def stdout(self):
        with self._lock:
            return list(self.out_lines)

    def stdout_lines(self, n, timeout=None):
        """Waits until at least n stdout lines arrived; returns all of them."""
        wait_until(lambda: self.nout() >= n, timeout, "%d stdout lines from %s" % (n, self.argv[0]),
                   lambda: "got %d: %r\nstderr: %r" % (self.nout(), self.stdout()[-10:], self.err_lines[-20:]))
        return self.stdout()

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def send_lines(self, lines):
        self.p.stdin.write("".join(l + "\n" for l in lines).encode())
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def wait_exit(self, timeout=None):
        rc = self.p.wait(timeout=timeout or TIMEOUT)
        for t in self._readers:
            t.join(timeout=TIMEOUT)
        return rc

    def signal(self, sig):
        self.p.send_signal(sig)

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        try:
            if self.p.stdin:
                self.p.stdin.close()
        except OSError:
            pass


class Procs:
    def __init__(self):
        self.all = []

    def start(self, argv, **kw):
        p = Proc(argv, **kw)
        self.all.append(p)
        return p

    def server(self, *args, port=0):
        p = self.start(SERVER5 + list(args) + [str(port)])
        p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
        return p

    def chat5(self, name, server_port, server=None):
        p = self.start(CHAT5 + [name, "0", "127.0.0.1:%d" % server_port])
        p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
        p.wait_stderr(r"subscribed")
        if server is not None:
            wait_line(server, subscribed_rx(p.port))
        return p

    def chat(self, name, port=0, peers=()):
        p = self.start(CHAT + [name, str(port)] + list(peers))
        p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
        return p

    def cleanup(self):
        """Kills what is left; returns the sanitizer reports any of them wrote."""
        reports = []
        for p in self.all:
            p.kill()
            for t in p._readers:
                t.join(timeout=TIMEOUT)
            for line in _lines(p):
                if SANITIZER_REPORT.search(line):
                    reports.append("%s: %s" % (p.argv[0], line))
        return reports


# A sanitizer build reports a problem on stderr; a test that saw one fails.
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error:")


@pytest.fixture
def fprocs():
    ps = Procs()
    yield ps
    reports = ps.cleanup()
    assert not reports, "sanitizer reports:\n" + "\n".join(reports[:20])


# ---------------------------------------------------------------------------
# Waiting, log lines, wire format (as in test_relay.py)
# ---------------------------------------------------------------------------


def still_open(sock):
    """True when the other side has not closed sock (nothing to read, no EOF)."""
    saved = sock.gettimeout()
    sock.settimeout(0)
    try:
        b = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(saved)
    return len(b) > 0


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        pytest.skip("open-file limit %d (hard limit too) is below the %d this test needs" % (soft, need))


# ---------------------------------------------------------------------------
# Test subscribers
# ---------------------------------------------------------------------------


class FastSub:
    """A subscriber's listening socket.  Each connection the server makes to
    it is handled by its own thread according to mode:

      "read"   read everything as fast as it comes (64 KiB recv), keeping
               the bytes and a running count of lines;
      "stall"  accept and never read (small receive buffer);
      "close"  accept and close at once.
    """

    def __init__(self, mode="read"):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if mode == "stall":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []     # [socket, bytearray, eof, newlines]
        self.accepted = 0
        self._lock = threading.Lock()
        self._stop = False
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            entry = [c, bytearray(), False, 0]
            with self._lock:
                self.accepted += 1
                self.conns.append(entry)
            if self.mode == "close":
                c.close()
                entry[2] = True
            elif self.mode == "read":
                threading.Thread(target=self._read, args=(entry,), daemon=True).start()

    def _read(self, entry):
        c = entry[0]
        while True:
            try:
                b = c.recv(1 << 16)
            except OSError:
                b = b""
            with self._lock:
                if not b:
                    entry[2] = True
                    return
                entry[1].extend(b)
                entry[3] += b.count(b"\n")

    def count(self):
        with self._lock:
            return sum(e[3] for e in self.conns)

    def data(self):
        with self._lock:
            return b"".join(bytes(e[1]) for e in self.conns)

    def objects(self):
        return [json.loads(l) for l in self.data().split(b"\n") if l.strip()]

    def wait_count(self, n, timeout=None):
        wait_until(lambda: self.count() >= n, timeout, "%d lines at test subscriber %d" % (n, self.port),
                   lambda: "got %d: %r" % (self.count(), self.data()[-500:]))

    def all_closed(self):
        with self._lock:
            return bool(self.conns) and all(e[2] for e in self.conns)

    def close(self):
        self._stop = True
        self.sock.close()
        with self._lock:
            for e in self.conns:
                try:
                    e[0].close()
                except OSError:
                    pass


def subscribe_by_hand(srv, listen_port, closing, conn=None):
    """Subscribes listen_port over conn (or a new connection) and waits for
    the server's log line; returns the subscribing connection."""
    c = conn or closing(connect(srv.port))
    c.sendall(wire(ctl_obj(loop(listen_port))))
    wait_line(srv, subscribed_rx(listen_port))
    return c


# ---------------------------------------------------------------------------
# /proc figures
# ---------------------------------------------------------------------------

Stats = namedtuple("Stats", "threads rss_kb fds")

# RSS may legitimately stay above where it started: allocator arenas of
# threads that have ended, ring buffers touched once.  Sanitizer builds keep
# freed memory in quarantine (ASan) or shadow memory (TSan), so for them RSS
# is reported, not compared.
RSS_SLACK_KB = int(os.environ.get("FAULT_RSS_SLACK_KB", str(8 * 1024)))


def stats(pid):
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return Stats(threads, rss, fds)


def fd_targets(pid):
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        kind = t.split(":")[0] if ":" in t else t
        out[kind] = out.get(kind, 0) + 1
    return out


_sanitizer_cache = {}


def sanitizer(pid):
    """'asan', 'tsan', 'msan' or None: whether the process runs a sanitizer
    runtime (shared, as gcc links it, or static, as clang does)."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        exe = None
    if exe in _sanitizer_cache:
        return _sanitizer_cache[exe]
    found = None
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
        for name in ("asan", "tsan", "msan"):
            if "lib%s" % name in maps:
                found = name
    except OSError:
        pass
    if found is None and exe:
        try:
            with open(exe, "rb") as f:
                blob = f.read()
            for name in ("asan", "tsan", "msan"):
                if b"__%s_init" % name.encode() in blob:
                    found = name
        except OSError:
            pass
    if "valgrind" in " ".join(SERVER5 + CHAT5 + CHAT):
        found = found or "valgrind"
    _sanitizer_cache[exe] = found
    return found


def wait_back(proc, base, label, timeout=None, rss_slack_kb=None):
    """Waits (bounded) until proc's threads and descriptors are exactly
    back to base, then checks RSS; returns the figures after."""
    deadline = time.monotonic() + (timeout or TIMEOUT)
    while True:
        now = stats(proc.pid)
        if now.threads == base.threads and now.fds == base.fds:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                "%s: not back to where it started within %ss: before %r, now %r; fds now %r\nstderr: %r"
                % (label, timeout or TIMEOUT, base, now, fd_targets(proc.pid), _lines(proc)[-30:]))
        time.sleep(0.02)
    slack = RSS_SLACK_KB if rss_slack_kb is None else rss_slack_kb
    if sanitizer(proc.pid) is None:
        assert now.rss_kb <= base.rss_kb + slack, (
            "%s: RSS grew from %d KiB to %d KiB (slack %d KiB)" % (label, base.rss_kb, now.rss_kb, slack))
    return now


def figures(test, **kv):
    """One line of figures for the test output (pytest -s) and the docs."""
    parts = []
    for k, v in kv.items():
        if isinstance(v, Stats):
            v = "threads=%d rss_kb=%d fds=%d" % v
        parts.append("%s: %s" % (k, v))
    print("\nFIGURES %s | %s" % (test, " | ".join(parts)), flush=True)


def assert_serving(srv, closing, readers=()):
    """A fresh subscriber on a fresh connection gets a fresh message from a
    fresh connection (and so do the chat5 processes in readers); then the
    fresh subscriber leaves and its connections close."""
    fresh = closing(FastSub())
    c = subscribe_by_hand(srv, fresh.port, closing)
    tag = "fresh message %d" % int(time.monotonic() * 1e6)
    r = connect(srv.port)
    r.sendall(wire(chat_obj(0, "probe", tag)))
    fresh.wait_count(1)
    assert fresh.objects() == [chat_obj(0, "probe", tag)]
    for p in readers:
        p.wait_stdout(r"^probe: %s$" % re.escape(tag))
    c.sendall(wire(ctl_obj(loop(fresh.port), "unsubscribe")))
    wait_line(srv, unsubscribed_rx(fresh.port))
    wait_until(fresh.all_closed, what="the server closing the fresh subscriber's connection")
    r.close()
    c.close()
    fresh.close()


# ---------------------------------------------------------------------------
# kill -9 mid-stream
# ---------------------------------------------------------------------------


def test_chat5_subscriber_killed_mid_stream(fprocs, closing):
    srv = fprocs.server()
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    alice = fprocs.chat5("alice", srv.port, server=srv)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    alice.send("warm-up")
    bob.wait_stdout(r"^alice: warm-up$")
    fp.wait_count(1)
    before = stats(srv.pid)

    carol = fprocs.chat5("carol", srv.port, server=srv)
    n_batches, per, kill_after = 20, 100, 5
    sent = []
    for b in range(n_batches):
        lines = ["flood %04d" % i for i in range(b * per, (b + 1) * per)]
        sent += lines
        alice.send_lines(lines)
        if b == kill_after:
            os.kill(carol.pid, signal.SIGKILL)   # while alice keeps sending
        else:
            n = 1 + len(sent)
            bob.stdout_lines(n)
    carol.wait_exit()
    carol_got = carol.stdout()
    wait_line(srv, evicted_rx(carol.port))

    want = ["alice: " + l for l in sent]
    assert bob.stdout_lines(1 + len(sent)) == ["alice: warm-up"] + want
    fp.wait_count(1 + len(sent))
    assert fp.objects() == [chat_obj(i, "alice", m) for i, m in enumerate(["warm-up"] + sent)]
    # carol got an in-order prefix, then died mid-stream.
    assert carol_got == want[:len(carol_got)]
    assert len(carol_got) < len(sent)
    assert count_lines(srv, r"evicted") == 1
    assert srv.alive() and alice.alive() and bob.alive()

    assert_serving(srv, closing, readers=[alice, bob])
    after = wait_back(srv, before, "server5")
    figures("chat5-subscriber-kill-9", connections_held=4, messages_sent=len(sent),
            received="bob=%d fake=%d carol(killed)=%d" % (len(sent), len(sent), len(carol_got)),
            evicted=1, server_before=before, server_after=after, sanitizer=sanitizer(srv.pid))


def test_chat_peer_killed_mid_stream(fprocs):
    bob = fprocs.chat("bob")
    carol = fprocs.chat("carol")
    dave = fprocs.chat("dave")
    alice = fprocs.chat("alice", peers=[loop(bob.port), loop(carol.port), loop(dave.port)])
    alice.send("warm-up")
    for p in (bob, carol, dave):
        p.wait_stdout(r"^alice: warm-up$")
    before = stats(alice.pid)

    n_batches, per, kill_after = 10, 100, 3
    sent = []
    for b in range(n_batches):
        lines = ["p2p %04d" % i for i in range(b * per, (b + 1) * per)]
        sent += lines
        alice.send_lines(lines)
        if b == kill_after:
            os.kill(dave.pid, signal.SIGKILL)
        else:
            bob.stdout_lines(1 + len(sent))
            carol.stdout_lines(1 + len(sent))
    dave.wait_exit()
    dave_got = dave.stdout()[1:]
    # alice warns about dave and goes on.
    wait_line(alice, r"peer 127\.0\.0\.1:%d\b" % dave.port)
    want = ["alice: " + l for l in sent]
    assert bob.stdout_lines(1 + len(sent))[1:] == want
    assert carol.stdout_lines(1 + len(sent))[1:] == want
    assert alice.alive()
    assert dave_got == want[:len(dave_got)] and len(dave_got) < len(sent)

    # dave comes back on the same port: what alice kept for him arrives,
    # in order, ahead of the next message.
    dave2 = fprocs.chat("dave", port=dave.port)
    alice.send("after restart")
    for p in (bob, carol):
        p.wait_stdout(r"^alice: after restart$")
    dave2.wait_stdout(r"^alice: after restart$", timeout=max(TIMEOUT, 15))
    all_sent = want + ["alice: after restart"]
    got2 = dave2.stdout()
    k = len(all_sent) - len(got2)
    assert got2 == all_sent[k:], "dave2 did not get a contiguous tail: %r" % got2[:5]
    assert k >= len(dave_got), "dave2 got messages dave had already printed"
    lost = k - len(dave_got)

    after = wait_back(alice, before, "chat (sender)")
    figures("chat-peer-kill-9", peers=3, messages_sent=len(sent) + 1,
            received="bob=%d carol=%d dave(killed)=%d dave(restarted)=%d" %
                     (len(sent) + 1, len(sent) + 1, len(dave_got), len(got2)),
            lost_in_flight_at_kill=lost,
            alice_warnings=count_lines(alice, r"127\.0\.0\.1:%d" % dave.port),
            alice_before=before, alice_after=after, sanitizer=sanitizer(alice.pid))


# ---------------------------------------------------------------------------
# Server killed and restarted
# ---------------------------------------------------------------------------


def test_server_killed_and_restarted_under_running_chat5s(fprocs, closing):
    srv = fprocs.server()
    port = srv.port
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    alice = fprocs.chat5("alice", port, server=srv)
    bob = fprocs.chat5("bob", port, server=srv)
    alice.send("before")
    bob.wait_stdout(r"^alice: before$")
    bob.send("bob before")
    alice.wait_stdout(r"^bob: bob before$")
    fp.wait_count(2)
    srv_before, a_before, b_before = stats(srv.pid), stats(alice.pid), stats(bob.pid)

    a_seq, b_seq = 1, 1
    for attempt in range(3):
        srv.kill()                       # SIGKILL
        outages = attempt + 1
        wait_count(alice, r"lost connection", outages)
        wait_count(bob, r"lost connection", outages)
        a_typed = ["alice typed while down %d.%d" % (attempt, i) for i in range(5)]
        b_typed = ["bob typed while down %d.%d" % (attempt, i) for i in range(3)]
        a_first, b_first = a_seq, b_seq
        alice.send_lines(a_typed)
        bob.send_lines(b_typed)
        a_seq += len(a_typed)
        b_seq += len(b_typed)
        a_out, b_out = alice.nout(), bob.nout()

        srv = fprocs.server(port=port)
        fp2 = closing(FastSub())
        subscribe_by_hand(srv, fp2.port, closing)
        i_fp = find_line(srv, subscribed_rx(fp2.port))
        i_a = wait_line(srv, subscribed_rx(alice.port), timeout=30)
        i_b = wait_line(srv, subscribed_rx(bob.port), timeout=30)
        if i_fp < i_a and i_fp < i_b:
            break
        # A chat5 came back before the test's subscriber could: what it
        # sent may rightly have gone to nobody.  Take the server down again.
    else:
        pytest.fail("the chat5s always resubscribed before the test could: %r" % srv.err_lines)

    # The test's subscriber was there first: it gets everything typed meanwhile.
    fp2.wait_count(len(a_typed) + len(b_typed), timeout=15)
    objs = fp2.objects()
    assert [o for o in objs if o["user"] == "alice"] == \
        [chat_obj(a_first + i, "alice", m) for i, m in enumerate(a_typed)]
    assert [o for o in objs if o["user"] == "bob"] == \
        [chat_obj(b_first + i, "bob", m) for i, m in enumerate(b_typed)]

    # Each chat5 gets what the other typed meanwhile: all of it when it was
    # subscribed again first, else whatever was relayed after it was (a
    # contiguous tail); a sentinel behind it closes the stream.
    alice.send("alice after")
    bob.send("bob after")
    bob.wait_stdout(r"^alice: alice after$", timeout=15)
    alice.wait_stdout(r"^bob: bob after$", timeout=15)
    got_b = bob.stdout()[b_out:]
    got_a = alice.stdout()[a_out:]
    exp_b = ["alice: " + l for l in a_typed + ["alice after"]]
    exp_a = ["bob: " + l for l in b_typed + ["bob after"]]
    assert got_b == exp_b[len(exp_b) - len(got_b):]
    assert got_a == exp_a[len(exp_a) - len(got_a):]
    if i_b < i_a:
        assert got_b == exp_b
    if i_a < i_b:
        assert got_a == exp_a
    assert count_lines(alice, r"lost connection") == outages
    assert count_lines(bob, r"lost connection") == outages
    fp2.wait_count(len(a_typed) + len(b_typed) + 2)

    assert_serving(srv, closing, readers=[alice, bob])
    srv_after = wait_back(srv, srv_before, "server5 (restarted, same subscribers)")
    a_after = wait_back(alice, a_before, "chat5 alice")
    b_after = wait_back(bob, b_before, "chat5 bob")
    figures("server5-kill-9-restart", outages=outages, chat5s=2,
            typed_while_down="alice=%d bob=%d" % (len(a_typed), len(b_typed)),
            received="fake=%d/%d bob=%d/%d alice=%d/%d" % (
                len(objs), len(a_typed) + len(b_typed), len(got_b) - 1, len(a_typed),
                len(got_a) - 1, len(b_typed)),
            server_before_kill=srv_before, server_restarted=srv_after,
            alice_before=a_before, alice_after=a_after, bob_before=b_before, bob_after=b_after,
            sanitizer=sanitizer(srv.pid))


# ---------------------------------------------------------------------------
# Half an object, then silence
# ---------------------------------------------------------------------------

HALF = b'{"seq": 0, "user": "half", "message": "never fini'


def test_half_object_then_silence_is_closed_after_partial_timeout(fprocs, closing):
    short = fprocs.server("--partial-timeout", "2")
    default = fprocs.server()        # 30 s: would keep the thread far longer
    subs, raws, befores = {}, {}, {}
    for s in (short, default):
        subs[s] = closing(FastSub())
        subscribe_by_hand(s, subs[s].port, closing)
        raws[s] = closing(connect(s.port))
        raws[s].sendall(wire(chat_obj(0, "raw", "warm-up")))
        subs[s].wait_count(1)
        befores[s] = stats(s.pid)

    h_short = closing(connect(short.port))
    h_default = closing(connect(default.port))
    t0 = time.monotonic()
    h_short.sendall(HALF)
    h_default.sendall(HALF)
    for s in (short, default):
        wait_until(lambda: stats(s.pid).threads == befores[s].threads + 1,
                   what="a reader thread for the half-object connection")
    held = stats(short.pid)
    # Everyone else is served meanwhile.
    for s in (short, default):
        raws[s].sendall(wire(chat_obj(1, "raw", "meanwhile")))
        subs[s].wait_count(2)

    assert wait_eof(h_short, timeout=2 + TIMEOUT) == b""
    closed_after = time.monotonic() - t0
    wait_line(short, r"incomplete.*clos")
    assert closed_after >= 1.9, "closed after %.2f s, before the 2 s partial timeout" % closed_after
    short_after = wait_back(short, befores[short], "server5 --partial-timeout 2")

    # The default server still holds its half-object connection and thread.
    assert still_open(h_default)
    still = stats(default.pid)
    assert still.threads == befores[default].threads + 1
    assert find_line(default, r"incomplete") is None
    waited = time.monotonic() - t0
    h_default.close()
    default_after = wait_back(default, befores[default], "server5 (default partial timeout)")

    # Nothing of the half object was relayed, everything else was.
    for s in (short, default):
        raws[s].sendall(wire(chat_obj(2, "raw", "after")))
        subs[s].wait_count(3)
        assert subs[s].objects() == [chat_obj(0, "raw", "warm-up"), chat_obj(1, "raw", "meanwhile"),
                                     chat_obj(2, "raw", "after")]
        assert_serving(s, closing)
    figures("half-object-silent", partial_timeout_s=2, closed_after_s="%.2f" % closed_after,
            short_before=befores[short], short_holding=held, short_after=short_after,
            default_still_holding_after_s="%.2f" % waited, default_holding=still,
            default_after_close=default_after, sanitizer=sanitizer(short.pid))


def test_half_object_trickled_slowly_is_still_closed(fprocs, closing):
    """The partial timeout bounds how long one object may stay incomplete,
    not only the silence between two bytes: a peer that trickles a byte
    every half second into a never-ending string must not hold a thread
    for longer than the timeout (plus slack) either."""
    limit = 2
    srv = fprocs.server("--partial-timeout", str(limit))
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    before = stats(srv.pid)

    h = closing(connect(srv.port))
    h.settimeout(0.5)
    t0 = time.monotonic()
    h.sendall(b'{"seq": 0, "user": "slow", "message": "')
    trickled, closed = 0, False
    deadline = t0 + limit + 4
    while time.monotonic() < deadline:
        try:
            b = h.recv(100)
            if not b:
                closed = True
                break
        except socket.timeout:
            if not send_quietly(h, b"x"):
                closed = True
                break
            trickled += 1
        except OSError:
            closed = True
            break
    elapsed = time.monotonic() - t0
    holding = stats(srv.pid)
    figures("half-object-trickled", partial_timeout_s=limit, bytes_trickled=trickled,
            incomplete_for_s="%.2f" % elapsed, closed_by_server=closed,
            server_before=before, server_while_trickling=holding)
    assert closed, ("server5 --partial-timeout %d kept a connection whose object stayed incomplete for "
                    "%.1f s (one byte every 0.5 s); its reader thread is still there (threads %d -> %d)"
                    % (limit, elapsed, before.threads, holding.threads))
    wait_line(srv, r"incomplete.*clos")
    h.close()
    assert_serving(srv, closing)
    wait_back(srv, before, "server5")


# ---------------------------------------------------------------------------
# 2,000 connections at once
# ---------------------------------------------------------------------------


def open_many(port, n, timeout):
    """n non-blocking connects at once; waits until every one completed."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        assert err in (0, 115), os.strerror(err)  # EINPROGRESS
        socks.append(s)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    pending = len(socks)
    deadline = time.monotonic() + timeout
    while pending:
        assert time.monotonic() < deadline, "%d of %d connects still pending" % (pending, n)
        for key, _ in sel.select(0.2):
            sel.unregister(key.fileobj)
            pending -= 1
            err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            assert err == 0, "connect failed: %s" % os.strerror(err)
    sel.close()
    return socks


def refusals_accounted(srv, max_conns):
    """Connections closed for want of room that the server's log lines
    account for: one for a line naming a refused peer ("IP:PORT: refused:
    1000 connections open already") or a silent one closed to make room for
    a newcomer ("IP:PORT: closed to make room for ..."), plus N for any
    "N more" a summary line reports."""
    one = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+: (refused: %d connections open already|closed to make room)"
                     % max_conns)
    more = re.compile(r"(\d+) more")
    n = 0
    for line in _lines(srv):
        if "refused" not in line and "make room" not in line:
            continue
        if one.search(line):
            n += 1
        m = more.search(line)
        if m:
            n += int(m.group(1))
    return n


def hold_many(srv, n_conns, max_conns, standing, alice, bob, fp, round_no):
    """One round: n_conns connections at once; checks that the server holds
    exactly as many as its limit allows and closes the rest, serves the real
    subscribers and every held connection meanwhile; closes them all.
    Returns the round's figures."""
    before_threads = stats(srv.pid).threads
    refused_before = count_lines(srv, r"refused|make room")
    fp_before, bob_before = fp.count(), bob.nout()
    t0 = time.monotonic()
    socks = open_many(srv.port, n_conns, timeout=max(TIMEOUT, 30))
    try:
        connected_in = time.monotonic() - t0
        want_held = max_conns - standing
        want_refused = n_conns - want_held
        # The server closes every one past the limit; the others stay open.
        closed = set()
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        resets = 0
        deadline = time.monotonic() + max(TIMEOUT, 30)

        def refused_lines():
            return count_lines(srv, r"refused|make room") - refused_before

        while len(closed) < want_refused:
            assert time.monotonic() < deadline, \
                "closed %d, refused lines %d, wanted %d" % (len(closed), refused_lines(), want_refused)
            for key, _ in sel.select(0.05):
                try:
                    b = key.fileobj.recv(4096)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    resets += 1
                    b = b""
                assert b == b"", "the server wrote %r on a refused connection" % b
                sel.unregister(key.fileobj)
                closed.add(key.fileobj)
        sel.close()
        held = [s for s in socks if s not in closed]
        assert len(closed) == want_refused and len(held) == want_held
        wait_until(lambda: stats(srv.pid).threads == before_threads + want_held,
                   what="a reader thread per held connection",
                   dump=lambda: "threads %d, before %d" % (stats(srv.pid).threads, before_threads))
        holding = stats(srv.pid)
        # Refusals are logged at most once a second, a line carrying the
        # count of those refused since the one before; never more than
        # were made.  (That all of them get logged is checked at the end.)
        if round_no == 1:
            wait_line(srv, r"refused: %d connections open already|closed to make room" % max_conns)
        accounted = refusals_accounted(srv, max_conns)
        assert accounted <= round_no * want_refused, \
            "refusals logged or counted: %d after round %d of %d refusals" % (accounted, round_no, want_refused)
        assert all(still_open(s) for s in held)

        # The real subscribers are served meanwhile...
        line = "while %d are held, round %d" % (n_conns, round_no)
        alice.send(line)
        bob.wait_stdout(r"^alice: %s$" % line)
        fp.wait_count(fp_before + 1)
        # ...and so is every held connection: one message from each.
        for i, s in enumerate(held):
            s.setblocking(True)
            s.sendall(wire(chat_obj(i, "held", "held %d.%d" % (round_no, i))))
        fp.wait_count(fp_before + 1 + want_held, timeout=max(TIMEOUT, 30))
        bob.stdout_lines(bob_before + 1 + want_held, timeout=max(TIMEOUT, 30))
        objs = fp.objects()[fp_before:]
        assert objs[0] == chat_obj(round_no, "alice", line)
        assert sorted(o["seq"] for o in objs[1:]) == list(range(want_held))
        assert all(o == chat_obj(o["seq"], "held", "held %d.%d" % (round_no, o["seq"])) for o in objs[1:])
        assert sorted(bob.stdout()[bob_before + 1:]) == \
            sorted("held: held %d.%d" % (round_no, i) for i in range(want_held))
    finally:
        for s in socks:
            s.close()
    return dict(held=want_held, refused=want_refused, refused_with_reset=resets,
                connected_in_s="%.2f" % connected_in, holding=holding,
                refused_log_lines=refused_lines(), refusals_accounted=accounted)


def test_2000_connections_at_once_refused_cleanly_past_the_limit(fprocs, closing):
    """Two rounds of 2,000 connections at once against --max-conns 1000.
    RSS after a round may stay several MiB above the start: glibc keeps the
    stacks of ended threads for reuse (up to 40 MiB) and does not always
    trim its per-thread arenas.  Measured over ten rounds of 1,000
    connections it wanders between +4 and +14 MiB with no trend, so the
    slack here is 24 MiB; a steady leak is the soak's job to find."""
    n_conns, max_conns = 2000, 1000
    raise_nofile(n_conns + 1024)
    srv = fprocs.server("--max-conns", str(max_conns))
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    alice = fprocs.chat5("alice", srv.port, server=srv)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    standing = 3                      # fp's, alice's and bob's connections
    alice.send("warm-up")
    bob.wait_stdout(r"^alice: warm-up$")
    fp.wait_count(1)
    before = stats(srv.pid)

    rounds, afters = [], []
    for round_no in (1, 2):
        rounds.append(hold_many(srv, n_conns, max_conns, standing, alice, bob, fp, round_no))
        assert_serving(srv, closing, readers=[alice, bob])
        afters.append(wait_back(srv, before, "server5 after round %d" % round_no,
                                timeout=max(TIMEOUT, 30), rss_slack_kb=24 * 1024))
    assert count_lines(srv, r"evicted") == 0
    for i, r in enumerate(rounds):
        figures("2000-connections round %d" % (i + 1), opened=n_conns, max_conns=max_conns,
                standing=standing, held=r["held"], refused=r["refused"],
                refused_with_reset=r["refused_with_reset"], connected_in_s=r["connected_in_s"],
                refused_log_lines=r["refused_log_lines"], refusals_accounted_by_log=r["refusals_accounted"],
                messages="alice=1 held=%d" % r["held"], server_before=before,
                server_holding=r["holding"], server_after=afters[i], sanitizer=sanitizer(srv.pid))

    # Every refused connection is in the log, as a line of its own or in
    # the count of a later line, soon after the burst (the rate limit is
    # one line a second).
    total = sum(r["refused"] for r in rounds)
    try:
        wait_until(lambda: refusals_accounted(srv, max_conns) >= total, timeout=2 + TIMEOUT,
                   what="the log to account for all %d refused connections" % total)
    except AssertionError:
        pass
    accounted = refusals_accounted(srv, max_conns)
    figures("2000-connections refusal log", refused=total, accounted_by_log=accounted,
            lines=[l for l in _lines(srv) if "refused" in l])
    assert accounted == total, (
        "%d connections were refused, but the log accounts for %d of them (lines: %r): a burst that "
        "ends within a second of a logged refusal is counted and never reported"
        % (total, accounted, [l for l in _lines(srv) if "refused" in l]))


# ---------------------------------------------------------------------------
# A flood of 100,000 messages while others chat
# ---------------------------------------------------------------------------

FLOOD_N = 100000
# With the default --queue-limit: a subscriber that falls behind (two of
# them are chat5 processes whose stdout goes through a pipe into Python)
# makes the fan-out wait, and nothing is lost.
FLOOD_QUEUE_LIMIT = 1000


def test_flood_of_100000_messages_while_others_chat(fprocs, closing):
    srv = fprocs.server()
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    alice = fprocs.chat5("alice", srv.port, server=srv)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    alice.send("warm-up")
    bob.wait_stdout(r"^alice: warm-up$")
    fp.wait_count(1)
    before = stats(srv.pid)

    flood = connect(srv.port)
    payload = [wire(chat_obj(i, "flood", "f%06d" % i)) for i in range(FLOOD_N)]
    done = threading.Event()
    t0 = time.monotonic()

    def send_flood():
        for k in range(0, FLOOD_N, 2000):
            flood.sendall(b"".join(payload[k:k + 2000]))
        done.set()

    sender = threading.Thread(target=send_flood, daemon=True)
    sender.start()
    # alice and bob chat while the flood is being relayed.
    fp.wait_count(1 + 5000, timeout=max(TIMEOUT, 60))
    at_chat = fp.count() - 1
    a_lines = ["alice chats %02d" % i for i in range(50)]
    b_lines = ["bob chats %02d" % i for i in range(50)]
    alice.send_lines(a_lines)
    bob.send_lines(b_lines)

    total_wait = max(TIMEOUT, 120)
    fp.wait_count(1 + FLOOD_N + 100, timeout=total_wait)
    alice.stdout_lines(FLOOD_N + 50, timeout=total_wait)
    bob.stdout_lines(1 + FLOOD_N + 50, timeout=total_wait)
    elapsed = time.monotonic() - t0
    sender.join(timeout=TIMEOUT)
    assert done.is_set()

    objs = fp.objects()
    assert len(objs) == 1 + FLOOD_N + 100
    assert [o for o in objs if o["user"] == "flood"] == [chat_obj(i, "flood", "f%06d" % i) for i in range(FLOOD_N)]
    assert [o for o in objs if o["user"] == "alice"] == \
        [chat_obj(i, "alice", m) for i, m in enumerate(["warm-up"] + a_lines)]
    assert [o for o in objs if o["user"] == "bob"] == [chat_obj(i, "bob", m) for i, m in enumerate(b_lines)]
    want_flood = ["flood: f%06d" % i for i in range(FLOOD_N)]
    a_out, b_out = alice.stdout(), bob.stdout()
    assert len(a_out) == FLOOD_N + 50 and len(b_out) == 1 + FLOOD_N + 50
    assert [l for l in a_out if l.startswith("flood: ")] == want_flood
    assert [l for l in b_out if l.startswith("flood: ")] == want_flood
    assert [l for l in a_out if l.startswith("bob: ")] == ["bob: " + l for l in b_lines]
    assert [l for l in b_out if l.startswith("alice: ")] == ["alice: " + l for l in ["warm-up"] + a_lines]
    assert count_lines(srv, r"evicted|refused") == 0
    peak = stats(srv.pid)

    flood.close()
    assert_serving(srv, closing, readers=[alice, bob])
    after = wait_back(srv, before, "server5")
    figures("flood-100000", queue_limit=FLOOD_QUEUE_LIMIT, flood_sent=FLOOD_N, chat_sent="alice=50 bob=50",
            chat_started_after_flood_msgs=at_chat,
            received="fake=%d alice=%d bob=%d" % (len(objs) - 1, len(a_out), len(b_out) - 1),
            relayed_in_s="%.2f" % elapsed, msgs_per_s=int(FLOOD_N / elapsed),
            server_before=before, server_at_end=peak, server_after=after, sanitizer=sanitizer(srv.pid))
    assert at_chat < FLOOD_N, "the chat did not overlap the flood"


# ---------------------------------------------------------------------------
# A subscriber that never reads
# ---------------------------------------------------------------------------


def test_never_reading_subscriber_is_evicted_others_unaffected(fprocs, closing):
    """A subscriber that stops reading holds the others up for the stall
    timeout at most (its queue full, the fan-out waits instead of dropping),
    then it alone is evicted and they lose nothing."""
    limit, stall = 100, 2
    srv = fprocs.server("--queue-limit", str(limit), "--stall-timeout", str(stall))
    fast = closing(FastSub())
    subscribe_by_hand(srv, fast.port, closing)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "flood", "warm-up")))
    fast.wait_count(1)
    bob.stdout_lines(1)
    before = stats(srv.pid)

    stalled = closing(FastSub("stall"))
    sc = subscribe_by_hand(srv, stalled.port, closing)
    wait_until(lambda: stalled.accepted == 1, what="the server connecting to the stalled subscriber")
    body = "x" * 8192

    def msg(i):
        return chat_obj(i, "flood", "%05d %s" % (i, body))

    sent, batch, evicted_after = 1, 25, None
    while sent < 4000:
        r.sendall(b"".join(wire(msg(i)) for i in range(sent, sent + batch)))
        sent += batch
        # Everyone else keeps up, batch after batch, but for one wait of
        # at most the stall timeout.
        fast.wait_count(sent, timeout=TIMEOUT + stall)
        bob.stdout_lines(sent, timeout=TIMEOUT + stall)
        if find_line(srv, evicted_rx(stalled.port)) is not None:
            evicted_after = sent
            break
    assert evicted_after is not None, "never evicted after %d messages of 8 KiB" % sent
    r.sendall(b"".join(wire(msg(i)) for i in range(sent, sent + 10)))
    sent += 10
    fast.wait_count(sent)
    expected = [chat_obj(0, "flood", "warm-up")] + [msg(i) for i in range(1, sent)]
    assert fast.objects() == expected
    assert bob.stdout_lines(sent) == ["flood: %s" % m["message"] for m in expected]
    assert count_lines(srv, r"evicted") == 1

    # The stalled one got an in-order prefix, then the server closed on it.
    assert len(stalled.conns) == 1
    got = wait_eof(stalled.conns[0][0])
    seqs = [json.loads(l)["seq"] for l in got.split(b"\n")[:-1]]
    assert seqs == list(range(1, 1 + len(seqs)))
    assert len(seqs) < sent - 1

    sc.close()
    stalled.close()
    assert_serving(srv, closing, readers=[bob])
    after = wait_back(srv, before, "server5")
    figures("never-reading-subscriber", queue_limit=limit, message_bytes=len(wire(msg(1))),
            evicted_after_msgs=evicted_after, messages_sent=sent - 1,
            received="fast=%d bob=%d stalled=%d" % (sent - 1, sent - 1, len(seqs)),
            server_before=before, server_after=after, sanitizer=sanitizer(srv.pid))


# ---------------------------------------------------------------------------
# Random bytes on every port
# ---------------------------------------------------------------------------


def spray(port, n_conns, size, parallel):
    """n_conns connections to port, parallel at a time, each sending size
    random bytes then closing its writing side and waiting for the other
    side to close; returns (bytes sent, connections closed early by the
    other side)."""
    total, cut = 0, 0
    for first in range(0, n_conns, parallel):
        socks = [connect(port) for _ in range(min(parallel, n_conns - first))]
        for s in socks:
            data = os.urandom(size)
            if send_quietly(s, data):
                total += len(data)
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            else:
                cut += 1
        for s in socks:
            wait_eof(s, timeout=max(TIMEOUT, 30))
            s.close()
    return total, cut


def test_random_bytes_on_every_port(fprocs, closing):
    srv = fprocs.server()
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    alice = fprocs.chat5("alice", srv.port, server=srv)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    carol = fprocs.chat("carol")
    dave = fprocs.chat("dave", peers=[loop(carol.port)])
    bob.send("warm-up")
    alice.wait_stdout(r"^bob: warm-up$")
    dave.send("warm-up")
    carol.wait_stdout(r"^dave: warm-up$")
    fp.wait_count(1)
    targets = {"server5": srv, "chat5": alice, "chat": carol}
    before = {k: stats(p.pid) for k, p in targets.items()}

    n_conns, size, parallel = 32, 40 * 1024, 8
    sprayed = {}
    for k, p in targets.items():
        sprayed[k] = spray(p.port, n_conns, size, parallel)
    for p in list(targets.values()) + [bob, dave]:
        assert p.alive(), "%s died: %r" % (p.argv, _lines(p)[-20:])

    # Still serving, and nothing of the noise came out as a message.
    bob.send("after the noise")
    alice.wait_stdout(r"^bob: after the noise$")
    dave.send("after the noise")
    carol.wait_stdout(r"^dave: after the noise$")
    fp.wait_count(2)
    assert fp.objects() == [chat_obj(0, "bob", "warm-up"), chat_obj(1, "bob", "after the noise")]
    assert alice.stdout() == ["bob: warm-up", "bob: after the noise"]
    assert bob.stdout() == []
    assert carol.stdout() == ["dave: warm-up", "dave: after the noise"]
    assert count_lines(srv, r"(?<!un)subscribed") == 3
    assert_serving(srv, closing, readers=[alice, bob])

    after = {k: wait_back(p, before[k], k) for k, p in targets.items()}
    figures("random-bytes", connections_per_port=n_conns, bytes_per_connection=size,
            bytes_total=sum(v[0] for v in sprayed.values()),
            closed_early="server5=%d chat5=%d chat=%d" % (sprayed["server5"][1], sprayed["chat5"][1],
                                                          sprayed["chat"][1]),
            log_lines="server5=%d chat5=%d chat=%d" % (len(_lines(srv)), len(_lines(alice)), len(_lines(carol))),
            server_before=before["server5"], server_after=after["server5"],
            chat5_before=before["chat5"], chat5_after=after["chat5"],
            chat_before=before["chat"], chat_after=after["chat"], sanitizer=sanitizer(srv.pid))


# ---------------------------------------------------------------------------
# A subscriber that accepts and closes at once
# ---------------------------------------------------------------------------


def test_subscriber_that_closes_at_once_is_evicted(fprocs, closing):
    srv = fprocs.server()
    fp = closing(FastSub())
    subscribe_by_hand(srv, fp.port, closing)
    bob = fprocs.chat5("bob", srv.port, server=srv)
    r = closing(connect(srv.port))
    r.sendall(wire(chat_obj(0, "raw", "warm-up")))
    fp.wait_count(1)
    bob.stdout_lines(1)
    before = stats(srv.pid)

    closer = closing(FastSub("close"))
    cc = subscribe_by_hand(srv, closer.port, closing)
    wait_until(closer.all_closed, what="the server connecting to the closing subscriber, and it closing")
    sent = 1
    while find_line(srv, evicted_rx(closer.port)) is None and sent < 50:
        r.sendall(wire(chat_obj(sent, "raw", "m%d" % sent)))
        sent += 1
        fp.wait_count(sent)
        bob.stdout_lines(sent)
    wait_line(srv, evicted_rx(closer.port))
    evicted_after = sent - 1
    r.sendall(wire(chat_obj(sent, "raw", "after")))
    sent += 1
    fp.wait_count(sent)
    expected = [chat_obj(0, "raw", "warm-up")] + [chat_obj(i, "raw", "m%d" % i) for i in range(1, sent - 1)] + \
        [chat_obj(sent - 1, "raw", "after")]
    assert fp.objects() == expected
    assert bob.stdout_lines(sent) == ["raw: %s" % m["message"] for m in expected]
    assert closer.accepted == 1, "the server connected again to an evicted subscriber"
    assert count_lines(srv, r"evicted") == 1
    assert evicted_after <= 2, "evicted only after %d messages" % evicted_after

    cc.close()
    assert_serving(srv, closing, readers=[bob])
    after = wait_back(srv, before, "server5")
    figures("subscriber-closes-at-once", evicted_after_msgs=evicted_after, messages_sent=sent - 1,
            received="fake=%d bob=%d" % (sent - 1, sent - 1), connections_to_closer=closer.accepted,
            server_before=before, server_after=after, sanitizer=sanitizer(srv.pid))
