#!/usr/bin/env python3
"""A bounded soak of the relay (issue 4, "Soak").

    python3 tests/soak/soak.py [--seconds 180] [--clients 500] ...

Starts server5 (the SERVER5 environment variable, a command line, or
./server5 at the top of the tree) on port 0, then:

  - CLIENTS fake subscribers: listening sockets served by a few selector
    threads, each with its own control connection to the server over which
    it subscribes.  Most stay for the whole run ("stayers"); the rest
    ("churners") unsubscribe and subscribe again throughout, half of the
    time also closing their control connection and opening a new one.
  - several senders: raw connections sending chat messages at a steady
    rate with periodic bursts, one chat5 process (CHAT5, or ./chat5) that
    both sends and receives, and one Python-style client that opens a fresh
    connection per message and sends it without a newline.

It checks, at the end:

  - nothing lost for the subscribers that stayed for the whole run (the
    stayers and chat5): every message of every sender arrived;
  - per-sender order kept: for every connection the server made to a
    subscriber, the messages of each persistent sender arrive with seq
    going up by exactly one (no gap, no duplicate, no reordering) -- the
    churners too, within each subscription;
  - nobody evicted, nothing refused, every delivery byte-exact;
  - no growth in server threads, file descriptors or RSS: the figures
    with everyone subscribed and everything delivered after a warm-up
    ("start") and again at the end ("end") are compared; and after
    everybody left, threads and descriptors are back to those of the idle
    server;
  - server5 exits 0 on SIGTERM.

It prints a summary table and exits 1 on any failure (2 on bad usage).
"""

import argparse
import heapq
import os
import random
import re
import resource
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def program(var, name):
    value = os.environ.get(var)
    return shlex.split(value) if value else [os.path.join(ROOT, name)]


FILL = b"x" * 40
LINE_RX = re.compile(rb'^\{"seq": (\d+), "user": "([a-z0-9]+)", "message": "([^"\\]*)"\}$')
CHAT5_LINE_RX = re.compile(r"^([a-z0-9]+): ([a-z0-9]+) #(\d+) x+$")


def message_text(user, seq):
    return b"%s #%d %s" % (user, seq, FILL)


def wire(seq, user, newline=True):
    return b'{"seq": %d, "user": "%s", "message": "%s"}%s' % (
        seq, user, message_text(user, seq), b"\n" if newline else b"")


def now():
    return time.monotonic()


def log(msg):
    print("[%7.1fs] %s" % (now() - T0, msg), flush=True)


T0 = now()

# ---------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as f:
        status = f.read()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return {"threads": threads, "rss_kb": rss, "fds": fds}


def sanitized(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
        if re.search(r"lib[at]san", maps):
            return True
        with open(os.readlink("/proc/%d/exe" % pid), "rb") as f:
            blob = f.read()
        return b"__asan_init" in blob or b"__tsan_init" in blob
    except OSError:
        return False


# ---------------------------------------------------------------------------
# server5's stderr
# ---------------------------------------------------------------------------


class ServerLog:
    """Pumps server5's stderr; counts subscribe/unsubscribe lines per port
    and keeps every line that is not one of those."""

    SUB = re.compile(r"(?<!un)subscribed 127\.0\.0\.1:(\d+)\b")
    UNSUB = re.compile(r"unsubscribed 127\.0\.0\.1:(\d+)\b")

    def __init__(self, stream):
        self.lock = threading.Lock()
        self.subs = {}
        self.unsubs = {}
        self.other = []
        self.nlines = 0
        self.port = None
        self.ready = threading.Event()
        self.t = threading.Thread(target=self.run, args=(stream,), daemon=True)
        self.t.start()

    def run(self, stream):
        rest = b""
        fd = stream.fileno()
        while True:
            try:
                b = os.read(fd, 1 << 16)
            except OSError:
                b = b""
            if not b:
                break
            parts = (rest + b).split(b"\n")
            rest = parts.pop()
            for raw in parts:
                self.line(raw.decode("utf-8", "replace"))

    def line(self, line):
        with self.lock:
            self.nlines += 1
            m = self.UNSUB.search(line)
            if m:
                p = int(m.group(1))
                self.unsubs[p] = self.unsubs.get(p, 0) + 1
                return
            m = self.SUB.search(line)
            if m:
                p = int(m.group(1))
                self.subs[p] = self.subs.get(p, 0) + 1
                return
            self.other.append(line)
            m = re.search(r"listening on port (\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self.ready.set()

    def counts(self, port):
        with self.lock:
            return self.subs.get(port, 0), self.unsubs.get(port, 0)

    def matching(self, pattern):
        rx = re.compile(pattern)
        with self.lock:
            return [l for l in self.other if rx.search(l)]


# ---------------------------------------------------------------------------
# Fake subscribers
# ---------------------------------------------------------------------------


class Stint:
    """One connection the server made to a subscriber: what arrived on it."""

    __slots__ = ("first", "last", "count", "py", "errors", "rest", "eof", "lines")

    def __init__(self):
        self.first = {}     # ordered sender -> first seq
        self.last = {}      # ordered sender -> last seq
        self.count = {}     # ordered sender -> messages
        self.py = set()     # seqs from the Python-style sender
        self.errors = []
        self.rest = b""
        self.eof = False
        self.lines = 0


class Subscriber:
    def __init__(self, idx, role):
        self.idx = idx
        self.role = role                # "stayer" or "churner"
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.stints = []
        self.ctl = None                 # control connection to the server
        self.subscribed = False
        self.joins = 0
        self.ctl_opened = 0


class Hub:
    """A few selector threads serving every subscriber's listening socket
    and the connections the server makes to them."""

    def __init__(self, subs, nthreads, py_user):
        self.lock = threading.Lock()
        self.py_user = py_user
        self.stop = False
        self.lines = 0
        self.threads = []
        for k in range(nthreads):
            mine = subs[k::nthreads]
            t = threading.Thread(target=self.run, args=(mine,), daemon=True)
            self.threads.append(t)
        for t in self.threads:
            t.start()

    def run(self, mine):
        sel = selectors.DefaultSelector()
        for s in mine:
            sel.register(s.sock, selectors.EVENT_READ, (s, None))
        while not self.stop:
            for key, _ in sel.select(0.1):
                sub, stint = key.data
                if stint is None:
                    try:
                        c, _ = key.fileobj.accept()
                    except (BlockingIOError, OSError):
                        continue
                    c.setblocking(False)
                    st = Stint()
                    with self.lock:
                        sub.stints.append(st)
                    sel.register(c, selectors.EVENT_READ, (sub, st))
                    continue
                try:
                    b = key.fileobj.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    b = b""
                if not b:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    if stint.rest:
                        stint.errors.append("incomplete line at EOF: %r" % stint.rest[:100])
                    stint.eof = True
                    continue
                self.feed(stint, b)
        for key in list(sel.get_map().values()):
            if key.data[1] is not None:
                key.fileobj.close()
        sel.close()

    def feed(self, st, b):
        parts = (st.rest + b).split(b"\n")
        st.rest = parts.pop()
        st.lines += len(parts)
        for line in parts:
            m = LINE_RX.match(line)
            if not m:
                st.errors.append("not a canonical chat line: %r" % line[:120])
                continue
            seq, user = int(m.group(1)), m.group(2)
            if m.group(3) != message_text(user, seq):
                st.errors.append("message altered: %r" % line[:120])
                continue
            if user == self.py_user:
                if seq in st.py:
                    st.errors.append("duplicate %s #%d" % (user.decode(), seq))
                st.py.add(seq)
                continue
            last = st.last.get(user)
            if last is None:
                st.first[user] = seq
            elif seq != last + 1:
                st.errors.append("%s: seq %d after %d" % (user.decode(), seq, last))
            st.last[user] = seq
            st.count[user] = st.count.get(user, 0) + 1


# ---------------------------------------------------------------------------
# Senders
# ---------------------------------------------------------------------------


class Pacer(threading.Thread):
    """A thread that sends at a steady rate while resumed.  pause() returns
    once no send is in progress, so `sent` is then final until resume()."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.label = name
        self.sent = 0
        self.error = None
        self.lock = threading.Lock()
        self.paused = True
        self.halt = threading.Event()
        self.wake = threading.Event()

    def pause(self):
        with self.lock:
            self.paused = True

    def resume(self):
        with self.lock:
            self.paused = False
            self.restart()
        self.wake.set()

    def stop(self):
        self.pause()
        self.halt.set()
        self.wake.set()
        self.join(30)

    def restart(self):
        """Resets the schedule (the lock is held)."""

    def tick(self):
        """Sends what is due; returns when to look again (the lock is held)."""
        return now() + 0.1

    def run(self):
        while not self.halt.is_set():
            with self.lock:
                if self.paused or self.error:
                    when = now() + 0.1
                else:
                    try:
                        when = self.tick()
                    except OSError as e:
                        self.error = "%s: %s" % (self.label, e)
                        when = now() + 0.1
            self.wake.wait(max(0.0, when - now()))
            self.wake.clear()


class Sender(Pacer):
    """A raw client on one connection: `rate` messages a second, and a
    burst of `burst` messages every `burst_every` seconds."""

    def __init__(self, port, user, rate, burst, burst_every):
        super().__init__(user.decode())
        self.user = user
        self.rate = rate
        self.burst = burst
        self.burst_every = burst_every
        self.sock = socket.create_connection(("127.0.0.1", port))

    def send(self, n):
        data = b"".join(wire(self.sent + i, self.user) for i in range(n))
        self.sock.sendall(data)
        self.sent += n

    def restart(self):
        self.next_msg = now()
        self.next_burst = now() + self.burst_every * random.uniform(0.2, 0.6)

    def tick(self):
        t = now()
        if self.burst and t >= self.next_burst:
            self.send(self.burst)
            self.next_burst = t + self.burst_every
        if t >= self.next_msg:
            self.send(1)
            self.next_msg = max(self.next_msg + 1.0 / self.rate, t - 1)
        return min(self.next_msg, self.next_burst if self.burst else self.next_msg)


class PySender(Pacer):
    """A Python-style client of the assignment: a fresh connection per
    message, no newline.  Separate connections carry no order, so only
    'nothing lost, nothing doubled' is checked for it."""

    def __init__(self, port, user, rate):
        super().__init__(user.decode())
        self.port = port
        self.user = user
        self.rate = rate

    def send(self, n=1):
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", self.port)) as s:
                s.sendall(wire(self.sent, self.user, newline=False))
            self.sent += 1

    def restart(self):
        self.next_msg = now()

    def tick(self):
        t = now()
        if t >= self.next_msg:
            self.send()
            self.next_msg = max(self.next_msg + 1.0 / self.rate, t - 1)
        return self.next_msg


class Typist(Pacer):
    """Types `rate` lines a second into a chat5."""

    def __init__(self, chat5, rate):
        super().__init__(chat5.name)
        self.c = chat5
        self.rate = rate

    def send(self, n=1):
        for _ in range(n):
            text = message_text(self.c.name.encode(), self.sent).decode()
            self.c.p.stdin.write((text + "\n").encode())
            self.c.p.stdin.flush()
            self.sent += 1

    def restart(self):
        self.next_msg = now()

    def tick(self):
        t = now()
        if t >= self.next_msg:
            self.send()
            self.next_msg = max(self.next_msg + 1.0 / self.rate, t - 1)
        return self.next_msg


class Chat5:
    """A real chat5: types `rate` lines a second, and its stdout is checked
    like a stayer's deliveries."""

    def __init__(self, argv, server_port, name, rate, py_user):
        self.name = name
        self.rate = rate
        self.py_user = py_user.decode()
        self.p = subprocess.Popen(argv + [name, "0", "127.0.0.1:%d" % server_port],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.last = {}
        self.count = {}
        self.py = set()
        self.errors = []
        self.err_lines = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        threading.Thread(target=self.pump_out, daemon=True).start()
        threading.Thread(target=self.pump_err, daemon=True).start()
        self.typist = Typist(self, rate)
        self.typist.start()

    def pump_err(self):
        for raw in iter(self.p.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.err_lines.append(line)
            m = re.search(r"listening on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
            if " subscribed to " in line:
                self.subscribed.set()

    def pump_out(self):
        rest = b""
        fd = self.p.stdout.fileno()
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            parts = (rest + b).split(b"\n")
            rest = parts.pop()
            with self.lock:
                for raw in parts:
                    self.line(raw.decode("utf-8", "replace"))

    def line(self, line):
        m = CHAT5_LINE_RX.match(line)
        if not m or m.group(1) != m.group(2):
            self.errors.append("unexpected stdout line: %r" % line[:120])
            return
        user, seq = m.group(1), int(m.group(3))
        if user == self.py_user:
            if seq in self.py:
                self.errors.append("duplicate %s #%d" % (user, seq))
            self.py.add(seq)
            return
        last = self.last.get(user, -1)
        if seq != last + 1:
            self.errors.append("%s: seq %d after %d" % (user, seq, last))
        self.last[user] = seq
        self.count[user] = self.count.get(user, 0) + 1


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


class Abort(Exception):
    """Ends the run early; the reason is in Soak.failures."""


class Soak:
    def __init__(self, args):
        self.args = args
        self.failures = []
        self.rows = []
        self.timeline = []

    def fail(self, what):
        self.failures.append(what)
        log("FAIL: " + what)

    def check(self, ok, what):
        if not ok:
            self.fail(what)
        return ok

    # -- server ------------------------------------------------------------

    def start_server(self):
        a = self.args
        n = a.clients + 64
        argv = program("SERVER5", "server5") + [
            "--max-clients", str(n), "--max-per-ip", str(n),
            "--max-conns", str(2 * a.clients + a.senders + 256),
            "--queue-limit", str(a.queue_limit), "0"]
        log("starting %s" % " ".join(argv))
        self.srv = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, bufsize=0)
        self.slog = ServerLog(self.srv.stderr)
        if not self.slog.ready.wait(10):
            raise SystemExit("server5 did not say it was listening: %r" % self.slog.other)
        self.port = self.slog.port
        self.sanitized = sanitized(self.srv.pid)

    def stats(self):
        return proc_stats(self.srv.pid)

    # -- subscriptions -----------------------------------------------------

    def subscribe(self, s):
        if s.ctl is None:
            s.ctl = socket.create_connection(("127.0.0.1", self.port))
            s.ctl_opened += 1
        s.ctl.sendall(b'{"operation": "subscribe", "client": "127.0.0.1:%d"}\n' % s.port)
        s.subscribed = True
        s.joins += 1

    def unsubscribe(self, s, close_ctl):
        s.ctl.sendall(b'{"operation": "unsubscribe", "client": "127.0.0.1:%d"}\n' % s.port)
        s.subscribed = False
        if close_ctl:
            s.ctl.close()
            s.ctl = None

    def confirmed(self, s):
        """Whether the server has logged every subscribe/unsubscribe sent so far."""
        subs, unsubs = self.slog.counts(s.port)
        return subs == s.joins and unsubs == s.joins - (1 if s.subscribed else 0)

    def wait(self, cond, timeout, what):
        """Waits for cond; a timeout, or an eviction or refusal in the
        server's log (which means loss: nothing would come), ends the run."""
        deadline = now() + timeout
        while not cond():
            bad = self.slog.matching(r"evicted|refused")
            if bad:
                self.fail("server5 evicted or refused while waiting for %s: %s" % (what, bad[:3]))
                raise Abort()
            if self.srv.poll() is not None:
                self.fail("server5 exited with %s while waiting for %s" % (self.srv.returncode, what))
                raise Abort()
            if now() > deadline:
                self.fail("timed out after %ds waiting for %s" % (timeout, what))
                raise Abort()
            time.sleep(0.05)
        return True

    def churn(self, stop):
        """Churners leave and come back until stop is set; then every one of
        them is subscribed again."""
        a = self.args
        rng = random.Random(a.seed)
        events = []
        for s in self.churners:
            heapq.heappush(events, (now() + rng.uniform(0.5, a.stay_max), s.idx, s))
        while not stop.is_set():
            if not events:
                break
            t, _, s = events[0]
            if t > now():
                stop.wait(min(0.1, t - now()))
                continue
            heapq.heappop(events)
            if not self.confirmed(s):
                # The server has not yet handled the last change: look again soon.
                heapq.heappush(events, (now() + 0.1, s.idx, s))
                continue
            if s.subscribed:
                self.unsubscribe(s, close_ctl=rng.random() < 0.5)
                self.leaves += 1
                heapq.heappush(events, (now() + rng.uniform(0.2, a.away_max), s.idx, s))
            else:
                self.subscribe(s)
                heapq.heappush(events, (now() + rng.uniform(0.5, a.stay_max), s.idx, s))
        # Everyone back in, each with one control connection.
        try:
            self.wait(lambda: all(self.confirmed(s) for s in self.churners), 60,
                      "the server to handle the last churn")
        except Abort:
            return
        for s in self.churners:
            if not s.subscribed:
                self.subscribe(s)
        self.churn_done = True

    # -- delivery bookkeeping ------------------------------------------------

    def pacers(self):
        return self.senders + [self.py, self.chat5.typist]

    def sent_by(self):
        """Ordered senders' user -> messages sent (raw senders and chat5)."""
        want = {snd.user: snd.sent for snd in self.senders}
        want[self.chat5.name.encode()] = self.chat5.typist.sent
        return want

    def delivered_to_all(self):
        """Whether every subscriber's current connection from the server
        has had the last message of every sender, and chat5 too."""
        want = self.sent_by()
        py_want = self.py.sent
        for s in self.subs:
            if not s.stints:
                return False
            st = s.stints[-1]
            for user, n in want.items():
                if n and st.last.get(user, -1) != n - 1:
                    return False
            if py_want and (py_want - 1) not in st.py:
                return False
            if s.role == "stayer" and len(st.py) < py_want:
                return False
        c = self.chat5
        with c.lock:
            for user, n in want.items():
                if n and user.decode() != c.name and c.last.get(user.decode(), -1) != n - 1:
                    return False
            if len(c.py) < py_want:
                return False
        return True

    def quiesce(self, what, timeout):
        t = now()
        ok = self.wait(self.delivered_to_all, timeout, "every subscriber to have every message (%s)" % what)
        if ok:
            log("%s: everything delivered %.1fs after the senders paused" % (what, now() - t))
        return ok

    def pause_senders(self):
        for p in self.pacers():
            p.pause()
            if p.error:
                self.fail("sender error: " + p.error)

    def resume_senders(self):
        for p in self.pacers():
            p.resume()

    # -- main ----------------------------------------------------------------

    def run(self):
        a = self.args
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 3 * a.clients + 512
        if soft != resource.RLIM_INFINITY and soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY
                                                        else min(need, hard), hard))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < need:
            raise SystemExit("open-file limit %d is below the %d needed; raise it (ulimit -n)" % (soft, need))

        self.start_server()
        idle = self.stats()
        log("server5 pid %d listening on port %d; idle: %s" % (self.srv.pid, self.port, idle))

        n_churn = int(a.clients * a.churn)
        self.subs = [Subscriber(i, "churner" if i < n_churn else "stayer") for i in range(a.clients)]
        self.churners = [s for s in self.subs if s.role == "churner"]
        self.stayers = [s for s in self.subs if s.role == "stayer"]
        self.leaves = 0
        py_user = b"pystyle"
        self.hub = Hub(self.subs, a.hub_threads, py_user)

        for s in self.subs:
            self.subscribe(s)
        self.wait(lambda: all(self.confirmed(s) and len(s.stints) == 1 for s in self.subs), 60,
                  "%d subscriptions and the server's connections to them" % a.clients)
        log("%d subscribers in (%d stay, %d churn)" % (a.clients, len(self.stayers), len(self.churners)))

        self.chat5 = Chat5(program("CHAT5", "chat5"), self.port, "chatfive", a.chat5_rate, py_user)
        if not self.chat5.subscribed.wait(10):
            raise SystemExit("chat5 did not subscribe: %r" % self.chat5.err_lines)
        self.wait(lambda: self.slog.counts(self.chat5.port)[0] == 1, 10, "chat5's subscription")
        self.senders = [Sender(self.port, b"sender%d" % k, a.rate, a.burst, a.burst_every)
                        for k in range(a.senders)]
        self.py = PySender(self.port, py_user, a.py_rate)
        for p in self.senders + [self.py]:
            p.start()           # chat5's typist is running already

        # Warm-up: everything flows (a burst each too) with everyone
        # subscribed; then quiet, and the "start" figures.
        log("warm-up for %ds" % a.warmup)
        self.resume_senders()
        time.sleep(a.warmup)
        self.pause_senders()
        self.quiesce("warm-up", 120)
        start = self.wait_stable(idle, settle=True)
        log("start (everyone in, all delivered): %s" % start)

        # The run: traffic and churn.
        log("run for %ds" % a.seconds)
        self.resume_senders()
        stop_churn = threading.Event()
        churner = threading.Thread(target=self.churn, args=(stop_churn,), daemon=True)
        churner.start()
        t_end = now() + a.seconds
        next_sample = now()
        while now() < t_end:
            if now() >= next_sample:
                st = self.stats()
                st["t"] = round(now() - T0)
                st["lines"] = sum(x.lines for s in self.subs for x in s.stints)
                self.timeline.append(st)
                next_sample += a.sample_every
            if self.srv.poll() is not None:
                self.fail("server5 exited with %s during the run" % self.srv.returncode)
                break
            time.sleep(min(1.0, max(0.0, t_end - now())))
        log("run over; pausing the senders, bringing every churner back")
        self.pause_senders()
        stop_churn.set()
        churner.join(120)
        if not getattr(self, "churn_done", False):
            raise Abort()
        self.wait(lambda: all(self.confirmed(s) for s in self.subs), 60,
                  "the server to take every churner back")
        self.wait(lambda: all(s.stints and not s.stints[-1].eof and all(x.eof for x in s.stints[:-1])
                              for s in self.subs), 60,
                  "the server's connections to every churner (old ones closed, a new one open)")
        # One last message from every sender: every subscriber, the
        # churners too, must be back in the server's table.
        for p in self.pacers():
            with p.lock:
                p.send(1)
        self.quiesce("end", 300)
        end = self.wait_stable(start)
        log("end (everyone in, all delivered): %s" % end)

        self.verify_deliveries()
        self.teardown(idle, start, end)

    def wait_stable(self, ref, settle=False):
        """The figures once threads and descriptors have settled: equal to
        ref's, or (settle) unchanged for a second (the Python-style
        sender's last connections are reaped asynchronously)."""
        deadline = now() + 30
        prev, since = None, now()
        while True:
            cur = self.stats()
            key = (cur["threads"], cur["fds"])
            if key != prev:
                prev, since = key, now()
            if not settle and key == (ref["threads"], ref["fds"]):
                return cur
            if (settle and now() - since >= 1.0) or now() > deadline:
                return cur
            time.sleep(0.1)

    def verify_deliveries(self):
        want = self.sent_by()
        py_want = self.py.sent
        lost = bad_order = errors = 0
        stints = 0
        for s in self.subs:
            for st in s.stints:
                stints += 1
                if st.errors:
                    errors += len(st.errors)
                    bad_order += sum(1 for e in st.errors if "after" in e)
                    self.fail("subscriber %d (%s) port %d: %s" % (s.idx, s.role, s.port, "; ".join(st.errors[:3])))
            if s.role == "stayer":
                if len(s.stints) != 1:
                    self.fail("stayer %d: the server connected %d times" % (s.idx, len(s.stints)))
                st = s.stints[0]
                for user, n in want.items():
                    got = st.count.get(user, 0)
                    if st.first.get(user, 0) != 0 or got != n:
                        lost += n - got
                        self.fail("stayer %d: %d of %d messages from %s" % (s.idx, got, n, user.decode()))
                if len(st.py) != py_want:
                    lost += py_want - len(st.py)
                    self.fail("stayer %d: %d of %d Python-style messages" % (s.idx, len(st.py), py_want))
        c = self.chat5
        with c.lock:
            for user, n in want.items():
                if user.decode() == c.name:
                    continue
                if c.count.get(user.decode(), 0) != n:
                    lost += n - c.count.get(user.decode(), 0)
                    self.fail("chat5: %d of %d messages from %s" % (c.count.get(user.decode(), 0), n, user.decode()))
            if len(c.py) != py_want:
                self.fail("chat5: %d of %d Python-style messages" % (len(c.py), py_want))
            if c.errors:
                errors += len(c.errors)
                self.fail("chat5: %s" % "; ".join(c.errors[:3]))
        self.delivery = dict(lost=lost, bad_order=bad_order, errors=errors, stints=stints)

    def teardown(self, idle, start, end):
        a = self.args
        # Everyone leaves.
        for p in self.pacers():
            p.stop()
        for s in self.subs:
            if s.ctl is None:
                s.ctl = socket.create_connection(("127.0.0.1", self.port))
            self.unsubscribe(s, close_ctl=True)
        for snd in self.senders:
            snd.sock.close()
        self.chat5.p.stdin.write(b"exit\n")
        self.chat5.p.stdin.flush()
        try:
            rc5 = self.chat5.p.wait(15)
        except subprocess.TimeoutExpired:
            self.chat5.p.kill()
            rc5 = "timeout"
        self.check(rc5 == 0, "chat5 exit status %s after exit" % rc5)
        self.wait(lambda: all(s.stints[-1].eof for s in self.subs), 60,
                  "the server to close its connections to every subscriber")
        deadline = now() + 30
        while True:
            gone = self.stats()
            if (gone["threads"] == idle["threads"] and gone["fds"] == idle["fds"]) or now() > deadline:
                break
            time.sleep(0.1)

        evicted = self.slog.matching(r"evicted")
        refused = self.slog.matching(r"refused")
        self.check(not evicted, "evictions: %r" % evicted[:5])
        self.check(not refused, "refusals: %r" % refused[:5])

        self.srv.send_signal(signal.SIGTERM)
        try:
            rc = self.srv.wait(30)
        except subprocess.TimeoutExpired:
            self.srv.kill()
            rc = "timeout"
        self.check(rc == 0, "server5 exit status %s after SIGTERM" % rc)
        self.hub.stop = True

        slack = a.rss_slack_mb * 1024
        rows = self.rows
        rows.append(("server threads", idle["threads"], start["threads"], end["threads"], gone["threads"],
                     self.check(end["threads"] == start["threads"] and gone["threads"] == idle["threads"],
                                "threads: idle %d, start %d, end %d, after all left %d"
                                % (idle["threads"], start["threads"], end["threads"], gone["threads"]))))
        rows.append(("server fds", idle["fds"], start["fds"], end["fds"], gone["fds"],
                     self.check(end["fds"] == start["fds"] and gone["fds"] == idle["fds"],
                                "fds: idle %d, start %d, end %d, after all left %d"
                                % (idle["fds"], start["fds"], end["fds"], gone["fds"]))))
        rss_ok = self.sanitized or end["rss_kb"] <= start["rss_kb"] + slack
        rows.append(("server RSS KiB", idle["rss_kb"], start["rss_kb"], end["rss_kb"], gone["rss_kb"],
                     self.check(rss_ok, "RSS grew from %d KiB at start to %d KiB at end (slack %d KiB)"
                                % (start["rss_kb"], end["rss_kb"], slack))))
        # A leak grows with the traffic; the allocator settling does not:
        # the second half of the run must add little.
        samples = [x["rss_kb"] for x in self.timeline] + [end["rss_kb"]]
        if len(samples) >= 3:
            mid = samples[len(samples) // 2]
            trend_ok = self.sanitized or end["rss_kb"] - mid <= a.rss_trend_mb * 1024
            self.trend = (mid, end["rss_kb"])
            rows.append(("RSS 2nd half", "", mid, end["rss_kb"], "",
                         self.check(trend_ok, "RSS grew %d KiB over the second half of the run (limit %d KiB)"
                                    % (end["rss_kb"] - mid, a.rss_trend_mb * 1024))))
        self.gone = gone
        self.rc = rc

    def summary(self):
        a = self.args
        print()
        print("=" * 78)
        print("SOAK SUMMARY  (%ds run after a %ds warm-up; %d subscribers: %d stay, %d churn; "
              "%d senders + chat5 + python-style)"
              % (a.seconds, a.warmup, a.clients, len(self.stayers), len(self.churners), a.senders))
        print("=" * 78)
        if self.rows:
            print("%-16s %10s %10s %10s %12s  %s" % ("figure", "idle", "start", "end", "all left", "ok"))
            for name, i, s, e, g, ok in self.rows:
                print("%-16s %10s %10s %10s %12s  %s" % (name, i, s, e, g, "yes" if ok else "NO"))
            print()
        sent = {snd.user.decode(): snd.sent for snd in self.senders}
        sent["chatfive (chat5)"] = self.chat5.typist.sent
        sent["pystyle (fresh conn each)"] = self.py.sent
        total = sum(sent.values())
        for k, v in sent.items():
            print("sent by %-28s %8d" % (k, v))
        print("sent in all %29d" % total)
        lines = sum(x.lines for s in self.subs for x in s.stints)
        print("deliveries to fake subscribers %10d" % lines)
        print("deliveries to chat5 %21d" % (sum(self.chat5.count.values()) + len(self.chat5.py)))
        stayer_each = sum(v for k, v in sent.items())
        print("each stayer received %20d (expected %d)" % (
            min((sum(st.count.values()) + len(st.py)) for s in self.stayers for st in s.stints[:1]),
            stayer_each))
        print("churn: leaves %d, subscriptions %d, control connections opened %d" % (
            self.leaves, sum(s.joins for s in self.subs), sum(s.ctl_opened for s in self.subs)))
        d = getattr(self, "delivery", {})
        print("lost (stayers + chat5) %18s" % d.get("lost", "?"))
        print("order violations %24s" % d.get("bad_order", "?"))
        print("delivery errors %25s" % d.get("errors", "?"))
        print("server log lines %24d (evicted %d, refused %d)" % (
            self.slog.nlines, len(self.slog.matching("evicted")), len(self.slog.matching("refused"))))
        print("server5 exit status on SIGTERM %10s" % getattr(self, "rc", "?"))
        if self.timeline:
            print()
            print("timeline (server5):  t(s)  threads   fds   RSS KiB   deliveries so far")
            for st in self.timeline:
                print("                   %5d  %7d %5d  %8d   %d" % (st["t"], st["threads"], st["fds"],
                                                                    st["rss_kb"], st["lines"]))
        print()
        if self.failures:
            print("FAILED (%d):" % len(self.failures))
            for f in self.failures[:40]:
                print("  - " + f)
        else:
            print("PASSED")
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=180, help="length of the run after warm-up (180)")
    ap.add_argument("--clients", type=int, default=500, help="fake subscribers (500)")
    ap.add_argument("--churn", type=float, default=0.2, help="fraction of subscribers that come and go (0.2)")
    ap.add_argument("--senders", type=int, default=3, help="raw senders on persistent connections (3)")
    ap.add_argument("--rate", type=float, default=10, help="messages a second per raw sender (10)")
    ap.add_argument("--burst", type=int, default=100, help="messages per burst per raw sender (100)")
    ap.add_argument("--burst-every", type=float, default=20, help="seconds between bursts (20)")
    ap.add_argument("--chat5-rate", type=float, default=4, help="lines a second typed into chat5 (4)")
    ap.add_argument("--py-rate", type=float, default=4, help="Python-style messages a second (4)")
    ap.add_argument("--warmup", type=int, default=10, help="seconds of traffic before the start figures (10)")
    ap.add_argument("--stay-max", type=float, default=8, help="a churner stays up to this many seconds (8)")
    ap.add_argument("--away-max", type=float, default=4, help="a churner is away up to this many seconds (4)")
    ap.add_argument("--queue-limit", type=int, default=20000, help="server5 --queue-limit (20000)")
    ap.add_argument("--rss-slack-mb", type=int, default=16, help="allowed RSS growth start->end (16)")
    ap.add_argument("--rss-trend-mb", type=int, default=4,
                    help="allowed RSS growth over the second half of the run (4)")
    ap.add_argument("--hub-threads", type=int, default=4, help="selector threads for the subscribers (4)")
    ap.add_argument("--sample-every", type=float, default=15, help="seconds between timeline samples (15)")
    ap.add_argument("--seed", type=int, default=1, help="random seed for the churn (1)")
    args = ap.parse_args()
    if args.clients < 2 or args.seconds < 1 or not 0 <= args.churn < 1 or args.senders < 1:
        ap.error("need --clients >= 2, --seconds >= 1, 0 <= --churn < 1, --senders >= 1")

    soak = Soak(args)
    try:
        soak.run()
    except Abort:
        pass
    except SystemExit as e:
        soak.fail(str(e))
    except Exception as e:  # reported, then the non-zero exit
        import traceback
        traceback.print_exc()
        soak.fail("%s: %s" % (type(e).__name__, e))
    finally:
        srv = getattr(soak, "srv", None)
        if srv is not None and srv.poll() is None:
            srv.kill()
        c5 = getattr(soak, "chat5", None)
        if c5 is not None and c5.p.poll() is None:
            c5.p.kill()
    try:
        soak.summary()
    except Exception as e:
        print("summary failed: %s" % e)
        soak.failures.append("summary")
    sys.exit(1 if soak.failures else 0)


if __name__ == "__main__":
    main()
